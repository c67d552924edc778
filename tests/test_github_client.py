"""The one GitHub client: pacing, retries, rate limits and the cache, as GitHub would see them."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import gidgethub
import pytest
from aiohttp import web

from conjunction.db import create_engine, migrate, sessionmaker
from conjunction.forges.github import installations
from conjunction.forges.github.auth import GitHubAppAuth
from conjunction.forges.github.client import (
    GitHubClient,
    GitHubClients,
    Policy,
    aiohttp_connect,
    convert_manifest,
)
from conjunction.queue import RetryLater
from testkit.statements import statements
from tests.fakegithub import FakeGitHub, FakeTime, fake_policy, token_answer

STATUSES = "/repos/acme/lib/statuses/abc"
REPO = "/repos/acme/lib"
BROKEN: dict[str, Any] = {"status": 502, "body": {"message": "Bad gateway"}}


def paced_github(**limits: int) -> FakeGitHub:
    time = FakeTime()
    return FakeGitHub(time=time, policy=fake_policy(time, **limits))


# pacing


async def test_content_calls_of_an_installation_are_paced() -> None:
    gh = paced_github(per_minute=2)
    gh.expect("POST", STATUSES, status=201, body={}, times=3)
    gh.expect("GET", REPO, body={"id": 1}, times=3)
    for _ in range(3):
        await gh.getitem(REPO)
    assert gh.time.sleeps == []  # reading is not paced

    for _ in range(2):
        await gh.post(STATUSES, data={"state": "success"})
    # the third would wait for the first to leave the minute: its job is postponed instead
    with pytest.raises(RetryLater) as excinfo:
        await gh.post(STATUSES, data={"state": "success"})
    assert excinfo.value.delay == 61.0
    gh.time.now += 61
    await gh.post(STATUSES, data={"state": "success"})
    assert gh.time.sleeps == []
    gh.assert_all_called()


async def test_pacing_is_per_installation_and_not_for_anonymous_calls() -> None:
    gh = paced_github(per_minute=1)
    gh.expect("POST", STATUSES, status=201, body={}, times=4)
    await gh.post(STATUSES, data={})
    await gh.connect(pace_key="installation 2").post(STATUSES, data={})
    anonymous = gh.connect()
    await anonymous.post(STATUSES, data={})
    await anonymous.post(STATUSES, data={})
    assert gh.time.sleeps == []
    gh.assert_all_called()


# retries


async def test_server_error_then_success_is_retried(fake_github: FakeGitHub) -> None:
    fake_github.expect("POST", STATUSES, **BROKEN)
    fake_github.expect("POST", STATUSES, status=201, body={"id": 7})

    assert await fake_github.post(STATUSES, data={"state": "success"}) == {"id": 7}
    assert [call.status for call in fake_github.calls] == [502, 201]
    assert fake_github.calls[1].body == {"state": "success"}
    [wait] = fake_github.time.sleeps
    assert 0.5 <= wait <= 1.0  # one second, with jitter


async def test_server_error_that_persists_raises_after_the_retries(
    fake_github: FakeGitHub,
) -> None:
    fake_github.expect("GET", REPO, **BROKEN, times=4)
    with pytest.raises(gidgethub.GitHubBroken):
        await fake_github.getitem(REPO)
    assert len(fake_github.calls) == 4  # the first try and three retries
    # exponential backoff with jitter: at most 1, 2 and 4 seconds, at least half a second
    waits = fake_github.time.sleeps
    assert len(waits) == 3
    for wait, ceiling in zip(waits, (1.0, 2.0, 4.0), strict=True):
        assert 0.5 <= wait <= ceiling


async def test_timeouts_and_lost_connections_are_retried(fake_github: FakeGitHub) -> None:
    fake_github.expect("GET", REPO, error=TimeoutError())
    fake_github.expect("GET", REPO, error=aiohttp.ServerDisconnectedError())
    fake_github.expect("GET", REPO, body={"default_branch": "main"})
    assert await fake_github.getitem(REPO) == {"default_branch": "main"}
    assert len(fake_github.time.sleeps) == 2


async def test_a_refusal_is_not_retried(fake_github: FakeGitHub) -> None:
    fake_github.expect("GET", REPO, status=404, body={"message": "Not Found"})
    with pytest.raises(gidgethub.BadRequest) as excinfo:
        await fake_github.getitem(REPO)
    assert excinfo.value.status_code == 404
    assert fake_github.time.sleeps == []


# rate limits


async def test_secondary_limit_with_retry_after_postpones_the_job(
    fake_github: FakeGitHub,
) -> None:
    fake_github.expect(
        "POST",
        STATUSES,
        status=403,
        body={"message": "You have exceeded a secondary rate limit. Please wait."},
        headers={"Retry-After": "30"},
    )
    with pytest.raises(RetryLater) as excinfo:
        await fake_github.post(STATUSES, data={})
    assert excinfo.value.delay == 30
    assert len(fake_github.calls) == 1  # not hammered
    assert fake_github.time.sleeps == []


@pytest.mark.parametrize(
    ("status", "message", "headers", "delay"),
    [
        (429, "Too many requests", {}, 60.0),
        (403, "You have triggered an abuse detection mechanism", {}, 60.0),
        (403, "You have exceeded a secondary rate limit", {}, 60.0),
        (429, "Too many requests", {"Retry-After": "5"}, 5.0),
    ],
)
async def test_rate_limit_answers_name_their_wait(
    fake_github: FakeGitHub, status: int, message: str, headers: dict[str, str], delay: float
) -> None:
    fake_github.expect("GET", REPO, status=status, body={"message": message}, headers=headers)
    with pytest.raises(RetryLater) as excinfo:
        await fake_github.getitem(REPO)
    assert excinfo.value.delay == delay


async def test_exhausted_primary_limit_waits_for_the_reset(fake_github: FakeGitHub) -> None:
    headers = {
        "X-RateLimit-Limit": "5000",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "4000000000",
    }
    fake_github.expect("GET", REPO, status=403, body={"message": "API rate limit"}, headers=headers)
    with pytest.raises(RetryLater) as excinfo:
        await fake_github.getitem(REPO)
    assert excinfo.value.delay > 3600


async def test_a_forbidden_call_is_not_a_rate_limit(fake_github: FakeGitHub) -> None:
    fake_github.expect(
        "POST", STATUSES, status=403, body={"message": "Resource not accessible by integration"}
    )
    with pytest.raises(gidgethub.BadRequest, match="not accessible"):
        await fake_github.post(STATUSES, data={})


# conditional requests


async def test_unchanged_answer_comes_from_the_cache(fake_github: FakeGitHub) -> None:
    fake_github.expect("GET", REPO, body={"default_branch": "main"}, headers={"ETag": '"v1"'})
    fake_github.expect("GET", REPO, status=304, headers={"ETag": '"v1"'})

    assert await fake_github.getitem(REPO) == {"default_branch": "main"}
    assert await fake_github.getitem(REPO) == {"default_branch": "main"}

    first, second = fake_github.calls
    assert "if-none-match" not in first.headers
    assert (second.headers["if-none-match"], second.status) == ('"v1"', 304)


async def test_a_changed_answer_replaces_the_cached_one(fake_github: FakeGitHub) -> None:
    fake_github.expect("GET", REPO, body={"default_branch": "main"}, times=2)
    fake_github.expect("GET", REPO, body={"default_branch": "trunk"}, times=2)
    branches = [(await fake_github.getitem(REPO))["default_branch"] for _ in range(4)]
    assert branches == ["main", "main", "trunk", "trunk"]
    assert [call.status for call in fake_github.calls] == [200, 304, 200, 304]


async def test_clients_of_one_service_share_the_cache(fake_github: FakeGitHub) -> None:
    fake_github.expect("GET", REPO, body={"default_branch": "main"}, times=3)
    await fake_github.getitem(REPO)
    await fake_github.connect().getitem(REPO)
    await fake_github.restarted().getitem(REPO)
    assert [call.status for call in fake_github.calls] == [200, 304, 200]


# GitHubClients


@pytest.fixture
def auth(app_private_pem: str) -> GitHubAppAuth:
    return GitHubAppAuth("12345", app_private_pem)


async def test_clients_for_installations_projects_and_anonymous(
    fake_github: FakeGitHub, auth: GitHubAppAuth
) -> None:
    async def lookup(project: str) -> int | None:
        return 22 if project == "github.com/acme/known" else None

    clients = GitHubClients(auth, fake_github.connect, installation_lookup=lookup)
    fake_github.expect("GET", "/repos/acme/app/installation", body={"id": 11})
    fake_github.expect("GET", "/repos/acme/other/installation", status=404, body={})
    fake_github.expect_installation_tokens(11, 22)
    fake_github.expect("GET", "/repos/acme/app", body={}, times=3)

    from_api = await clients.for_project("github.com/acme/app")
    from_db = await clients.for_project("github.com/acme/known")
    with pytest.raises(LookupError, match="not installed on acme/other"):
        await clients.for_project("github.com/acme/other")
    for gh in (from_api, from_db, clients.anonymous()):
        await gh.getitem("/repos/acme/app")

    authorizations = [call.headers.get("authorization") for call in fake_github.calls[-3:]]
    assert authorizations == ["token token-11", "token token-22", None]
    assert (from_api.pace_key, from_db.pace_key) == ("installation 11", "installation 22")
    for call in fake_github.calls[:-3]:
        assert call.headers["authorization"].startswith("bearer ")  # as the app


async def test_the_installations_of_calls_made_at_once_are_read_in_one_query(
    fake_github: FakeGitHub, auth: GitHubAppAuth, sqlite_url: str
) -> None:
    """A fan-out's batch makes its calls at once: one query finds all their installations."""
    database = create_engine(sqlite_url)
    await migrate(database)
    sessions = sessionmaker(database)
    await installations.remember(sessions, ["github.com/acme/a", "github.com/acme/b"], 7)
    await installations.remember(sessions, ["github.com/acme/c"], 8)
    clients = GitHubClients(
        auth, fake_github.connect, installation_lookup=installations.InstallationLookup(sessions)
    )
    fake_github.expect_installation_tokens(7, 8)
    fake_github.expect("GET", "/repos/acme/d/installation", status=404, body={})
    projects = ["github.com/acme/a", "github.com/acme/b", "github.com/acme/c", "github.com/acme/a"]

    with statements(database) as executed:
        found = await asyncio.gather(*(clients.for_project(name) for name in projects))
        with pytest.raises(LookupError, match="not installed on acme/d"):
            await clients.for_project("github.com/acme/d")
    await database.dispose()

    keys = [gh.pace_key for gh in found]
    assert keys == ["installation 7", "installation 7", "installation 8", "installation 7"]
    assert len(executed) == 2, executed  # the four at once, then the one after


async def test_a_refused_token_is_forgotten(fake_github: FakeGitHub, auth: GitHubAppAuth) -> None:
    clients = GitHubClients(auth, fake_github.connect)
    route = "/app/installations/5/access_tokens"
    fake_github.expect("POST", route, status=201, body=token_answer("revoked"))
    fake_github.expect("GET", REPO, status=401, body={"message": "Bad credentials"})
    fake_github.expect("POST", route, status=201, body=token_answer("fresh"))
    fake_github.expect("GET", REPO, body={})

    with pytest.raises(gidgethub.BadRequest):
        await (await clients.for_installation(5)).getitem(REPO)
    await (await clients.for_installation(5)).getitem(REPO)
    assert fake_github.calls[-1].headers["authorization"] == "token fresh"


async def test_enterprise_server_urls(auth: GitHubAppAuth) -> None:
    api = "https://ghe.example.com/api/v3"
    gh = FakeGitHub(base_url=api)
    clients = GitHubClients(auth, gh.connect)
    gh.expect("GET", "/repos/acme/lib/installation", body={"id": 5})
    gh.expect("POST", "/app/installations/5/access_tokens", status=201, body=token_answer("e"))
    await clients.for_project("ghe.example.com/acme/lib")
    assert [call.url for call in gh.calls] == [
        f"{api}/repos/acme/lib/installation",
        f"{api}/app/installations/5/access_tokens",
    ]
    gh.assert_all_called()


# the manifest flow


async def test_manifest_code_is_converted_without_credentials(fake_github: FakeGitHub) -> None:
    answer = {"id": 1, "pem": "KEY", "webhook_secret": "s", "html_url": "https://github.com/apps/c"}
    fake_github.expect("POST", "/app-manifests/a%2Fb/conversions", status=201, body=answer)
    assert await convert_manifest(fake_github.connect(), "a/b") == answer
    [call] = fake_github.calls
    assert "authorization" not in call.headers


# the service's client, over HTTP


async def test_the_service_client_applies_the_policy_over_http(aiohttp_server: Any) -> None:
    """`GitHubClient` (aiohttp) is a policy client: a 502 is retried, an ETag is reused."""
    asked: list[str | None] = []

    async def repo(request: web.Request) -> web.StreamResponse:
        asked.append(request.headers.get("If-None-Match"))
        if len(asked) == 1:
            return web.json_response({"message": "Bad gateway"}, status=502)
        if asked[-1] == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"'})
        return web.json_response({"default_branch": "main"}, headers={"ETag": '"v1"'})

    app = web.Application()
    app.router.add_get(REPO, repo)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        api_url = str(server.make_url(""))
        connect = aiohttp_connect(session, api_url=api_url, policy=Policy(backoff=0.01))
        gh = connect()
        assert isinstance(gh, GitHubClient)
        assert await gh.getitem(REPO) == {"default_branch": "main"}
        assert await connect().getitem(REPO) == {"default_branch": "main"}
    assert asked == [None, None, '"v1"']  # 502, retried; then a 304 from the shared cache
