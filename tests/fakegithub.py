"""A fake GitHub API for tests: canned answers per route, every call recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from gidgethub.abc import GitHubAPI


@dataclass
class Call:
    method: str
    url: str  # absolute
    path: str  # relative to base_url, with any query string
    body: Any  # decoded JSON, or None
    headers: dict[str, str]


@dataclass
class _Expectation:
    method: str
    path: str
    status: int
    body: Any
    headers: dict[str, str]
    times: int
    repeat: bool
    used: int = 0

    @property
    def exhausted(self) -> bool:
        return not self.repeat and self.used >= self.times

    def matches(self, method: str, path: str) -> bool:
        if "?" not in self.path:
            path = path.split("?", 1)[0]
        return method == self.method and path == self.path

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status} (used {self.used})"


class FakeGitHub(GitHubAPI):
    """Answers from a table of (method, url-or-path) -> response, records every call,
    fails on unexpected ones.

    Responses go back raw through ``_request``, so gidgethub itself turns error
    statuses into BadRequest, GitHubBroken, RateLimitExceeded and so on.
    """

    def __init__(
        self, base_url: str = "https://api.github.com", requester: str = "conjunction-tests"
    ) -> None:
        super().__init__(requester, base_url=base_url)
        self.calls: list[Call] = []
        self._expectations: list[_Expectation] = []

    def _path(self, url: str) -> str:
        base = self.base_url.rstrip("/")
        if url == base or url.startswith((base + "/", base + "?")):
            return url[len(base) :] or "/"
        return url  # not under base_url: kept absolute, so it matches no relative path

    def expect(
        self,
        method: str,
        path: str,
        *,
        status: int = 200,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        repeat: bool = False,
    ) -> None:
        """Answer ``times`` calls (or any number with ``repeat``) to a route.

        ``path`` is relative to base_url; the query string of a call is ignored unless
        ``path`` has one. Several expectations for one route answer in order.
        """
        self._expectations.append(
            _Expectation(
                method.upper(),
                self._path(path),
                status,
                body,
                {k.lower(): v for k, v in (headers or {}).items()},
                times,
                repeat,
            )
        )

    def calls_to(self, method: str, path_prefix: str) -> list[Call]:
        method = method.upper()
        return [c for c in self.calls if c.method == method and c.path.startswith(path_prefix)]

    def assert_all_called(self) -> None:
        unused = [
            e
            for e in self._expectations
            if (e.repeat and e.used == 0) or (not e.repeat and e.used < e.times)
        ]
        if unused:
            raise AssertionError(
                "expected GitHub calls never made:\n" + "\n".join(f"  {e}" for e in unused)
            )

    async def _request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> tuple[int, Mapping[str, str], bytes]:
        method = method.upper()
        path = self._path(url)
        self.calls.append(
            Call(method, url, path, json.loads(body) if body else None, dict(headers))
        )
        for expectation in self._expectations:
            if not expectation.exhausted and expectation.matches(method, path):
                break
        else:
            raise AssertionError(f"unexpected GitHub call: {method} {path}")
        expectation.used += 1
        response_headers = {"content-type": "application/json; charset=utf-8"}
        response_headers.update(expectation.headers)
        payload = b"" if expectation.body is None else json.dumps(expectation.body).encode()
        return expectation.status, response_headers, payload

    async def sleep(self, seconds: float) -> None:
        pass


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    gh = FakeGitHub()
    yield gh
    gh.assert_all_called()
