"""Re-runs in the CI (CONTRACT §7): the newest attempt of a run replaces its trigger's result and
is judged again — row, report, issue and notifications follow it — while a late report of an
older attempt is kept in the history only."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from conjunction.models import Event, TriggerResult
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.test_flow import APP, LIB, events_of, index, report_status, upstream_of


def app_run(run_id: str, conclusion: str, attempt: int) -> dict[str, Any]:
    """APP's workflow_run for the run Conjunction started, `attempt` times run."""
    payload = workflow_run("acme/app", "d" * 40, conclusion=conclusion, run_id=int(run_id))
    payload["workflow_run"]["run_attempt"] = attempt
    payload["workflow_run"]["event"] = "workflow_dispatch"
    return payload


async def lib_run(client: TestClient[Any, Any], forge: MemoryHost, sha: str) -> tuple[str, str]:
    """An upstream success of LIB at sha: the event id and run id APP was started with."""
    await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=int(sha[0])))
    await run_jobs(client)
    _, request = forge.of("start_pipeline")[-1]
    return request.event_id, str(len(forge.of("start_pipeline")))


async def broken_then_rerun(client: TestClient[Any, Any], forge: MemoryHost) -> str:
    """APP passed with LIB 1…, failed with LIB 2… (a new regression, issues opened)."""
    await index(client, LIB, "report:\n  issues: true\n")
    await index(client, APP, upstream_of(LIB))
    _, first_run = await lib_run(client, forge, "1" * 40)
    await post_github(client, "workflow_run", app_run(first_run, "success", 1))
    _, second_run = await lib_run(client, forge, "2" * 40)
    await post_github(client, "workflow_run", app_run(second_run, "failure", 1))
    await run_jobs(client)
    assert sorted(issue["state"] for issue in forge.issues.values()) == ["open", "open"]
    return second_run


async def test_a_failure_re_run_in_github_that_passes_is_a_flake_and_closes_the_issue(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    run_id = await broken_then_rerun(client, forge)
    _, (_, check) = forge.of("check")[-1]
    assert check.state == "failure" and "| ❌ new regression |" in check.summary

    await post_github(client, "workflow_run", app_run(run_id, "success", 2))  # "Re-run jobs"
    await run_jobs(client)

    failed = (await events_of(client, APP))[-1]
    assert (failed.result, failed.change, failed.attempt) == ("success", "flaky", 2)
    _, (_, check) = forge.of("check")[-1]
    assert (check.state, check.description) == ("success", "1 of 1 downstream projects passed")
    assert "flaky" in check.summary
    assert [issue["state"] for issue in forge.issues.values()] == ["closed", "closed"]
    # the passing re-run is the trigger's result, not an upstream success of APP
    assert [event.kind for event in await events_of(client, APP)] == ["trigger", "trigger"]


async def test_the_same_attempt_reported_again_changes_nothing(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    run_id = await broken_then_rerun(client, forge)
    checks = len(forge.of("check"))
    # a redelivery under another delivery id, and the conclusion GitHub sends for attempt 1
    await post_github(client, "workflow_run", app_run(run_id, "failure", 1))
    await post_github(client, "workflow_run", app_run(run_id, "success", 1))
    await run_jobs(client)
    failed = (await events_of(client, APP))[-1]
    assert (failed.result, failed.change, failed.attempt) == ("failure", "new regression", 1)
    assert len(forge.of("check")) == checks
    assert sorted(issue["state"] for issue in forge.issues.values()) == ["open", "open"]


async def test_the_status_api_takes_a_higher_attempt_and_keeps_a_lower_one_as_history(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    event_id, _ = await lib_run(client, forge, "1" * 40)
    assert (await report_status(client, event_id, "failure")).status == 202

    same = await report_status(client, event_id, "success", metadata={"attempt": 1})
    assert same.status == 409
    second = await report_status(client, event_id, "success", metadata={"attempt": 2})
    assert (second.status, await second.json()) == (
        202,
        {"event_id": event_id, "result": "success"},
    )
    late = await report_status(client, event_id, "failure", metadata={"attempt": 1})
    assert (late.status, await late.json()) == (202, {"event_id": event_id, "result": "success"})
    bad = await report_status(client, event_id, "failure", metadata={"attempt": 0})
    assert (bad.status, await bad.json()) == (
        422,
        {"error": "metadata.attempt: an integer of at least 1"},
    )
    await run_jobs(client)

    async with runtime(client).sessions() as session:
        event = await session.get(Event, event_id)
        history = await session.execute(
            select(TriggerResult.attempt, TriggerResult.result, TriggerResult.taken)
            .where(TriggerResult.event_id == event_id)
            .order_by(TriggerResult.id)
        )
        assert event is not None and (event.result, event.attempt) == ("success", 2)
        assert list(history) == [(1, "failure", True), (2, "success", True), (1, "failure", False)]
    trace = await (await client.get(f"/api/v1/events/{event_id}")).json()
    assert (trace["result"], trace["attempt"], trace["state"]) == ("success", 2, "finished")
