"""The app's credentials: JWTs as GitHub sees them, installation tokens and their cache."""

import asyncio
import time

import jwt
import pytest

from conjunction.forges.github.auth import GitHubAppAuth, parse_timestamp
from tests.fakegithub import FakeTime, token_answer

NOW = parse_timestamp("2024-05-01T12:00:00Z")
APP_ID = "12345"


@pytest.fixture
def clock():
    return FakeTime(now=NOW)


@pytest.fixture
def auth(app_private_pem, clock):
    return GitHubAppAuth(APP_ID, app_private_pem, clock=clock.clock)


@pytest.fixture
def as_app(fake_github, auth):
    """The fake GitHub, called as the app (what `GitHubClients.app()` gives)."""
    return fake_github.connect(app_id=auth.app_id, private_key=auth.private_key)


def claims(call, key) -> dict:
    scheme, _, token = call.headers["authorization"].partition(" ")
    assert scheme.lower() == "bearer"
    return jwt.decode(token, key.public_key(), algorithms=["RS256"], options={"verify_exp": False})


def assert_app_jwt(call, key, before: int, after: int) -> None:
    """iss is the app; iat backdated 60 s for clock drift; exp within GitHub's 10 minutes."""
    found = claims(call, key)
    assert found["iss"] == APP_ID
    assert before - 60 <= found["iat"] <= after - 60
    assert after < found["exp"] <= before + 600


async def test_installation_token_is_asked_with_the_app_jwt_and_cached(
    auth,
    as_app,
    fake_github,
    app_private_key,
):
    fake_github.expect(
        "POST", "/app/installations/42/access_tokens", status=201, body=token_answer("t1")
    )
    before = int(time.time())
    assert await auth.installation_token(as_app, 42) == "t1"
    after = int(time.time())
    assert await auth.installation_token(as_app, 42) == "t1"

    [call] = fake_github.calls
    assert call.url == "https://api.github.com/app/installations/42/access_tokens"
    assert_app_jwt(call, app_private_key, before, after)


async def test_jobs_asking_for_one_token_at_once_share_one_request(
    auth, as_app, fake_github, monkeypatch
):
    fake_github.expect(
        "POST", "/app/installations/42/access_tokens", status=201, body=token_answer("t1")
    )
    post = as_app.post

    async def slow_post(*args, **kwargs):  # GitHub takes a moment: the others ask meanwhile
        await asyncio.sleep(0.01)
        return await post(*args, **kwargs)

    monkeypatch.setattr(as_app, "post", slow_post)
    tokens = await asyncio.gather(*(auth.installation_token(as_app, 42) for _ in range(5)))
    assert tokens == ["t1"] * 5
    assert len(fake_github.calls) == 1


async def test_calls_as_the_app_carry_a_valid_jwt(auth, as_app, fake_github, app_private_key):
    fake_github.expect("GET", "/repos/acme/lib/installation", body={"id": 42})
    before = int(time.time())
    assert await auth.installation_for_repo(as_app, "acme", "lib") == 42
    after = int(time.time())
    assert_app_jwt(fake_github.calls[0], app_private_key, before, after)


async def test_token_refreshed_within_five_minutes_of_expiry(auth, as_app, fake_github, clock):
    route = "/app/installations/42/access_tokens"
    fake_github.expect("POST", route, status=201, body=token_answer("t1", "2024-05-01T13:00:00Z"))
    fake_github.expect("POST", route, status=201, body=token_answer("t2", "2024-05-01T13:56:00Z"))

    assert await auth.installation_token(as_app, 42) == "t1"
    clock.now = parse_timestamp("2024-05-01T12:54:59Z")  # 5 min 1 s left: still good
    assert await auth.installation_token(as_app, 42) == "t1"
    clock.now = parse_timestamp("2024-05-01T12:55:01Z")  # under 5 min left
    assert await auth.installation_token(as_app, 42) == "t2"
    assert len(fake_github.calls_to("POST", route)) == 2


async def test_tokens_are_per_installation_and_forget_drops_one(auth, as_app, fake_github):
    for installation, token in ((1, "a"), (2, "b"), (1, "a2")):
        fake_github.expect(
            "POST",
            f"/app/installations/{installation}/access_tokens",
            status=201,
            body=token_answer(token),
        )

    assert await auth.installation_token(as_app, 1) == "a"
    assert await auth.installation_token(as_app, 2) == "b"
    auth.forget(1)
    auth.forget(99)  # unknown: no error
    assert await auth.installation_token(as_app, 1) == "a2"
    assert await auth.installation_token(as_app, 2) == "b"


def test_repr_hides_the_key(auth, app_private_pem):
    assert "PRIVATE" not in repr(auth)
    assert app_private_pem not in repr(auth)


async def test_installation_for_repo_found_and_cached(auth, as_app, fake_github):
    fake_github.expect("GET", "/repos/acme/lib/installation", body={"id": 42, "app_id": 12345})

    assert await auth.installation_for_repo(as_app, "acme", "lib") == 42
    assert await auth.installation_for_repo(as_app, "Acme", "Lib") == 42
    assert len(fake_github.calls) == 1


async def test_installation_for_repo_cache_expires(auth, as_app, fake_github, clock):
    fake_github.expect("GET", "/repos/acme/lib/installation", body={"id": 42}, times=2)
    assert await auth.installation_for_repo(as_app, "acme", "lib") == 42
    clock.now += 601
    assert await auth.installation_for_repo(as_app, "acme", "lib") == 42


async def test_installation_for_repo_not_installed(auth, as_app, fake_github):
    fake_github.expect(
        "GET", "/repos/acme/lib/installation", status=404, body={"message": "Not Found"}
    )
    fake_github.expect("GET", "/repos/acme/lib/installation", body={"id": 43})

    assert await auth.installation_for_repo(as_app, "acme", "lib") is None
    # "not installed" is not cached: a new installation is found straight away
    assert await auth.installation_for_repo(as_app, "acme", "lib") == 43


async def test_forget_drops_repo_lookups_of_that_installation(auth, as_app, fake_github):
    fake_github.expect("GET", "/repos/acme/lib/installation", body={"id": 42}, times=2)
    assert await auth.installation_for_repo(as_app, "acme", "lib") == 42
    auth.forget(42)
    assert await auth.installation_for_repo(as_app, "acme", "lib") == 42
