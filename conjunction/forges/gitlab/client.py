"""The one GitLab client: python-gitlab with a bot account's token, paced, retried, off the loop.

python-gitlab is blocking (requests), so every call runs in a worker thread (`asyncio.to_thread`).
It retries 429 answers (honouring `Retry-After` / `RateLimit-Reset`) and transient 5xx answers
and connection errors itself, sleeping in that thread. Before each call the `Pacer` waits, on
the event loop, until the requests of the last minute are under GitLab's documented limit and
any reset GitLab announced (`RateLimit-Remaining: 0`) has passed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import gitlab
import requests
from gitlab.v4.objects import Project

from conjunction import metrics

T = TypeVar("T")

# GitLab.com's documented limit for authenticated API traffic is 2,000 requests a minute per
# user; a self-managed instance sets its own and tells a client that reaches it through the
# RateLimit headers, which the pacer follows too.
REQUESTS_PER_MINUTE = 2000
MAX_RETRIES = 5
TIMEOUT = 30.0


class Pacer:
    """At most `limit` requests in any `window` seconds, and none before an announced reset.

    Requests are counted where they are sent (in worker threads); waiting happens on the event
    loop before a call is handed to a thread.
    """

    def __init__(
        self,
        limit: int = REQUESTS_PER_MINUTE,
        window: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def sent(self) -> None:
        with self._lock:
            self._sent.append(self._clock())

    def observe(self, headers: Mapping[str, str]) -> None:
        """Follow GitLab's RateLimit headers: with none remaining, pause until the reset."""
        remaining, reset = headers.get("RateLimit-Remaining"), headers.get("RateLimit-Reset")
        limit = headers.get("RateLimit-Limit")
        if remaining is not None and remaining.isdigit():
            metrics.RATE_LIMIT_REMAINING.labels("gitlab", "bot").set(int(remaining))
        if limit is not None and limit.isdigit():
            metrics.RATE_LIMIT.labels("gitlab", "bot").set(int(limit))
        if remaining is None or reset is None or not remaining.isdigit() or int(remaining) > 0:
            return
        try:
            delay = float(reset) - self._wall_clock()
        except ValueError:
            return
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + max(delay, 0.0))

    def _delay(self) -> float:
        with self._lock:
            now = self._clock()
            while self._sent and self._sent[0] <= now - self.window:
                self._sent.popleft()
            delay = self._paused_until - now
            if len(self._sent) >= self.limit:
                delay = max(delay, self._sent[0] + self.window - now)
            return delay

    async def wait(self) -> None:
        while (delay := self._delay()) > 0:
            await self._sleep(delay)


class PacedGitlab(gitlab.Gitlab):
    """python-gitlab's client whose every HTTP request — each of python-gitlab's own retries
    too, as GitLab counts them all — is counted by the pacer, whose RateLimit headers it
    follows, and which is retried at most `max_retries` times."""

    def __init__(self, *args: Any, pacer: Pacer, max_retries: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pacer = pacer
        self.max_retries = max_retries
        # requests calls response hooks once per response, retries included
        self.session.hooks["response"].append(self._answered)

    def _answered(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.pacer.sent()
        self.pacer.observe(response.headers)

    def http_request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("max_retries", self.max_retries)
        return super().http_request(*args, **kwargs)


class GitLabClient:
    """The bot account's client for one GitLab instance."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        pacer: Pacer | None = None,
        max_retries: int = MAX_RETRIES,
        timeout: float = TIMEOUT,
    ) -> None:
        self.pacer = pacer or Pacer()
        self.gl = PacedGitlab(
            url,
            private_token=token,
            timeout=timeout,
            retry_transient_errors=True,
            per_page=100,
            pacer=self.pacer,
            max_retries=max_retries,
        )

    def project(self, path: str) -> Project:
        """A project by its path (`group/sub/app`) without asking GitLab; python-gitlab
        URL-encodes the path in every call made through it (`group%2Fsub%2Fapp`)."""
        return self.gl.projects.get(path, lazy=True)

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking python-gitlab call, paced, in a worker thread."""
        await self.pacer.wait()
        return await asyncio.to_thread(call, *args, **kwargs)

    def close(self) -> None:
        self.gl.session.close()
