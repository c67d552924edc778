"""End to end through HTTP: signed upstream success -> downstream triggers -> results -> reports."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import delete, func, select

from conjunction.adapters import Adapters
from conjunction.models import Delivery, Event, IssueLink, Job
from conjunction.runner import TriggerError, TriggerRequest
from conjunction.texts import PR_COMMENT_MARKER
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime

LIB = "github.com/acme/lib"
APP = "github.com/acme/app"
TOOL = "github.com/acme/tool"
SHA = "a" * 40


async def index(client: TestClient[Any, Any], name: str, config: str | None, **kw: Any) -> None:
    error = await runtime(client).engine.index_project(
        name,
        private=kw.get("private", False),
        default_branch="main",
        config_text=config,
        codeowners_text=kw.get("codeowners"),
    )
    assert error is None


def upstream_of(*names: str, owners: str = "[]") -> str:
    entries = "".join(f"\n  - project: {name}" for name in names)
    return f"owners: {owners}\nupstreams:{entries}\n"


async def report_status(
    client: TestClient[Any, Any], event_id: str, result: str, **body: Any
) -> Any:
    token = runtime(client).engine.signer.token(event_id)
    return await client.post(
        f"/api/v1/events/{event_id}/status",
        json={"result": result, **body},
        headers={"Authorization": f"Bearer {token}"},
    )


async def start_one(client: TestClient[Any, Any], forge: MemoryHost) -> TriggerRequest:
    """An upstream success of LIB that triggers APP; returns what APP was started with."""
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA))
    await run_jobs(client)
    [(_, request)] = forge.of("start_pipeline")
    return request


async def events_of(client: TestClient[Any, Any], project: str) -> list[Event]:
    async with runtime(client).sessions() as session:
        rows = await session.scalars(
            select(Event).where(Event.project == project).order_by(Event.created_at)
        )
        return list(rows)


async def count(client: TestClient[Any, Any], model: Any) -> int:
    async with runtime(client).sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_upstream_success_fans_out_and_results_come_back(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, "owners: [lib-team]\n")
    await index(client, APP, upstream_of(LIB, owners="[alice]"))
    await index(client, TOOL, upstream_of(LIB, owners="[bob]"))

    answer = await post_github(client, "workflow_run", workflow_run("acme/lib", SHA))
    assert answer.status == 202
    await run_jobs(client)

    started = {project: request for project, request in forge.of("start_pipeline")}
    assert sorted(started) == [APP, TOOL]
    request = started[APP]
    assert (request.upstream, request.upstream_sha, request.upstream_ref) == (LIB, SHA, "main")
    assert request.callback_url == (
        f"https://conjunction.test/api/v1/events/{request.event_id}/status"
    )
    assert request.depth == 1
    sha, pending = forge.of("status")[-1][1]
    assert sha == SHA
    assert (pending.state, pending.description) == (
        "pending",
        "0 of 2 downstream projects passed, 2 running",
    )

    assert (await report_status(client, started[APP].event_id, "success")).status == 202
    assert (await report_status(client, started[TOOL].event_id, "failure")).status == 202
    await run_jobs(client)

    project, (sha, final) = forge.of("status")[-1]
    assert project == LIB
    # a first failure has nothing to compare with: shown, counted, blamed on nobody
    assert (final.state, final.description) == (
        "success",
        "1 of 2 downstream projects passed, 1 failed; none blamed on this commit",
    )
    assert final.target_url.startswith("https://conjunction.test/events/")
    _, (_, check) = forge.of("check")[-1]
    assert check.conclusion == "neutral"
    assert "| github.com/acme/app | ✅ passed |" in check.summary
    assert "| github.com/acme/tool | ❌ failed |" in check.summary
    assert "`bob`" in check.summary


async def test_burst_of_results_is_one_report(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    for n in range(5):
        await index(client, f"github.com/acme/d{n}", upstream_of(LIB))
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA))
    await run_jobs(client)
    reports_before = len(forge.of("status"))
    for _, request in forge.of("start_pipeline"):
        await report_status(client, request.event_id, "success")
    await run_jobs(client)
    assert len(forge.of("status")) == reports_before + 1
    assert forge.of("status")[-1][1][1].description == ("5 of 5 downstream projects passed")


async def test_chain_runs_to_the_end(client: TestClient[Any, Any], forge: MemoryHost) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    await index(client, TOOL, upstream_of(APP))

    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA))
    await run_jobs(client)
    [(_, to_app)] = forge.of("start_pipeline")
    await report_status(client, to_app.event_id, "success", metadata={"sha": "b" * 40})
    await run_jobs(client)

    [_, (project, to_tool)] = forge.of("start_pipeline")
    assert project == TOOL
    assert (to_tool.upstream, to_tool.upstream_sha, to_tool.depth) == (APP, "b" * 40, 2)
    assert to_tool.parent_id == to_app.event_id
    assert to_tool.root_id == to_app.root_id

    trace = await (await client.get(f"/api/v1/events/{to_tool.event_id}")).json()
    assert [item["project"] for item in trace["chain"]] == [LIB, APP]
    assert trace["depth"] == 2


async def test_a_chain_continues_for_every_origin(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    """APP's commit does not change between two successes of LIB: TOOL runs for both."""
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    await index(client, TOOL, upstream_of(APP))
    for lib_sha in ("1" * 40, "2" * 40):
        await post_github(client, "workflow_run", workflow_run("acme/lib", lib_sha))
        await run_jobs(client)
        to_app = forge.of("start_pipeline")[-1][1]
        await report_status(client, to_app.event_id, "success", metadata={"sha": "b" * 40})
        await run_jobs(client)

    started = [(project, request.upstream) for project, request in forge.of("start_pipeline")]
    assert started == [(APP, LIB), (TOOL, APP), (APP, LIB), (TOOL, APP)]


async def test_loop_stops_and_says_why(client: TestClient[Any, Any], forge: MemoryHost) -> None:
    await index(client, LIB, upstream_of(APP))
    await index(client, APP, upstream_of(LIB))

    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA))
    await run_jobs(client)
    [(_, to_app)] = forge.of("start_pipeline")
    await report_status(client, to_app.event_id, "success", metadata={"sha": "b" * 40})
    await run_jobs(client)

    assert len(forge.of("start_pipeline")) == 1
    [skipped] = [event for event in await events_of(client, LIB) if event.kind == "trigger"]
    assert skipped.result == "skipped"
    assert skipped.reason == "loop: github.com/acme/lib is already in this chain"


async def test_chain_stops_at_max_depth(client: TestClient[Any, Any], forge: MemoryHost) -> None:
    runtime(client).engine.settings = runtime(client).settings.__class__(
        **{**runtime(client).settings.__dict__, "max_depth": 1}
    )
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    await index(client, TOOL, upstream_of(APP))
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA))
    await run_jobs(client)
    [(_, to_app)] = forge.of("start_pipeline")
    await report_status(client, to_app.event_id, "success", metadata={"sha": "b" * 40})
    await run_jobs(client)
    assert len(forge.of("start_pipeline")) == 1
    [stopped] = await events_of(client, TOOL)
    assert (stopped.result, stopped.reason) == (
        "skipped",
        "chain longer than CONJUNCTION_MAX_DEPTH (1)",
    )


async def test_filters_pick_which_downstreams_run(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, f"upstreams:\n  - project: {LIB}\n    branches: [release/*]\n")
    await index(client, TOOL, f"upstreams:\n  - project: {LIB}\n    pipelines: [Docs]\n")
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA, branch="main"))
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA, branch="release/2"))
    await run_jobs(client)
    assert [project for project, _ in forge.of("start_pipeline")] == [APP]


async def test_bad_signature_is_refused_and_does_nothing(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    body = b'{"action": "completed"}'
    answer = await client.post(
        "/webhooks/github",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "workflow_run",
            "X-GitHub-Delivery": "1",
            "X-Hub-Signature-256": "sha256=" + "0" * 64,
        },
    )
    assert answer.status == 401
    assert (await answer.json())["error"] == (
        "X-Hub-Signature-256 does not match the webhook secret"
    )
    unsigned = await client.post(
        "/webhooks/github", data=body, headers={"X-GitHub-Event": "workflow_run"}
    )
    assert unsigned.status == 401
    assert await count(client, Delivery) == 0
    assert await count(client, Job) == 0


async def test_duplicate_delivery_does_nothing(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    payload = workflow_run("acme/lib", SHA)
    first = await post_github(client, "workflow_run", payload, delivery="d-1")
    again = await post_github(client, "workflow_run", payload, delivery="d-1")
    assert (first.status, again.status) == (202, 200)
    assert (await again.json())["status"] == "duplicate"
    await run_jobs(client)
    assert len(forge.of("start_pipeline")) == 1


async def test_unknown_event_and_malformed_body(client: TestClient[Any, Any]) -> None:
    unknown = await post_github(client, "star", {"action": "created"})
    assert unknown.status == 200
    assert (await unknown.json())["status"] == "ignored"
    from testkit.signing import signed_headers

    body = b"{not json"
    malformed = await client.post(
        "/webhooks/github", data=body, headers=signed_headers("push", body)
    )
    assert malformed.status == 400
    assert (await malformed.json())["error"] == (
        "the body is not valid JSON: key must be a string at line 1 column 2"
    )
    assert await count(client, Job) == 0


async def test_trigger_error_is_shown_on_the_row(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    forge.start_errors[APP] = TriggerError("workflow conjunction.yml not found in acme/app")
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA))
    await run_jobs(client)
    _, (_, check) = forge.of("check")[-1]
    assert (check.conclusion, check.description) == (
        "neutral",
        "0 of 1 downstream projects passed, 1 error; none blamed on this commit",
    )
    assert "❌ error: workflow conjunction.yml not found in acme/app" in check.summary


async def test_timed_out_when_no_result_comes(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA))
    await run_jobs(client)
    engine = runtime(client).engine
    assert await engine.expire_overdue() == 0
    async with runtime(client).sessions.begin() as session:
        [event] = await session.scalars(select(Event).where(Event.project == APP))
        event.deadline_at = event.created_at
    assert await engine.expire_overdue() == 1
    await run_jobs(client)
    [event] = await events_of(client, APP)
    assert event.result == "timed_out"
    _, (_, status) = forge.of("status")[-1]
    assert (status.state, status.description) == (
        "success",
        "0 of 1 downstream projects passed, 1 timed out; none blamed on this commit",
    )
    _, (_, check) = forge.of("check")[-1]
    assert check.conclusion == "neutral"
    assert "| ⌛ timed out: no result within CONJUNCTION_RESULT_TIMEOUT |" in check.summary


async def run_lib(client: TestClient[Any, Any], forge: MemoryHost, sha: str, result: str) -> None:
    """One upstream success of LIB at sha, with APP's result."""
    await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=int(sha[0], 16)))
    await run_jobs(client)
    _, request = forge.of("start_pipeline")[-1]
    await report_status(client, request.event_id, result)
    await run_jobs(client)


async def test_breakage_issue_opened_commented_and_closed(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, "owners: [lib-team]\nreport:\n  issues: true\n")
    await index(client, APP, upstream_of(LIB, owners="[alice, acme/app-team]"))

    await run_lib(client, forge, "1" * 40, "failure")
    assert forge.issues == {}, "no issue when it never passed: not a new breakage"
    await run_lib(client, forge, "2" * 40, "success")
    await run_lib(client, forge, "3" * 40, "failure")

    assert sorted(issue["project"] for issue in forge.issues.values()) == [APP, LIB]
    issue = next(issue for issue in forge.issues.values() if issue["project"] == APP)
    assert issue["title"] == f"{APP} fails against {LIB}"
    assert issue["labels"] == ["conjunction"]
    assert "Downstream owners: @alice @acme/app-team" in issue["body"]
    assert "Upstream owners: @lib-team" in issue["body"]
    assert f"https://{LIB}/compare/{'2' * 40}...{'3' * 40}" in issue["body"]
    _, (_, check) = forge.of("check")[-1]
    assert (check.state, check.description) == (
        "failure",
        "0 of 1 downstream projects passed, 1 new regression",
    )
    assert "| ❌ new regression |" in check.summary
    assert f"[compare](https://{LIB}/compare/{'2' * 40}...{'3' * 40})" in check.summary

    await run_lib(client, forge, "4" * 40, "failure")
    _, (_, check) = forge.of("check")[-1]
    assert (check.state, check.description) == (
        "success",
        "0 of 1 downstream projects passed, 1 still failing; none blamed on this commit",
    )
    assert len(forge.issues) == 2
    assert issue["comments"] == [
        next(
            c for c in issue["comments"] if c.startswith("Still failing against upstream `4444444`")
        )
    ]

    await run_lib(client, forge, "5" * 40, "success")
    assert [issue["state"] for issue in forge.issues.values()] == ["closed", "closed"]
    assert issue["comments"][-1].startswith(f"{APP} passes again against upstream `5555555`")


async def test_private_downstream_gets_no_issue_upstream(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, "report:\n  issues: true\n")
    await index(client, APP, upstream_of(LIB), private=True)
    await run_lib(client, forge, "1" * 40, "success")
    await run_lib(client, forge, "2" * 40, "failure")
    assert [issue["project"] for issue in forge.issues.values()] == [APP]
    for _, (_, report) in forge.of("check"):
        assert "acme/app" not in report.summary


async def test_only_required_downstreams_fail_the_check(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, f"report:\n  required: [{TOOL}]\n")
    await index(client, APP, upstream_of(LIB))
    await index(client, TOOL, upstream_of(LIB))
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA))
    await run_jobs(client)
    started = dict(forge.of("start_pipeline"))
    await report_status(client, started[APP].event_id, "failure")
    await report_status(client, started[TOOL].event_id, "success")
    await run_jobs(client)
    _, (_, check) = forge.of("check")[-1]
    assert (check.state, check.conclusion) == ("success", "neutral")
    assert "❌ failed (optional)" in check.summary
    _, (_, comment) = forge.of("comment_on_change")[-1]
    assert comment.startswith(
        f"{PR_COMMENT_MARKER}\n**Conjunction: downstream**: "
        "1 of 2 downstream projects passed, 1 failed; none blamed on this commit"
    )


async def test_one_trigger_per_upstream_commit_and_none_for_pull_requests(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA, name="CI", run_id=1))
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA, name="Lint", run_id=2))
    pull = workflow_run("acme/lib", "f" * 40, run_id=3, event="pull_request")
    await post_github(client, "workflow_run", pull)
    await run_jobs(client)
    assert [request.upstream_sha for _, request in forge.of("start_pipeline")] == [SHA]


async def test_a_restart_mid_queue_loses_nothing(
    aiohttp_client: Any, settings: Any, forge: MemoryHost
) -> None:
    from conjunction.app import create_app

    first = await aiohttp_client(
        create_app(settings, adapters=Adapters.of(forge), run_workers=False)
    )
    await index(first, LIB, None)
    await index(first, APP, upstream_of(LIB))
    assert (await post_github(first, "workflow_run", workflow_run("acme/lib", SHA))).status == 202
    await first.close()  # the process stops before any job ran
    assert forge.of("start_pipeline") == []

    second = await aiohttp_client(
        create_app(settings, adapters=Adapters.of(forge), run_workers=False)
    )
    await run_jobs(second)
    assert [project for project, _ in forge.of("start_pipeline")] == [APP]


async def test_changes_against_the_previous_upstream_success(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    results = ["success", "success", "failure", "failure", "success"]
    for sha, result in zip("12345", results, strict=True):
        await run_lib(client, forge, sha * 40, result)
    changes = [event.change for event in await events_of(client, APP)]
    assert changes == ["passed", "passed", "new regression", "still failing", "fixed"]
    _, (_, check) = forge.of("check")[-1]
    assert "| ✅ fixed |" in check.summary


async def test_time_outs_are_never_compared_in_either_direction(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    results = ["success", "timed_out", "success", "failure", "timed_out", "success"]
    for sha, result in zip("123456", results, strict=True):
        await run_lib(client, forge, sha * 40, result)
    verdicts = [event.change for event in await events_of(client, APP)]
    assert verdicts == ["passed", "timed out", "passed", "new regression", "timed out", "fixed"]


async def test_a_late_result_replaces_a_time_out_once(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    request = await start_one(client, forge)
    engine = runtime(client).engine
    await engine.record_result(request.event_id, "timed_out")
    await engine.record_result(request.event_id, "timed_out")
    assert (await report_status(client, request.event_id, "success")).status == 202
    assert (await report_status(client, request.event_id, "failure")).status == 409
    await run_jobs(client)
    assert forge.of("status")[-1][1][1].state == "success"


async def test_paths_filter_uses_what_changed_since_the_last_success(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, f'upstreams:\n  - project: {LIB}\n    paths: ["src/**"]\n')
    await index(client, TOOL, upstream_of(LIB))
    forge.changes = {"2" * 40: ["docs/index.md"], "3" * 40: ["README.md", "src/lib/core.py"]}
    for run_id, sha in enumerate(["1" * 40, "2" * 40, "3" * 40], start=1):
        await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=run_id))
        await run_jobs(client)
    started = [
        (project, request.upstream_sha[0]) for project, request in forge.of("start_pipeline")
    ]
    assert started == [(APP, "1"), (TOOL, "1"), (TOOL, "2"), (APP, "3"), (TOOL, "3")]
    assert [details for _, details in forge.of("changed_files")] == [
        ("1" * 40, "2" * 40),
        ("2" * 40, "3" * 40),
    ]


async def test_an_issues_job_that_runs_again_opens_no_second_issue(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    await run_lib(client, forge, "1" * 40, "success")
    await run_lib(client, forge, "2" * 40, "failure")
    assert [issue["state"] for issue in forge.issues.values()] == ["open"]
    failed = (await events_of(client, APP))[-1]
    update_issues = runtime(client).engine.job_handlers()["issues"]

    await update_issues({"event_id": failed.id})  # ran again after a crash before "done"
    async with runtime(client).sessions.begin() as session:
        await session.execute(delete(IssueLink))  # crashed between "opened" and "stored"
    await update_issues({"event_id": failed.id})

    assert len(forge.issues) == 1
    assert forge.issues[1]["comments"] == []
    async with runtime(client).sessions() as session:
        [link] = await session.scalars(select(IssueLink))
    assert (link.number, link.state, link.last_event_id) == (1, "open", failed.id)


async def test_a_trigger_job_that_runs_again_asks_before_starting_again(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    """A crash after the call and before its outcome was stored: the runner is asked first."""
    request = await start_one(client, forge)
    trigger = runtime(client).engine.job_handlers()["trigger"]

    async def forget_the_outcome() -> None:
        async with runtime(client).sessions.begin() as session:
            event = await session.get(Event, request.event_id)
            assert event is not None and event.sending_at is not None
            event.run_id = event.url = event.started_at = None
            event.state = "sending"  # as a crash between the call and its record leaves it

    await forget_the_outcome()
    await trigger({"event_id": request.event_id})
    assert len(forge.of("start_pipeline")) == 1
    [event] = await events_of(client, APP)
    assert event.run_id == "again"

    forge.remembers_runs = False  # a runner that cannot tell: started again, once
    await forget_the_outcome()
    await trigger({"event_id": request.event_id})
    assert len(forge.of("start_pipeline")) == 2


async def test_a_trigger_job_that_runs_again_after_the_start_was_recorded_sends_nothing(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    """A crash after the start was stored and before the job was marked done: it was started,
    even where the runner cannot find the run (a webhook CI, GitHub's lagging run list)."""
    forge.remembers_runs = False
    request = await start_one(client, forge)
    trigger = runtime(client).engine.job_handlers()["trigger"]

    await trigger({"event_id": request.event_id})
    async with runtime(client).sessions.begin() as session:
        event = await session.get(Event, request.event_id)
        assert event is not None and event.started_at is not None
        event.run_id = None  # a webhook CI names no run: started_at alone says it started
    await trigger({"event_id": request.event_id})

    assert [started.event_id for _, started in forge.of("start_pipeline")] == [request.event_id]
    [event] = await events_of(client, APP)
    assert (event.result, event.reason) == (None, None)
    assert event.started_at is not None


async def test_jobs_name_the_owner_whose_forge_they_act_on(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    """A worker bounds how many jobs of one owner run at once by this key; a fan-out's batch
    of several owners names none, each of its calls paced by its own owner."""
    other = "github.com/Globex/app"
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))

    async def queued() -> list[tuple[str, str | None, dict[str, Any]]]:
        async with runtime(client).sessions.begin() as session:
            rows = await session.execute(
                select(Job.kind, Job.concurrency_key, Job.payload).where(Job.state == "queued")
            )
            await session.execute(delete(Job))
            return sorted((tuple(row) for row in rows), key=lambda row: row[0])

    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA))
    assert await runtime(client).worker.run_once()  # the delivery: the fan-out
    assert [row[:2] for row in await queued()] == [
        ("report", "github.com/acme"),
        ("trigger", "github.com/acme"),
    ]

    await index(client, other, upstream_of(LIB))
    await post_github(client, "workflow_run", workflow_run("acme/lib", "c" * 40))
    assert await runtime(client).worker.run_once()
    [*reports, trigger] = await queued()  # the first success's report too: superseded
    assert {report[:2] for report in reports} == {("report", "github.com/acme")}
    assert trigger[:2] == ("trigger", None)
    [other_event] = await events_of(client, other)
    assert len(trigger[2]["event_ids"]) == 2 and other_event.id in trigger[2]["event_ids"]
