"""The shared fake GitHub: its table of answers, its record of calls, its checks."""

import re

import gidgethub
import pytest

from conjunction.queue import RetryLater
from tests.fakegithub import FakeGitHub


async def test_expected_call_answers_and_is_recorded():
    gh = FakeGitHub()
    gh.expect("POST", "/repos/acme/lib/statuses/abc", status=201, body={"id": 1})

    result = await gh.post("/repos/acme/lib/statuses/abc", data={"state": "success"})

    assert result == {"id": 1}
    [call] = gh.calls
    assert call.method == "POST"
    assert call.url == "https://api.github.com/repos/acme/lib/statuses/abc"
    assert call.path == "/repos/acme/lib/statuses/abc"
    assert call.body == {"state": "success"}
    assert call.headers["user-agent"] == "conjunction-tests"
    assert gh.calls_to("post", "/repos/acme/") == [call]
    assert gh.calls_to("GET", "/repos/acme/") == []
    gh.assert_all_called()


async def test_unexpected_call_fails():
    gh = FakeGitHub()
    with pytest.raises(AssertionError, match="unexpected GitHub call: GET /repos/acme/lib"):
        await gh.getitem("/repos/acme/lib")
    assert [c.path for c in gh.calls] == ["/repos/acme/lib"]


async def test_unused_expectation_fails_assert_all_called():
    gh = FakeGitHub()
    gh.expect("GET", "/repos/acme/lib", body={})
    gh.expect("GET", "/repos/acme/other", body={}, repeat=True)
    with pytest.raises(AssertionError) as excinfo:
        gh.assert_all_called()
    assert "GET /repos/acme/lib" in str(excinfo.value)
    assert "GET /repos/acme/other" in str(excinfo.value)


@pytest.mark.parametrize("status", [404, 422])
async def test_error_status_raises_bad_request_with_message(status):
    gh = FakeGitHub()
    gh.expect("GET", "/repos/acme/lib", status=status, body={"message": "Not Found"})
    with pytest.raises(gidgethub.BadRequest) as excinfo:
        await gh.getitem("/repos/acme/lib")
    assert excinfo.value.status_code == status
    assert "Not Found" in str(excinfo.value)


async def test_answers_go_through_the_policy():
    gh = FakeGitHub()
    gh.expect("GET", "/a", status=502, body={"message": "Bad gateway"}, times=4)
    gh.expect("GET", "/b", status=429, body={"message": "slow down"})
    gh.expect("GET", "/c", error=TimeoutError(), times=4)
    with pytest.raises(gidgethub.GitHubBroken):
        await gh.getitem("/a")
    with pytest.raises(RetryLater):
        await gh.getitem("/b")
    with pytest.raises(TimeoutError):
        await gh.getitem("/c")
    assert [c.status for c in gh.calls] == [502] * 4 + [429] + [0] * 4
    assert len(gh.time.sleeps) == 6
    gh.assert_all_called()


async def test_get_answers_carry_an_etag_and_a_match_is_not_modified():
    gh = FakeGitHub()
    gh.expect("GET", "/repos/acme/lib", body={"id": 1}, times=2)
    gh.expect("GET", "/repos/acme/lib", body={"id": 1}, headers={"ETag": '"mine"'}, times=2)
    for _ in range(4):
        assert await gh.getitem("/repos/acme/lib") == {"id": 1}
    assert [c.status for c in gh.calls] == [200, 304, 200, 304]
    assert gh.calls[3].headers["if-none-match"] == '"mine"'


async def test_connected_clients_share_the_table_the_calls_and_the_time():
    gh = FakeGitHub()
    other = gh.connect(oauth_token="t")
    gh.expect("GET", "/a", body=[])
    assert await other.getitem("/a") == []
    assert gh.calls == other.calls
    assert gh.calls[0].headers["authorization"] == "token t"
    assert other.time is gh.time and other.policy is gh.policy
    assert gh.restarted().policy is not gh.policy
    gh.assert_all_called()


async def test_ordered_expectations_and_repeat():
    gh = FakeGitHub()
    gh.expect("GET", "/repos/acme/lib/commits/main/status", body={"state": "pending"}, times=2)
    gh.expect("GET", "/repos/acme/lib/commits/main/status", body={"state": "success"})
    states = [(await gh.getitem("/repos/acme/lib/commits/main/status"))["state"] for _ in range(3)]
    assert states == ["pending", "pending", "success"]
    with pytest.raises(AssertionError, match="unexpected"):
        await gh.getitem("/repos/acme/lib/commits/main/status")

    gh.expect("GET", "/rate_limit", body={}, repeat=True)
    for _ in range(5):
        await gh.getitem("/rate_limit")
    gh.assert_all_called()


async def test_query_strings():
    gh = FakeGitHub()
    gh.expect("GET", "/repos/acme/lib/pulls", body=[])
    gh.expect("GET", "/repos/acme/lib/issues?state=open", body=[])
    assert await gh.getitem("/repos/acme/lib/pulls?state=closed") == []
    assert await gh.getitem("/repos/acme/lib/issues?state=open") == []
    with pytest.raises(AssertionError, match="unexpected"):
        await gh.getitem("/repos/acme/lib/issues?state=closed")


async def test_enterprise_base_url_and_no_content():
    gh = FakeGitHub(base_url="https://ghe.example.com/api/v3")
    gh.expect("DELETE", "/repos/acme/lib/hooks/1", status=204)
    await gh.delete("/repos/acme/lib/hooks/1")
    assert gh.calls[0].url == "https://ghe.example.com/api/v3/repos/acme/lib/hooks/1"
    with pytest.raises(
        AssertionError, match=re.escape("unexpected GitHub call: GET https://api.github.com/")
    ):
        await gh.getitem("https://api.github.com/repos/acme/lib")


def test_fixture_gives_a_fresh_fake(fake_github):
    assert isinstance(fake_github, FakeGitHub)
    assert fake_github.calls == []
