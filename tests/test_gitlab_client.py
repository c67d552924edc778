"""The GitLab client's pacing: under the documented rate, and waiting out an announced reset."""

from __future__ import annotations

import pytest

from conjunction.forges.gitlab.client import Pacer
from tests.fakegithub import FakeTime
from tests.fakegitlab import FakeGitLab, gitlab_host


def pacer(time: FakeTime, limit: int = 2) -> Pacer:
    return Pacer(limit, 60.0, clock=time.clock, wall_clock=lambda: 5000.0, sleep=time.sleep)


async def test_requests_past_the_limit_wait_for_the_window() -> None:
    time = FakeTime()
    paced = pacer(time)
    for _ in range(2):
        await paced.wait()
        paced.sent()
    assert time.sleeps == []
    time.now += 10
    await paced.wait()
    assert time.sleeps == [50.0]  # until the first request is a minute old


async def test_no_remaining_requests_waits_until_the_reset() -> None:
    time = FakeTime()
    paced = pacer(time, limit=100)
    paced.observe({"RateLimit-Remaining": "3", "RateLimit-Reset": "5030"})
    await paced.wait()
    paced.observe({"RateLimit-Remaining": "0", "RateLimit-Reset": "5030"})
    await paced.wait()
    assert time.sleeps == [30.0]


async def test_every_request_python_gitlab_sends_is_counted(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.expect_project("acme/lib", times=2)
    host = gitlab_host(fake_gitlab)
    for _ in range(2):
        await host.project_info("gitlab.com/acme/lib")
    assert len(host.client.pacer._sent) == 2


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (429, {"Retry-After": "0"}),  # over GitLab's rate limit: waited out, then asked again
        (502, {}),  # a transient server error: asked again after a short backoff
    ],
)
async def test_python_gitlab_retries_a_get_through_our_client(
    fake_gitlab: FakeGitLab, status: int, headers: dict[str, str]
) -> None:
    path = "/projects/group%2Fsub%2Fapp"
    fake_gitlab.expect("GET", path, status=status, body={"message": "slow down"}, headers=headers)
    fake_gitlab.expect_project("group/sub/app", default_branch="trunk")
    host = gitlab_host(fake_gitlab)

    info = await host.project_info("gitlab.com/group/sub/app")

    assert (info.default_branch, info.private) == ("trunk", False)
    assert [call.status for call in fake_gitlab.calls_to("GET", path)] == [status, 200]
    assert len(host.client.pacer._sent) == 2  # the retry is paced too
