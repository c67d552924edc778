import re

import jwt
import pytest

from bot.forges.github.auth import GitHubAppAuth, parse_timestamp
from tests.fakegithub import FakeGitHub
from tests.keys import PRIVATE_KEY_PEM, RSA_KEY

NOW = parse_timestamp("2024-05-01T12:00:00Z")


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rsa_key():
    return RSA_KEY


@pytest.fixture
def private_pem():
    return PRIVATE_KEY_PEM


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def auth(private_pem, clock):
    return GitHubAppAuth("12345", private_pem, clock=clock)


def token_body(token: str, expires_at: str = "2024-05-01T13:00:00Z") -> dict:
    return {"token": token, "expires_at": expires_at, "permissions": {"statuses": "write"}}


def bearer(call) -> str:
    scheme, _, value = call.headers["authorization"].partition(" ")
    assert scheme.lower() == "bearer"
    return value


def test_jwt_claims(auth, rsa_key, clock):
    claims = jwt.decode(
        auth.jwt(),
        rsa_key.public_key(),
        algorithms=["RS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == "12345"
    assert claims["iat"] == int(NOW) - 60
    assert int(NOW) < claims["exp"] < int(NOW) + 600
    assert jwt.get_unverified_header(auth.jwt())["alg"] == "RS256"


def test_repr_hides_the_key(auth, private_pem):
    assert "PRIVATE" not in repr(auth)
    assert private_pem not in repr(auth)


async def test_installation_token_posts_with_jwt_and_is_cached(auth):
    gh = FakeGitHub()
    gh.expect("POST", "/app/installations/42/access_tokens", status=201, body=token_body("t1"))

    assert await auth.installation_token(gh, 42) == "t1"
    assert await auth.installation_token(gh, 42) == "t1"

    [call] = gh.calls
    assert call.url == "https://api.github.com/app/installations/42/access_tokens"
    assert bearer(call) == auth.jwt()
    gh.assert_all_called()


async def test_token_refreshed_within_five_minutes_of_expiry(auth, clock):
    gh = FakeGitHub()
    route = "/app/installations/42/access_tokens"
    gh.expect("POST", route, status=201, body=token_body("t1", "2024-05-01T13:00:00Z"))
    gh.expect("POST", route, status=201, body=token_body("t2", "2024-05-01T13:56:00Z"))

    assert await auth.installation_token(gh, 42) == "t1"
    clock.now = parse_timestamp("2024-05-01T12:54:59Z")  # 5 min 1 s left: still good
    assert await auth.installation_token(gh, 42) == "t1"
    clock.now = parse_timestamp("2024-05-01T12:55:01Z")  # under 5 min left
    assert await auth.installation_token(gh, 42) == "t2"
    assert len(gh.calls_to("POST", route)) == 2
    gh.assert_all_called()


async def test_tokens_are_per_installation_and_forget_drops_one(auth):
    gh = FakeGitHub()
    gh.expect("POST", "/app/installations/1/access_tokens", status=201, body=token_body("a"))
    gh.expect("POST", "/app/installations/2/access_tokens", status=201, body=token_body("b"))
    gh.expect("POST", "/app/installations/1/access_tokens", status=201, body=token_body("a2"))

    assert await auth.installation_token(gh, 1) == "a"
    assert await auth.installation_token(gh, 2) == "b"
    auth.forget(1)
    auth.forget(99)  # unknown: no error
    assert await auth.installation_token(gh, 1) == "a2"
    assert await auth.installation_token(gh, 2) == "b"
    gh.assert_all_called()


async def test_enterprise_api_url(private_pem, clock):
    api = "https://ghe.example.com/api/v3"
    auth = GitHubAppAuth("7", private_pem, api + "/", clock=clock)
    # gh's own base_url is github.com: auth must still build every URL from api_url
    gh = FakeGitHub()
    with pytest.raises(AssertionError, match=re.escape(f"unexpected GitHub call: POST {api}/app/")):
        await auth.installation_token(gh, 5)

    gh = FakeGitHub(base_url=api)
    gh.expect("POST", "/app/installations/5/access_tokens", status=201, body=token_body("e"))
    gh.expect("GET", "/repos/acme/lib/installation", body={"id": 5})
    assert await auth.installation_token(gh, 5) == "e"
    assert await auth.installation_for_repo(gh, "acme", "lib") == 5
    assert [c.url for c in gh.calls] == [
        f"{api}/app/installations/5/access_tokens",
        f"{api}/repos/acme/lib/installation",
    ]
    gh.assert_all_called()


async def test_installation_for_repo_found_and_cached(auth):
    gh = FakeGitHub()
    gh.expect("GET", "/repos/acme/lib/installation", body={"id": 42, "app_id": 12345})

    assert await auth.installation_for_repo(gh, "acme", "lib") == 42
    assert await auth.installation_for_repo(gh, "Acme", "Lib") == 42
    [call] = gh.calls
    assert bearer(call) == auth.jwt()
    gh.assert_all_called()


async def test_installation_for_repo_cache_expires(auth, clock):
    gh = FakeGitHub()
    gh.expect("GET", "/repos/acme/lib/installation", body={"id": 42}, times=2)
    assert await auth.installation_for_repo(gh, "acme", "lib") == 42
    clock.now += 601
    assert await auth.installation_for_repo(gh, "acme", "lib") == 42
    gh.assert_all_called()


async def test_installation_for_repo_not_installed(auth):
    gh = FakeGitHub()
    gh.expect("GET", "/repos/acme/lib/installation", status=404, body={"message": "Not Found"})
    gh.expect("GET", "/repos/acme/lib/installation", body={"id": 43})

    assert await auth.installation_for_repo(gh, "acme", "lib") is None
    # "not installed" is not cached: a new installation is found straight away
    assert await auth.installation_for_repo(gh, "acme", "lib") == 43
    gh.assert_all_called()


async def test_forget_drops_repo_lookups_of_that_installation(auth):
    gh = FakeGitHub()
    gh.expect("GET", "/repos/acme/lib/installation", body={"id": 42}, times=2)
    assert await auth.installation_for_repo(gh, "acme", "lib") == 42
    auth.forget(42)
    assert await auth.installation_for_repo(gh, "acme", "lib") == 42
    gh.assert_all_called()
