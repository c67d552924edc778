"""Pacing for GitHub's secondary rate limits, and reading its rate-limit answers."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime

import gidgethub

from conjunction.queue import RetryLater

# GitHub's advice for a secondary rate limit that names no wait: at least a minute.
DEFAULT_RATE_LIMIT_WAIT = 60.0
# A job sleeps this long at most for its turn; a longer wait postpones it instead, so that a
# paced installation's jobs hold no worker slot while they wait.
MAX_PACING_SLEEP = 1.0
# GitHub counts a call when it arrives, a little after the pacer let it go (a token to fetch, a
# connection to open): a call goes this long after the oldest one of its window has left it.
PACING_MARGIN = 1.0
SECONDARY_LIMIT_WORDS = ("rate limit", "abuse detection")


class ContentPacer:
    """Spaces content-creating calls (statuses, check runs, comments) per key.

    GitHub allows about 80 such calls a minute and 500 an hour per installation;
    both are tracked as sliding windows, with a `margin` past each. A turn more than
    `max_sleep` away raises `RetryLater` instead of sleeping.
    """

    def __init__(
        self,
        per_minute: int = 80,
        per_hour: int = 500,
        *,
        max_sleep: float = MAX_PACING_SLEEP,
        margin: float = PACING_MARGIN,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._windows = ((60.0 + margin, per_minute), (3600.0 + margin, per_hour))
        self._longest = max(window for window, _ in self._windows)
        self._max_sleep = max_sleep
        self._clock = clock
        self._sleep = sleep
        self._calls: dict[str, list[float]] = {}

    def _delay(self, calls: list[float], now: float) -> float:
        delay = 0.0
        for window, limit in self._windows:
            in_window = len(calls) - bisect.bisect_right(calls, now - window)
            if in_window >= limit:
                # wait until the oldest of the last `limit` calls leaves the window
                delay = max(delay, calls[-limit] + window - now)
        return delay

    async def wait(self, key: str) -> None:
        """Sleep until one more call is allowed for key, then record that call."""
        calls = self._calls.setdefault(key, [])
        while True:
            now = self._clock()
            del calls[: bisect.bisect_right(calls, now - self._longest)]
            delay = self._delay(calls, now)
            if delay <= 0:
                break
            if delay > self._max_sleep:
                raise RetryLater(delay, f"GitHub's secondary rate limit for {key}")
            await self._sleep(delay)
        calls.append(now)


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait before retrying, from a response's headers, or None if no hint.

    Retry-After wins; otherwise an exhausted X-RateLimit-Remaining waits until
    X-RateLimit-Reset (at least one second).
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    retry_after = lowered.get("retry-after")
    if retry_after is not None:
        try:
            return max(float(retry_after), 0.0)
        except ValueError:
            try:
                return max(parsedate_to_datetime(retry_after).timestamp() - now, 0.0)
            except (TypeError, ValueError):
                pass
    if lowered.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in lowered:
        try:
            return max(float(lowered["x-ratelimit-reset"]) - now, 1.0)
        except ValueError:
            return None
    return None


def rate_limit_delay(exc: gidgethub.BadRequest, now: float) -> float | None:
    """Seconds to wait when exc is a (primary or secondary) rate limit, else None."""
    if exc.status_code not in (403, 429):
        return None
    delay = retry_after_seconds(exc.headers, now)
    if delay is not None:
        return delay
    message = str(exc).lower()
    if (
        isinstance(exc, gidgethub.RateLimitExceeded)
        or exc.status_code == 429
        or any(words in message for words in SECONDARY_LIMIT_WORDS)
    ):
        return DEFAULT_RATE_LIMIT_WAIT
    return None
