"""Request bodies: read in chunks under a size cap, parsed as UTF-8 JSON into a pydantic model.

Webhooks and the API read their bodies through here. A body over 1 MB (or of unknown length)
is read only while holding one of a few `LARGE_BODIES` slots, so memory stays bounded however
many large bodies arrive at once, signed or not.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import functools
import hmac
import sys
from collections.abc import AsyncIterator
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from conjunction.web.context import MAX_BODY
from conjunction.web.errors import RequestError, unavailable

M = TypeVar("M", bound=BaseModel)

LARGE_BODIES = web.AppKey("large_bodies", asyncio.Semaphore)
LARGE_BODY = 1024 * 1024  # bytes; larger bodies take a slot
LARGE_BODY_SLOTS = 4  # at most 4 x 25 MB of large bodies in memory at once
# Then 503. GitHub stops waiting for an answer after 10 s, but a delivery stored later is
# still processed, where one refused is lost unless redelivered by hand.
SLOT_WAIT_SECONDS = 60.0
READ_SECONDS = 30  # a body that trickles in slower holds its slot no longer
CHUNK = 64 * 1024
MAX_JSON_DEPTH = 200  # pydantic-core's JSON parser refuses deeper nesting
# UTF-32 starts with one of these or with a NUL, as UTF-16 without a byte order mark does.
UTF16_OR_32_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


@functools.cache
def return_large_buffers() -> None:
    """Have glibc give every buffer over 1 MB back to the system when it is freed.

    By default glibc raises its mmap threshold to the size of the largest buffer freed (up to
    32 MB): after one 24 MB body, the next copies of it (decoded, stored, read back by its job)
    come from the heap, whose freed memory the process keeps (a 24 MB delivery left it 130 MB
    larger for good). Setting the threshold fixes it at 1 MB. Elsewhere than glibc, nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, LARGE_BODY)


@contextlib.asynccontextmanager
async def large_body_slot(request: web.Request, limit: int | None = None) -> AsyncIterator[None]:
    """Hold one of the large-body slots while the body is read and handled, if it is large:
    over LARGE_BODY, or of unknown length where the route's `limit` is over LARGE_BODY."""
    length = request.content_length
    small = length is not None and length <= LARGE_BODY
    if small or (limit is not None and limit <= LARGE_BODY):
        yield
        return
    return_large_buffers()
    slots = request.app[LARGE_BODIES]
    try:
        async with asyncio.timeout(SLOT_WAIT_SECONDS):
            await slots.acquire()
    except TimeoutError:
        raise unavailable("too many large requests at once; retry later") from None
    try:
        yield
    finally:
        slots.release()


async def read_body(
    request: web.Request, digest: hmac.HMAC | None = None, *, limit: int | None = None
) -> bytearray:
    """The body, refused with 413 past the route's `limit` (at most the app's size limit):
    one announced longer is refused unread, one sent without a length as soon as it passes
    it. Fed to `digest` as it arrives."""
    limit = min(limit, request.app[MAX_BODY]) if limit is not None else request.app[MAX_BODY]
    too_large = RequestError(413, f"request body too large: the limit is {limit} bytes")
    if (request.content_length or 0) > limit:
        raise too_large
    body = bytearray()
    try:
        async with asyncio.timeout(READ_SECONDS):
            async for chunk in request.content.iter_chunked(min(CHUNK, limit + 1)):
                if len(body) + len(chunk) > limit:
                    raise too_large
                if digest is not None:
                    digest.update(chunk)
                body += chunk
    except TimeoutError:
        message = f"the body took longer than {READ_SECONDS:g} s to arrive"
        raise RequestError(408, message) from None
    return body


def parse_json(body: bytes | bytearray, model: type[M]) -> M:
    """The body as `model`: RequestError 400 when it is not UTF-8 JSON (or nested deeper than
    MAX_JSON_DEPTH), pydantic's ValidationError when it is JSON of another shape."""
    if body.startswith(codecs.BOM_UTF8):
        raise RequestError(400, "the body starts with a byte order mark: send UTF-8 without one")
    if body.startswith(UTF16_OR_32_BOMS) or b"\x00" in body[:4]:
        raise RequestError(400, "the body must be JSON encoded as UTF-8, not UTF-16 or UTF-32")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        syntax = [error for error in exc.errors() if error["type"] == "json_invalid"]
        if not syntax:
            raise
        detail = str(syntax[0].get("ctx", {}).get("error", ""))
        if detail.startswith("recursion limit exceeded"):
            message = f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep"
        else:
            message = f"the body is not valid JSON: {detail}"
        raise RequestError(400, message) from None


def problems(exc: ValidationError, shown: int = 5) -> str:
    """A validation error for a person: where and what, for the first few problems."""
    errors = exc.errors(include_url=False, include_input=False)
    described = [
        f"{'.'.join(map(str, error['loc']))[:200] or 'body'}: {error['msg']}"
        for error in errors[:shown]
    ]
    more = len(errors) - shown
    return "; ".join(described) + (f"; and {more} more" if more > 0 else "")
