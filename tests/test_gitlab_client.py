"""The GitLab client's pacing: under the documented rate, and waiting out an announced reset."""

from __future__ import annotations

from bot.forges.gitlab.client import Pacer
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
