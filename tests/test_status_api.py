"""`POST /api/v1/events/{id}/status` as a CI system calls it: which callback tokens it takes,
until when, and what a repeated or conflicting result does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from conjunction.models import Event, Job, utcnow
from conjunction.runner import TriggerRequest
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.test_flow import APP, LIB, SHA, TOOL, index, upstream_of


async def start_two(client: TestClient[Any, Any], forge: MemoryHost) -> dict[str, TriggerRequest]:
    """LIB succeeds and starts APP and TOOL; what each was started with, by project."""
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    await index(client, TOOL, upstream_of(LIB))
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA))
    await run_jobs(client)
    return {project: request for project, request in forge.of("start_pipeline")}


def status_path(event_id: str) -> str:
    return f"/api/v1/events/{event_id}/status"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def stored(client: TestClient[Any, Any], event_id: str) -> Event:
    async with runtime(client).sessions() as session:
        event = await session.get(Event, event_id)
    assert event is not None
    return event


async def job_count(client: TestClient[Any, Any]) -> int:
    async with runtime(client).sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Job)) or 0)


WRONG = {"error": "the callback token is missing or wrong for this event"}


async def test_only_the_events_own_token_is_taken(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    started = await start_two(client, forge)
    app, tool = started[APP], started[TOOL]
    path = status_path(app.event_id)
    body = {"result": "success"}
    for headers in ({}, bearer("0" * 64), bearer(tool.callback_token), {"Authorization": "x"}):
        answer = await client.post(path, json=body, headers=headers)
        assert (answer.status, await answer.json()) == (401, WRONG)
    other = await client.post(f"{path}?token={tool.callback_token}", json=body)
    assert (other.status, await other.json()) == (401, WRONG)
    assert (await stored(client, app.event_id)).result is None

    answer = await client.post(path, json=body, headers=bearer(app.callback_token))
    assert answer.status == 202


async def test_the_token_may_come_in_the_query_for_ci_that_cannot_set_headers(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    app = (await start_two(client, forge))[APP]
    answer = await client.post(
        f"{status_path(app.event_id)}?token={app.callback_token}", json={"result": "failure"}
    )
    assert (answer.status, await answer.json()) == (
        202,
        {"event_id": app.event_id, "result": "failure"},
    )
    assert (await stored(client, app.event_id)).result == "failure"


async def test_the_token_expires_with_the_events_result_timeout(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    app = (await start_two(client, forge))[APP]
    deadline = (await stored(client, app.event_id)).deadline_at
    assert deadline is not None
    assert deadline - utcnow() > timedelta(hours=5), "six hours by default"
    past = utcnow() - timedelta(minutes=1)
    async with runtime(client).sessions.begin() as session:
        event = await session.get(Event, app.event_id)
        assert event is not None
        event.deadline_at = past

    answer = await client.post(
        status_path(app.event_id), json={"result": "success"}, headers=bearer(app.callback_token)
    )
    assert answer.status == 401
    assert await answer.json() == {
        "error": f"the callback token of event {app.event_id} expired at "
        f"{past:%Y-%m-%d %H:%M:%S} UTC: results are taken until the event's result timeout "
        "(CONJUNCTION_RESULT_TIMEOUT)"
    }
    assert (await stored(client, app.event_id)).result is None


async def test_running_then_the_same_result_twice_then_another(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    app = (await start_two(client, forge))[APP]
    path, headers = status_path(app.event_id), bearer(app.callback_token)

    running = await client.post(
        path, json={"result": "running", "url": "https://ci.acme.dev/b/1"}, headers=headers
    )
    assert (running.status, await running.json()) == (
        202,
        {"event_id": app.event_id, "result": "running"},
    )
    event = await stored(client, app.event_id)
    assert (event.result, event.url) == (None, "https://ci.acme.dev/b/1")

    assert (await client.post(path, json={"result": "failure"}, headers=headers)).status == 202
    await run_jobs(client)
    first = await stored(client, app.event_id)
    jobs = await job_count(client)

    again = await client.post(
        path, json={"result": "failure", "url": "https://ci.acme.dev/b/2"}, headers=headers
    )
    assert (again.status, await again.json()) == (
        202,
        {"event_id": app.event_id, "result": "failure"},
    )
    repeat = await stored(client, app.event_id)
    assert (repeat.result, repeat.url, repeat.finished_at) == (
        "failure",
        "https://ci.acme.dev/b/1",
        first.finished_at,
    )
    assert await job_count(client) == jobs, "no report, issue or chain job for a repeat"

    conflict = await client.post(path, json={"result": "success"}, headers=headers)
    assert conflict.status == 409
    assert await conflict.json() == {
        "error": f"event {app.event_id} already finished with 'failure' in attempt 1, not 'success'"
    }
    late_running = await client.post(path, json={"result": "running"}, headers=headers)
    assert (late_running.status, await late_running.json()) == (
        202,
        {"event_id": app.event_id, "result": "failure"},
    )


BAD_BODIES = [
    ({}, "result: Field required"),
    ({"result": "passed"}, "result: Input should be 'success', 'failure', 'error', "),
    ({"result": "success", "url": "x" * 2001}, "url: String should have at most 2000"),
    ({"result": "success", "metadata": ["sha"]}, "metadata: Input should be an object"),
    ({"result": "success", "colour": "green"}, "colour: Extra inputs are not permitted"),
    (["success"], "body: Input should be an object"),
]


async def test_a_bad_body_is_422_naming_the_field(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    app = (await start_two(client, forge))[APP]
    for body, error in BAD_BODIES:
        answer = await client.post(
            status_path(app.event_id), json=body, headers=bearer(app.callback_token)
        )
        assert answer.status == 422
        assert (await answer.json())["error"].startswith(error)
    assert (await stored(client, app.event_id)).result is None
