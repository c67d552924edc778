"""The one Gitea client: the REST API (`/api/v1`) over aiohttp, with a bot account's token.

No maintained asynchronous client library for Gitea exists (py-gitea and giteapy are blocking and
stale; the asynchronous ones on PyPI are single-release or generated wholesale), and Conjunction
uses some twenty routes, so this is a thin client: every call is paced (the same `Pacer` as
GitLab's client: at most `REQUESTS_PER_MINUTE`, and none before a reset the server announces in
`RateLimit-*` headers), and a 429, a 5xx, a time-out or a lost connection is retried up to
`MAX_RETRIES` times with backoff — except for calls that may have taken effect before the error
(starting a workflow), which are sent once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from conjunction.forges.gitlab.client import Pacer
from conjunction.queue import PermanentError

log = logging.getLogger(__name__)

# Gitea has no API rate limit of its own; a public instance (Codeberg) may sit behind one, which
# this pace stays well within.
REQUESTS_PER_MINUTE = 600
MAX_RETRIES = 4
TIMEOUT = 30.0
PAGE_SIZE = 50  # Gitea's default MAX_RESPONSE_ITEMS
MAX_PAGES = 20
RETRIED = {429, 500, 502, 503, 504}
REFUSED_WRITES = frozenset({400, 404, 410, 422})  # no retry of the same write can pass
TRANSIENT = (aiohttp.ClientError, asyncio.TimeoutError)


class GiteaError(Exception):
    """Gitea answered with an error status; `message` is its own words, on one line."""

    def __init__(self, status: int, message: str, method: str = "", path: str = "") -> None:
        super().__init__(f"{method} {path}: {status} {message}".strip())
        self.status = status
        self.message = message

    @property
    def transient(self) -> bool:
        return self.status in RETRIED


class GiteaRefused(GiteaError, PermanentError):
    """A write Gitea refused for what it holds: sent again, it would be refused again, so the
    job ends at once with Gitea's reason."""


@dataclass(frozen=True)
class Answer:
    status: int
    data: Any
    text: str


def message_of(status: int, text: str) -> str:
    """Gitea's error message (`{"message": …}`), else the body, on one line."""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("message"):
        text = str(data["message"])
    return " ".join(text.split())[:300] or f"HTTP {status}"


def is_transient(exc: BaseException) -> bool:
    """Worth another try later: the server overloaded or out of reach."""
    return isinstance(exc, TRANSIENT) or (isinstance(exc, GiteaError) and exc.transient)


class GiteaClient:
    """The bot account's client for one Gitea or Forgejo instance."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        pacer: Pacer | None = None,
        max_retries: int = MAX_RETRIES,
        timeout: float = TIMEOUT,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.api_url = f"{self.url}/api/v1"
        self._token = token
        self.pacer = pacer or Pacer(REQUESTS_PER_MINUTE)
        self.max_retries = max_retries
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers={"Authorization": f"token {self._token}", "Accept": "application/json"},
            )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        retry: bool = True,
    ) -> Answer:
        """One call to `/api/v1{path}`; GiteaError for an error status. With `retry`, a 429, a
        5xx, a time-out or a lost connection is tried again; without it only a 429 is (nothing
        was done)."""
        attempt = 0
        while True:
            await self.pacer.wait()
            try:
                answer = await self._send(method, path, params, body)
            except TRANSIENT:
                self.pacer.sent()
                if not retry or attempt >= self.max_retries:
                    raise
            else:
                if answer.status < 400:
                    return answer
                message = message_of(answer.status, answer.text)
                refused = method != "GET" and answer.status in REFUSED_WRITES
                error = (GiteaRefused if refused else GiteaError)(
                    answer.status, message, method, path
                )
                if not error.transient or attempt >= self.max_retries:
                    raise error
                if not retry and answer.status != 429:
                    raise error
            attempt += 1
            await self._sleep(min(2.0**attempt, 30.0) * (0.5 + random.random() / 2))

    async def _send(
        self, method: str, path: str, params: Mapping[str, str | int] | None, body: Any
    ) -> Answer:
        async with self._http().request(
            method, f"{self.api_url}{path}", params=params, json=body
        ) as response:
            text = await response.text(errors="replace")
            self.pacer.sent()
            self.pacer.observe(response.headers)
            data: Any = None
            if text and response.content_type == "application/json":
                with contextlib.suppress(ValueError):  # a raw file served as JSON, say
                    data = json.loads(text)
            if response.status == 429 and (wait := _retry_after(response.headers)) is not None:
                await self._sleep(wait)
            return Answer(response.status, data, text)

    async def get(self, path: str, **params: str | int) -> Any:
        return (await self.request("GET", path, params=params or None)).data

    async def pages(self, path: str, **params: str | int) -> list[Any]:
        """Every item of a listed route, page by page (at most MAX_PAGES pages)."""
        items: list[Any] = []
        for page in range(1, MAX_PAGES + 1):
            batch = await self.get(path, **params, page=page, limit=PAGE_SIZE)
            if not isinstance(batch, list):
                break
            items.extend(batch)
            if len(batch) < PAGE_SIZE:
                break
        return items

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), 60.0)
    except ValueError:
        return None
