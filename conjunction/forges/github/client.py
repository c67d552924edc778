"""The one way the app calls GitHub: gidgethub clients that follow one policy, and their factory.

Every request of a `PolicyAPI` (the adapter's, the handlers', the poller's, setup's):

- content-creating calls (POST, PATCH, PUT, DELETE) made as an installation are paced under
  GitHub's secondary limits (`ContentPacer`: 80 a minute, 500 an hour per installation);
- 5xx answers, time-outs and lost connections are retried a few times, with exponential
  backoff and jitter; then the error is raised. Never for a dispatch (workflow_dispatch,
  repository_dispatch): one whose answer was lost may have started a run, so the job that
  made it retries instead and asks GitHub first what it started (`find_started`). A 5xx is
  not retried there either: GitHub does not document it as "nothing started" (a 502 or 504
  from its front end can come after the work was done);
- a rate-limit answer (403 or 429 with Retry-After, an exhausted X-RateLimit-Remaining, or a
  secondary-limit message) raises `RetryLater`, so the job runs again when GitHub allows it;
- a write GitHub refuses for what it holds (400, 404, 410, 422: a body over its limits, a
  field it does not take, a thing that is gone) raises `RequestRefused`, which ends the job at
  once with GitHub's reason: the same request would be refused the same way again;
- GETs are conditional through gidgethub's own `cache`: an unchanged answer (304, which GitHub
  does not count against the rate limit) is served from it.
"""

from __future__ import annotations

import functools
import http
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import cachetools
import gidgethub
import gidgethub.abc
import gidgethub.aiohttp
from uritemplate import variable

from conjunction import metrics
from conjunction.forges.github.auth import GitHubAppAuth
from conjunction.forges.github.ratelimit import ContentPacer, rate_limit_delay
from conjunction.names import split_project
from conjunction.queue import PermanentError, RetryLater, backoff

log = logging.getLogger(__name__)

USER_AGENT = "conjunction"
CONTENT_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
TRANSIENT_ERRORS = (gidgethub.GitHubBroken, TimeoutError, aiohttp.ClientError)
REFUSED_WRITES = frozenset({400, 404, 410, 422})  # no retry of the same write can pass


class RequestRefused(gidgethub.BadRequest, PermanentError):
    """GitHub refused a write for what it holds; still a `gidgethub.BadRequest` with its
    `status_code` for callers that expect one (a label made meanwhile, a dispatch refused)."""

    def __init__(self, status_code: int, message: str, errors: Any = None) -> None:
        super().__init__(http.HTTPStatus(status_code), message)
        self.errors = errors

    @classmethod
    def of(cls, exc: gidgethub.BadRequest, method: str, url: str) -> RequestRefused:
        path = url.partition("?")[0]
        detail = str(exc)
        errors = getattr(exc, "errors", None)
        if errors:
            detail += f" ({_errors(errors)})"
        return cls(int(exc.status_code), f"GitHub refused {method} {path}: {detail}", errors)


def _errors(errors: Any) -> str:
    """GitHub's list of validation errors, short: `body: too long`."""
    if not isinstance(errors, list):
        return str(errors)[:300]
    described = []
    for error in errors[:5]:
        if isinstance(error, dict):
            where = error.get("field") or error.get("resource") or ""
            what = error.get("message") or error.get("code") or ""
            described.append(f"{where}: {what}" if where else str(what))
        else:
            described.append(str(error))
    return "; ".join(described)[:300]


def _response_cache() -> MutableMapping[str, Any]:
    return cachetools.LRUCache(maxsize=500)


@dataclass
class Policy:
    """What all clients of the app share: the pacer, the response cache, how to retry."""

    pacer: ContentPacer = field(default_factory=ContentPacer)
    cache: MutableMapping[str, Any] = field(default_factory=_response_cache)
    retries: int = 3
    # The n-th retry waits between backoff/2 and backoff * 2**(n-1) seconds, at most max_backoff.
    backoff: float = 1.0
    max_backoff: float = 30.0


class PolicyAPI(gidgethub.abc.GitHubAPI):
    """A gidgethub API whose every request follows `Policy`.

    The transport (`_request` and `sleep`) comes from a subclass: `GitHubClient` in the
    service, the fake GitHub in tests. `pace_key` names the installation whose content
    calls are paced; None (anonymous, or as the app) is not paced.
    """

    def __init__(
        self,
        *args: Any,
        policy: Policy,
        pace_key: str | None = None,
        on_unauthorized: Callable[[], object] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, cache=policy.cache, **kwargs)
        self.policy = policy
        self.pace_key = pace_key
        self._on_unauthorized = on_unauthorized
        self.requests_sent = 0  # what this client cost of its rate limit, 304s included

    async def _make_request(
        self,
        method: str,
        url: str,
        url_vars: Mapping[str, variable.VariableValue] | None,
        data: Any,
        accept: str,
        jwt: str | None = None,
        oauth_token: str | None = None,
        content_type: str = gidgethub.abc.JSON_CONTENT_TYPE,
        extra_headers: dict[str, str] | None = None,
    ) -> tuple[bytes, str | None, int]:
        attempt = 0
        while True:
            if self.pace_key is not None and method in CONTENT_METHODS:
                await self.policy.pacer.wait(self.pace_key)
            self.requests_sent += 1
            try:
                answer = await super()._make_request(
                    method,
                    url,
                    url_vars,
                    data,
                    accept,
                    jwt=jwt,
                    oauth_token=oauth_token,
                    content_type=content_type,
                    extra_headers=extra_headers,
                )
            except gidgethub.BadRequest as exc:
                delay = rate_limit_delay(exc, time.time())
                if delay is not None:
                    who = self.pace_key or "anonymous"
                    raise RetryLater(delay, f"GitHub rate limit ({who})") from exc
                if exc.status_code == 401 and self._on_unauthorized is not None:
                    self._on_unauthorized()
                if (
                    method in CONTENT_METHODS
                    and int(exc.status_code) in REFUSED_WRITES
                    and not _starts_a_run(method, url)  # the trigger says why, on its row
                ):
                    raise RequestRefused.of(exc, method, url) from exc
                raise
            except TRANSIENT_ERRORS as exc:
                attempt += 1
                if attempt > self.policy.retries or _starts_a_run(method, url):
                    raise
                delay = backoff(attempt, self.policy.backoff, self.policy.max_backoff)
                log.info("GitHub %s %s failed (%r), retry in %.1fs", method, url, exc, delay)
                await self.sleep(delay)
                continue
            if self.rate_limit is not None:
                who = self.pace_key or ("app" if jwt else "anonymous")
                log.debug(
                    "GitHub rate limit (%s): %d of %d left",
                    who,
                    self.rate_limit.remaining,
                    self.rate_limit.limit,
                )
                metrics.RATE_LIMIT_REMAINING.labels("github", who).set(self.rate_limit.remaining)
                metrics.RATE_LIMIT.labels("github", who).set(self.rate_limit.limit)
            return answer


def _starts_a_run(method: str, url: str) -> bool:
    """A workflow_dispatch or repository_dispatch: a call that must not be repeated blindly."""
    return method == "POST" and url.partition("?")[0].rstrip("/").endswith("/dispatches")


class GitHubClient(PolicyAPI, gidgethub.aiohttp.GitHubAPI):
    """`PolicyAPI` over an aiohttp session: what the service uses."""


class Connect(Protocol):
    """Makes a policy client with gidgethub's credentials; none: anonymous."""

    def __call__(
        self,
        *,
        oauth_token: str | None = None,
        app_id: str | None = None,
        private_key: str | None = None,
        pace_key: str | None = None,
        on_unauthorized: Callable[[], object] | None = None,
    ) -> PolicyAPI: ...


def aiohttp_connect(
    session: aiohttp.ClientSession, *, api_url: str, policy: Policy | None = None
) -> Connect:
    """Clients reaching `api_url` (github.com or an Enterprise Server) over session, all
    sharing one policy: its pacer and its cache."""
    return functools.partial(
        GitHubClient,
        session,
        USER_AGENT,
        base_url=api_url.rstrip("/"),
        policy=policy or Policy(),
    )


class GitHubClients:
    """Policy clients of the app: as an installation, for a project, anonymous, as the app."""

    def __init__(
        self,
        auth: GitHubAppAuth,
        connect: Connect,
        *,
        installation_lookup: Callable[[str], Awaitable[int | None]] | None = None,
    ) -> None:
        self._auth = auth
        self._connect = connect
        self._installation_lookup = installation_lookup
        self._anonymous: PolicyAPI | None = None

    def anonymous(self) -> PolicyAPI:
        """For public repositories the app is not installed on (60 calls an hour): one client,
        so that its `rate_limit` is what GitHub last said of this address's allowance."""
        if self._anonymous is None:
            self._anonymous = self._connect()
        return self._anonymous

    def app(self) -> PolicyAPI:
        """Authenticated as the app itself, by a JWT that gidgethub signs and renews."""
        return self._connect(app_id=self._auth.app_id, private_key=self._auth.private_key)

    async def for_installation(self, installation_id: int) -> PolicyAPI:
        token = await self._auth.installation_token(self.app(), installation_id)
        return self._connect(
            oauth_token=token,
            pace_key=f"installation {installation_id}",
            on_unauthorized=functools.partial(self._auth.forget, installation_id),
        )

    async def for_project(self, project: str) -> PolicyAPI:
        """A client for `github.com/owner/repo`; LookupError when the app is not installed."""
        owner, _, repo = split_project(project)[1].partition("/")
        installation_id = None
        if self._installation_lookup is not None:
            installation_id = await self._installation_lookup(project)
        if installation_id is None:
            installation_id = await self._auth.installation_for_repo(self.app(), owner, repo)
        if installation_id is None:
            raise LookupError(f"the Conjunction app is not installed on {owner}/{repo}")
        return await self.for_installation(installation_id)


async def convert_manifest(gh: gidgethub.abc.GitHubAPI, code: str) -> dict[str, Any]:
    """The app GitHub created in the manifest flow, for the code it redirected with: its
    `id`, `pem` (private key), `webhook_secret`, `html_url`, `name` and more.

    `gh` is anonymous: `aiohttp_connect(session, api_url=...)()`. Raises gidgethub's
    HTTPException when GitHub refuses the code, RetryLater on a rate limit.
    """
    answer: dict[str, Any] = await gh.post(
        "/app-manifests/{code}/conversions", {"code": code}, data=b""
    )
    return answer
