"""Pacing for GitHub's secondary rate limits, and reading its rate-limit headers."""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime


class ContentPacer:
    """Spaces content-creating calls (statuses, check runs, comments) per key.

    GitHub allows about 80 such calls a minute and 500 an hour per installation;
    both are tracked as sliding windows.
    """

    def __init__(
        self,
        per_minute: int = 80,
        per_hour: int = 500,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._windows = ((60.0, per_minute), (3600.0, per_hour))
        self._longest = max(window for window, _ in self._windows)
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
