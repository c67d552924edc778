"""Build-time figures: median and 90th percentile per downstream, the time until all downstreams
answered, and the estimate a pending status and check carry."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from conjunction.durations import figures, time_left
from conjunction.models import Event, utcnow
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.test_flow import APP, LIB, index, report_status, upstream_of

SECRET = "github.com/acme/secret"


def test_median_and_90th_percentile() -> None:
    found = figures([60, 10, 30, 20, 50, 40, 70, 80, 90, 1000])
    assert found is not None
    assert (found.runs, found.median, found.p90) == (10, 55, 90)
    assert figures([]) is None
    one = figures([12.5])
    assert one is not None and (one.median, one.p90) == (12.5, 12.5)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "less than a minute left"), (59, "less than a minute left"), (61, "about 2 min left")],
)
def test_time_left_reads_in_minutes(seconds: float, text: str) -> None:
    assert time_left(seconds) == text


async def lib_success(client: TestClient[Any, Any], forge: MemoryHost, sha: str) -> list[Any]:
    """An upstream success of LIB; returns the requests it started."""
    before = len(forge.of("start_pipeline"))
    await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=int(sha[0])))
    await run_jobs(client)
    return [request for _, request in forge.of("start_pipeline")[before:]]


async def took(
    client: TestClient[Any, Any], event_id: str, minutes: int, end: datetime | None = None
) -> None:
    """Make a finished run look as if it had taken so long (and ended at `end`, when given)."""
    async with runtime(client).sessions.begin() as session:
        event = await session.get(Event, event_id)
        assert event is not None and event.finished_at is not None
        finished = end or event.finished_at
        await session.execute(
            update(Event)
            .where(Event.id == event_id)
            .values(
                started_at=finished - timedelta(minutes=minutes),
                created_at=finished - timedelta(minutes=minutes),
                finished_at=finished,
            )
        )


async def test_a_pending_status_says_how_long_is_left(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    [first] = await lib_success(client, forge, "1" * 40)
    _, (_, pending) = forge.of("status")[-1]
    assert pending.description == "0 of 1 downstream projects passed, 1 running", "no history"
    await report_status(client, first.event_id, "success")
    await run_jobs(client)
    await took(client, first.event_id, 12)

    await lib_success(client, forge, "2" * 40)

    _, (_, status) = forge.of("status")[-1]
    assert status.description == ("0 of 1 downstream projects passed, 1 running, about 12 min left")
    _, (_, check) = forge.of("check")[-1]
    assert "running, about 12 min left" in check.summary


async def test_the_project_api_carries_the_build_times(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    await index(client, SECRET, upstream_of(LIB), private=True)
    for sha, minutes in (("1" * 40, 10), ("2" * 40, 20), ("3" * 40, 30)):
        end = utcnow()  # both downstreams end at once, however busy the machine
        for request in await lib_success(client, forge, sha):
            await report_status(client, request.event_id, "success")
            await took(client, request.event_id, minutes, end)
        await run_jobs(client)

    data = await (await client.get(f"/api/v1/projects/{LIB}")).json()
    times = data["build_times"]
    assert times["downstreams"] == {
        APP: {"runs": 3, "median_seconds": 1200.0, "p90_seconds": 1800.0}
    }
    assert times["private_downstreams"] == 1
    answered = times["all_downstreams_answered"]
    # from the first start to the last answer: the two downstreams report a moment apart
    assert answered["runs"] == 3
    assert answered["median_seconds"] == pytest.approx(1200.0, abs=5)

    admin = await client.get(
        f"/api/v1/projects/{LIB}", headers={"Authorization": "Bearer admin-token"}
    )
    assert SECRET in (await admin.json())["build_times"]["downstreams"]
