"""Every error answer is JSON with a message for a person; nothing a user sends gives a 500.

Two layers answer errors: the `json_errors` middleware for everything a handler raises, and
`JsonErrorRunner` for what aiohttp's HTTP parser refuses before any handler runs (an oversized
header, a malformed request line or chunk). aiohttp has no public hook for the latter
(aio-libs/aiohttp#3287), so the runner swaps in a protocol whose `handle_error` answers JSON.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.typedefs import Handler
from aiohttp.web_request import BaseRequest

from conjunction import db
from conjunction.web.context import MAX_BODY, json_error

log = logging.getLogger(__name__)

RETRY_AFTER = "10"  # seconds, for answers 503


class RequestError(Exception):
    """A request that cannot be served: answered `{"error": message}` with its status."""

    def __init__(self, status: int, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers

    def answer(self) -> web.Response:
        return json_error(self.status, self.message, **self.headers)


def unavailable(message: str) -> RequestError:
    return RequestError(503, message, **{"Retry-After": RETRY_AFTER})


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if "\x00" in request.path or any("\x00" in value for value in request.query.values()):
        # No route takes one, and PostgreSQL cannot compare a string holding one.
        return json_error(400, "the URL holds a NUL character (%00)")
    try:
        return await handler(request)
    except RequestError as exc:
        return exc.answer()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[MAX_BODY]
        return json_error(413, f"request body too large: the limit is {limit} bytes")
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        return json_error(
            exc.status,
            exc.reason,
            **{key: value for key, value in exc.headers.items() if key in {"Allow", "Location"}},
        )
    except web.RequestPayloadError:
        return json_error(400, "the request body could not be read: cut short or malformed")
    except Exception as exc:
        if db.unavailable(exc):
            log.warning("database unavailable answering %s: %r", request.path, exc)
            return unavailable("the database is unavailable; retry later").answer()
        log.exception("unhandled error answering %s %s", request.method, request.path)
        return json_error(500, "internal error; it has been logged")


class JsonErrorProtocol(web.RequestHandler):
    """aiohttp's connection handler, answering the errors of its HTTP parser in JSON."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # an answer was started: only the connection can go
            raise ConnectionError("cannot answer an error after the answer has begun")
        if isinstance(exc, LineTooLong):
            status = 431
            message = f"the request line or a header is longer than {self.max_field_size} bytes"
        elif isinstance(exc, HttpProcessingError):
            detail = exc.message.splitlines()[0].rstrip(":") if exc.message else "unreadable"
            message = f"malformed request: {detail}"
        elif status == 500:
            log.error("error answering a request from %s", request.remote, exc_info=exc)
            message = "internal error; it has been logged"
        else:
            message = HTTPStatus(status).phrase
        if status < 500:
            log.info("refused a request from %s: %s", request.remote, message)
        answer = json_error(status, message)
        answer.force_close()
        return answer


class JsonErrorServer(web.Server):
    def __call__(self) -> web.RequestHandler:
        return JsonErrorProtocol(self, loop=self._loop, **self._kwargs)


class JsonErrorRunner(web.AppRunner):
    """An AppRunner whose connections answer the HTTP parser's own errors in JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        kwargs: dict[str, Any] = server._kwargs
        return JsonErrorServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **kwargs,
        )
