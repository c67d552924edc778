"""The fake GitHub every GitHub test uses: canned answers per route, every call recorded.

`FakeGitHub` is the app's own policy client (`PolicyAPI`) with only the transport replaced:
pacing, retries, rate-limit postponement and the response cache run for real. Like GitHub,
it tags every JSON answer to a GET with an ETag and answers 304 to a matching If-None-Match.
Its clock and sleep are fake (`FakeTime`): waiting takes no time and every wait is recorded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from conjunction.forges.github.client import Policy, PolicyAPI
from conjunction.forges.github.ratelimit import ContentPacer
from testkit.keys import PRIVATE_KEY_PEM, RSA_KEY


@dataclass
class FakeTime:
    """A clock, and a sleep that only moves it on; every sleep is recorded."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def fake_policy(time: FakeTime, **pacer_limits: int) -> Policy:
    """The service's policy, pacing on fake time."""
    return Policy(pacer=ContentPacer(**pacer_limits, clock=time.clock, sleep=time.sleep))


@dataclass
class Call:
    method: str
    url: str  # absolute
    path: str  # relative to base_url, with any query string
    body: Any  # decoded JSON, or None
    headers: dict[str, str]
    status: int = 0  # of the answer; 0 when an error was raised instead


@dataclass
class _Expectation:
    method: str
    path: str
    status: int
    body: Any
    headers: dict[str, str]
    error: BaseException | None
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

    def answer(self, method: str, request_headers: Mapping[str, str]) -> tuple[int, dict, bytes]:
        if isinstance(self.body, str):  # plain text: a job's log, where GitHub redirects to
            headers = {"content-type": "text/plain; charset=utf-8", **self.headers}
            return self.status, headers, self.body.encode()
        headers = {"content-type": "application/json; charset=utf-8", **self.headers}
        payload = b"" if self.body is None else json.dumps(self.body).encode()
        if method == "GET" and self.status == 200 and payload:
            etag = headers.setdefault("etag", f'"{hashlib.sha1(payload).hexdigest()}"')
            if request_headers.get("if-none-match") == etag:
                return 304, {"etag": etag}, b""
        return self.status, headers, payload

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status} (used {self.used})"


class FakeGitHub(PolicyAPI):
    """Answers from a table of (method, path) -> response, records every call, fails on an
    unexpected one; `assert_all_called` fails when an expected call never came.

    Answers go back raw through ``_request``, so gidgethub and the policy handle them as
    they would GitHub's. By default it acts as one installation (its content calls paced);
    `connect` gives other clients (anonymous, the app, other installations) on the same fake.
    """

    def __init__(
        self,
        base_url: str = "https://api.github.com",
        requester: str = "conjunction-tests",
        *,
        time: FakeTime | None = None,
        policy: Policy | None = None,
        pace_key: str | None = "installation 1",
        **credentials: Any,
    ) -> None:
        self.time = time or FakeTime()
        super().__init__(
            requester,
            base_url=base_url,
            policy=policy or fake_policy(self.time),
            pace_key=pace_key,
            **credentials,
        )
        self.calls: list[Call] = []
        self._expectations: list[_Expectation] = []

    def connect(self, *, pace_key: str | None = None, **credentials: Any) -> FakeGitHub:
        """Another client of the same GitHub (answers, calls, time and policy shared): the
        `Connect` of `GitHubClients` in tests."""
        return self._sibling(self.policy, pace_key=pace_key, **credentials)

    def restarted(self) -> FakeGitHub:
        """The same GitHub seen by a restarted service: a new pacer and an empty cache."""
        return self._sibling(fake_policy(self.time), pace_key=self.pace_key)

    def _sibling(self, policy: Policy, **credentials: Any) -> FakeGitHub:
        other = FakeGitHub(
            self.base_url, self.requester, time=self.time, policy=policy, **credentials
        )
        other.calls = self.calls
        other._expectations = self._expectations
        return other

    def expect_installation_tokens(self, *installations: int) -> None:
        """Issue a token `token-<id>` for each installation, once."""
        for installation in installations:
            self.expect(
                "POST",
                f"/app/installations/{installation}/access_tokens",
                status=201,
                body=token_answer(f"token-{installation}"),
            )

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
        error: BaseException | None = None,
        times: int = 1,
        repeat: bool = False,
    ) -> None:
        """Answer ``times`` calls (or any number with ``repeat``) to a route, or raise
        ``error`` (a time-out, a lost connection) instead of answering.

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
                error,
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
        call = Call(method, url, path, json.loads(body) if body else None, dict(headers))
        self.calls.append(call)
        for expectation in self._expectations:
            if not expectation.exhausted and expectation.matches(method, path):
                break
        else:
            raise AssertionError(f"unexpected GitHub call: {method} {path}")
        expectation.used += 1
        if expectation.error is not None:
            raise expectation.error
        status, response_headers, payload = expectation.answer(method, headers)
        call.status = status
        return status, response_headers, payload

    async def sleep(self, seconds: float) -> None:
        await self.time.sleep(seconds)


@pytest.fixture
def fake_github() -> Iterator[FakeGitHub]:
    gh = FakeGitHub()
    yield gh
    gh.assert_all_called()


@pytest.fixture(scope="session")
def app_private_key() -> rsa.RSAPrivateKey:
    """The GitHub App's private key; `app_private_pem` is the same key as settings take it."""
    return RSA_KEY


@pytest.fixture(scope="session")
def app_private_pem() -> str:
    return PRIVATE_KEY_PEM


def token_answer(token: str, expires_at: str = "2099-01-01T00:00:00Z") -> dict[str, Any]:
    """GitHub's answer to POST /app/installations/{id}/access_tokens."""
    return {"token": token, "expires_at": expires_at, "permissions": {"checks": "write"}}
