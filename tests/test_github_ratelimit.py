"""Pacing under GitHub's secondary limits, and reading its rate-limit answers."""

import pytest

from conjunction.forges.github.ratelimit import ContentPacer, retry_after_seconds
from conjunction.queue import RetryLater
from tests.fakegithub import FakeTime

# the windows' own arithmetic: no margin, and every wait slept
EXACT = {"margin": 0.0, "max_sleep": float("inf")}


@pytest.fixture
def t():
    return FakeTime()


async def test_calls_under_the_limit_do_not_sleep(t):
    pacer = ContentPacer(per_minute=3, per_hour=10, **EXACT, clock=t.clock, sleep=t.sleep)
    for _ in range(3):
        await pacer.wait("inst-1")
    assert t.sleeps == []


async def test_minute_window_slides(t):
    pacer = ContentPacer(per_minute=3, per_hour=100, **EXACT, clock=t.clock, sleep=t.sleep)
    for _ in range(2):
        await pacer.wait("k")
    t.now += 10
    await pacer.wait("k")  # third call at +10 s
    await pacer.wait("k")  # must wait for the first call to leave the window
    assert t.sleeps == [50.0]
    assert t.now == 1060.0
    await pacer.wait("k")  # second call (also at 1000) has now left too
    assert t.sleeps == [50.0]
    await pacer.wait("k")  # the call at +10 s is still inside the window
    assert t.sleeps == [50.0, 10.0]


async def test_a_turn_far_away_postpones_instead_of_sleeping(t):
    pacer = ContentPacer(
        per_minute=2, per_hour=4, margin=0, max_sleep=60, clock=t.clock, sleep=t.sleep
    )
    for _ in range(4):
        await pacer.wait("k")
    # 2 at 1000, 2 at 1060 (after a minute's wait), then the hour window is full
    assert t.sleeps == [60.0]
    with pytest.raises(RetryLater) as excinfo:
        await pacer.wait("k")
    assert excinfo.value.delay == 3540.0
    assert t.sleeps == [60.0]


async def test_keys_are_independent(t):
    pacer = ContentPacer(per_minute=1, per_hour=10, **EXACT, clock=t.clock, sleep=t.sleep)
    await pacer.wait("a")
    await pacer.wait("b")
    assert t.sleeps == []
    await pacer.wait("a")
    assert t.sleeps == [60.0]


async def test_default_limits_are_githubs(t):
    pacer = ContentPacer(clock=t.clock, sleep=t.sleep)
    for _ in range(80):
        await pacer.wait("k")
    assert t.sleeps == []
    # the 81st waits a minute and a second's margin: postponed, holding no worker meanwhile
    with pytest.raises(RetryLater) as excinfo:
        await pacer.wait("k")
    assert excinfo.value.delay == 61.0
    t.now += 60.5
    await pacer.wait("k")  # half a second left: slept
    assert t.sleeps == [0.5]


async def test_githubs_hourly_limit_with_its_margin(t):
    pacer = ContentPacer(clock=t.clock, sleep=t.sleep)
    for _ in range(500):
        await pacer.wait("k")
        t.now += 7  # 8 or 9 a minute
    with pytest.raises(RetryLater) as excinfo:
        await pacer.wait("k")
    assert excinfo.value.delay == 3601 - 500 * 7  # until the first leaves the hour, and a second


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Retry-After": "30"}, 30.0),
        ({"retry-after": "5", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "2000"}, 5.0),
        ({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1120"}, 120.0),
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "990"}, 1.0),
        ({"x-ratelimit-remaining": "12", "x-ratelimit-reset": "1120"}, None),
        ({"x-ratelimit-remaining": "0"}, None),
        ({"Retry-After": "Thu, 01 Jan 1970 00:17:00 GMT"}, 20.0),
    ],
)
def test_retry_after_seconds(headers, expected):
    assert retry_after_seconds(headers, now=1000.0) == expected
