"""Across forges, end to end through HTTP: signed GitHub webhooks and signed Gitea and Forgejo
webhooks in, the calls Gitea receives (the fake Gitea on codeberg.org) and what the GitHub side
shows (the in-memory code host) out."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from conjunction.models import Event
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.fakegitea import (
    ACTIONS_LOG,
    FakeGitea,
    action_run_event,
    post_gitea,
    repo_path,
    status_event,
    workflow_run_event,
)

APP = "acme/app"
LIB = "acme/lib"
SHAS = ["1" * 40, "2" * 40, "3" * 40]
MARKER = "<!-- conjunction:downstream-summary -->"
DOWNSTREAM_CONFIG = (
    "owners: [alice, acme/app-team]\n"
    "upstreams:\n  - project: github.com/acme/lib\n"
    "trigger:\n  workflow: downstream.yml\n"
)


async def index(client: TestClient[Any, Any], *names: str) -> None:
    for name in names:
        assert await runtime(client).engine.refresh_project(name) is None


async def trigger_event(client: TestClient[Any, Any], project: str) -> Event:
    [event] = await runtime(client).engine.pending_triggers(project)
    return event


def expect_breakage_issue(fake_gitea: FakeGitea) -> None:
    """What opening the breakage issue in acme/app asks: open issues, the label (created),
    the issue itself; and the compare of the downstream's commits since it last passed."""
    repo = repo_path(APP)
    fake_gitea.expect(
        "GET", f"{repo}/issues", query={"state": "open", "labels": "conjunction"}, body=[]
    )
    fake_gitea.expect("GET", f"{repo}/labels", body=[])
    fake_gitea.expect("POST", f"{repo}/labels", status=201, body={"id": 8})
    fake_gitea.expect(
        "POST",
        f"{repo}/issues",
        status=201,
        body={"number": 12, "html_url": f"https://codeberg.org/{APP}/issues/12"},
    )
    fake_gitea.expect("GET", f"{repo}/compare/{'a' * 40}...{'b' * 40}", repeat=True, body={})


async def test_github_upstream_gitea_downstream(
    gitea_both: tuple[TestClient[Any, Any], MemoryHost], fake_gitea: FakeGitea
) -> None:
    client, github = gitea_both
    repo = repo_path(APP)
    github.files[("github.com/acme/lib", ".conjunction.yml")] = "owners: [libby]\n"
    fake_gitea.expect_index(APP, DOWNSTREAM_CONFIG)
    await index(client, "github.com/acme/lib", f"codeberg.org/{APP}")

    # a GitHub success dispatches the downstream workflow, with the contract's inputs; this
    # server is a Forgejo that answers with the new run's id
    fake_gitea.expect_dispatch(
        APP, "downstream.yml", status=201, body={"id": 900, "run_number": 3, "jobs": ["test"]}
    )
    assert (
        await post_github(client, "workflow_run", workflow_run("acme/lib", SHAS[0]))
    ).status == 202
    await run_jobs(client)
    [dispatch] = fake_gitea.dispatches(APP, "downstream.yml")
    event = await trigger_event(client, f"codeberg.org/{APP}")
    assert dispatch.body == {
        "ref": "main",
        "inputs": {
            "conjunction_event": event.id,
            "upstream": "github.com/acme/lib",
            "upstream_sha": SHAS[0],
            "upstream_ref": "main",
        },
        "return_run_info": True,
    }
    assert event.run_id == "900"
    _, (_, pending) = github.of("status")[-1]
    assert pending.description == "0 of 1 downstream projects passed, 1 running"

    # Forgejo's Action run event for that run is the result, shown on the GitHub commit
    done = action_run_event(APP, "a" * 40, run_id=900, event="workflow_dispatch")
    assert (await post_gitea(client, "action_run", done, forgejo=True)).status == 202
    await run_jobs(client)
    _, (sha, passed) = github.of("status")[-1]
    assert (sha, passed.state, passed.description) == (
        SHAS[0],
        "success",
        "1 of 1 downstream projects passed",
    )
    _, (_, summary) = github.of("check")[-1]
    assert "| codeberg.org/acme/app | ✅ passed |" in summary.summary
    assert "(https://codeberg.org/acme/app/actions/runs/900)" in summary.summary

    # a breakage opens an issue in the Gitea repository, mentioning its owners, naming the
    # GitHub upstream's owners with a link and showing the end of the failed job's log; this
    # server is a Gitea with run details and its runs' jobs and logs
    fake_gitea.expect_dispatch(
        APP,
        "downstream.yml",
        status=200,
        body={"workflow_run_id": 901, "html_url": f"https://codeberg.org/{APP}/actions/runs/901"},
    )
    expect_breakage_issue(fake_gitea)
    fake_gitea.expect_failed_job(APP, 901, 78, ACTIONS_LOG)
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHAS[1], run_id=2))
    await run_jobs(client)
    failed = workflow_run_event(
        APP, "b" * 40, run_id=901, conclusion="failure", event="workflow_dispatch"
    )
    await post_gitea(client, "workflow_run", failed)
    await run_jobs(client)
    [issue] = fake_gitea.calls_to("POST", f"{repo}/issues")
    assert issue.body["labels"] == [8]
    assert "Downstream owners: @alice @acme/app-team" in issue.body["body"]
    assert "Upstream owners: [libby on GitHub](https://github.com/libby)" in issue.body["body"]
    assert (
        "Why it failed (**test failure**), from the end of the failed job's log:\n\n```text\n"
        "runner-1(version:v6.3.1) received task 77 of job test, be triggered by event:"
        " workflow_dispatch\n"
        "workflow prepared\n"
        "\U0001f680  Start image=python:3.12\n"
        "============ test session starts ============\n"
        "collected 13 items\n"
        "FAILED tests/test_api.py::test_parse - AssertionError: assert 2 == 3\n"
        "using GITEA_TOKEN=[redacted]\n"
        "============ 1 failed, 12 passed in 0.41s ============\n```\n\n"
        "[the whole log](https://codeberg.org/acme/app/actions/runs/901/jobs/1)"
    ) in issue.body["body"]
    _, (_, broken) = github.of("status")[-1]
    assert broken.description == (
        "0 of 1 downstream projects passed, 1 new regression; none blamed on this commit"
    )

    # the next pass closes it; an older server answers the dispatch without an id, and the
    # run is matched as the one run of the dispatched workflow on its ref created since
    fake_gitea.expect_dispatch(APP, "downstream.yml", status=204)
    fake_gitea.expect("POST", f"{repo}/issues/12/comments", status=201, body={"id": 3})
    fake_gitea.expect("PATCH", f"{repo}/issues/12", status=201, body={"number": 12})
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHAS[2], run_id=3))
    await run_jobs(client)
    event = await trigger_event(client, f"codeberg.org/{APP}")
    passed_again = action_run_event(
        APP, "c" * 40, run_id=902, event="workflow_dispatch", workflow="downstream.yml"
    )
    await post_gitea(client, "action_run", passed_again, forgejo=True)
    await run_jobs(client)
    [closed] = fake_gitea.calls_to("PATCH", f"{repo}/issues/12")
    assert closed.body == {"state": "closed"}
    assert (await runtime(client).engine.get_event(event.id)).result == "success"  # type: ignore[union-attr]


async def test_forgejo_without_the_jobs_api_opens_the_issue_without_an_excerpt(
    gitea_both: tuple[TestClient[Any, Any], MemoryHost], fake_gitea: FakeGitea
) -> None:
    """Forgejo has no route for a run's jobs: its 404 is asked once and taken as no excerpt;
    the failure and its issue are as they would be without one."""
    client, github = gitea_both
    repo = repo_path(APP)
    github.files[("github.com/acme/lib", ".conjunction.yml")] = "owners: [libby]\n"
    fake_gitea.expect_index(APP, DOWNSTREAM_CONFIG)
    await index(client, "github.com/acme/lib", f"codeberg.org/{APP}")
    for run_id, sha, status in ((900, "a" * 40, "success"), (901, "b" * 40, "failure")):
        fake_gitea.expect_dispatch(
            APP, "downstream.yml", status=201, body={"id": run_id, "run_number": run_id - 897}
        )
        await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=run_id))
        await run_jobs(client)
        if status == "failure":
            expect_breakage_issue(fake_gitea)
            fake_gitea.expect(
                "GET",
                f"{repo}/actions/runs/{run_id}/jobs",
                status=404,
                body={"message": "The target couldn't be found."},
            )
        done = action_run_event(APP, sha, run_id=run_id, status=status, event="workflow_dispatch")
        assert (await post_gitea(client, "action_run", done, forgejo=True)).status == 202
        await run_jobs(client)

    [issue] = fake_gitea.calls_to("POST", f"{repo}/issues")
    assert "Downstream owners: @alice @acme/app-team" in issue.body["body"]
    assert "Why it failed" not in issue.body["body"]
    [asked] = fake_gitea.calls_to("GET", f"{repo}/actions/runs/901/jobs")
    assert asked.status == 404
    _, (_, broken) = github.of("status")[-1]
    assert broken.description.startswith("0 of 1 downstream projects passed, 1 new regression")
    async with runtime(client).sessions() as session:
        failure = await session.scalar(select(Event).where(Event.run_id == "901"))
    assert failure is not None and (failure.result, failure.excerpt) == ("failure", None)


async def test_gitea_upstream_github_downstream(
    gitea_both: tuple[TestClient[Any, Any], MemoryHost], fake_gitea: FakeGitea
) -> None:
    client, github = gitea_both
    repo, sha = repo_path(LIB), SHAS[0]
    fake_gitea.expect_index(LIB, None, codeowners={"CODEOWNERS": "* @libby\n"})
    github.files[("github.com/acme/app", ".conjunction.yml")] = (
        "upstreams:\n  - project: codeberg.org/acme/lib\n"
    )
    await index(client, f"codeberg.org/{LIB}", "github.com/acme/app")
    fake_gitea.expect_status(LIB, sha)
    fake_gitea.expect("GET", f"{repo}/commits/{sha}/pull", body={"number": 3}, repeat=True)
    # the pull request hears once, of the complete result
    fake_gitea.expect("GET", f"{repo}/issues/3/comments", body=[])
    fake_gitea.expect("POST", f"{repo}/issues/3/comments", status=201, body={"id": 5})

    # a Forgejo push run's success on codeberg.org starts the GitHub downstream
    run = action_run_event(LIB, sha, run_id=41)
    assert (await post_gitea(client, "action_run", run, forgejo=True)).status == 202
    await run_jobs(client)
    [(name, request)] = github.of("start_pipeline")
    assert (name, request.upstream, request.upstream_sha, request.upstream_ref) == (
        "github.com/acme/app",
        "codeberg.org/acme/lib",
        sha,
        "main",
    )
    running = fake_gitea.statuses(LIB, sha)[-1]
    assert running == {
        "state": "pending",
        "context": "conjunction/downstream",
        "description": "0 of 1 downstream projects passed, 1 running",
        "target_url": running["target_url"],
    }
    assert running["target_url"].startswith("https://conjunction.test/events/")

    # the GitHub run's result comes back to the codeberg.org commit and pull request
    done = workflow_run("acme/app", "d" * 40, run_id=1, event="workflow_dispatch")
    await post_github(client, "workflow_run", done)
    await run_jobs(client)
    final = fake_gitea.statuses(LIB, sha)[-1]
    assert (final["state"], final["description"]) == (
        "success",
        "1 of 1 downstream projects passed",
    )
    [comment] = fake_gitea.calls_to("POST", f"{repo}/issues/3/comments")
    assert comment.body["body"].startswith(MARKER)
    assert "| github.com/acme/app | ✅ passed |" in comment.body["body"]


async def test_another_ci_status_on_the_default_branch_is_an_upstream_success(
    gitea_both: tuple[TestClient[Any, Any], MemoryHost], fake_gitea: FakeGitea
) -> None:
    client, github = gitea_both
    repo = repo_path(LIB)
    fake_gitea.expect_index(LIB, None)
    github.files[("github.com/acme/app", ".conjunction.yml")] = (
        "upstreams:\n  - project: codeberg.org/acme/lib\n    pipelines: [ci/woodpecker/push/test]\n"
    )
    await index(client, f"codeberg.org/{LIB}", "github.com/acme/app")
    fake_gitea.expect("GET", f"{repo}/branches/main", body={"commit": {"id": SHAS[1]}}, times=2)
    fake_gitea.expect_status(LIB, SHAS[1])

    # a status on an older commit, one still pending, one of Actions' own jobs, and ours
    for status in (
        status_event(LIB, SHAS[0]),
        status_event(LIB, SHAS[1], state="pending"),
        status_event(LIB, SHAS[1], target_url=f"https://codeberg.org/{LIB}/actions/runs/4/jobs/0"),
        status_event(LIB, SHAS[1], context="conjunction/downstream"),
    ):
        assert (await post_gitea(client, "status", status)).status == 202
    await run_jobs(client)
    assert github.of("start_pipeline") == []

    # Woodpecker's success on the head of main is an upstream success
    await post_gitea(client, "status", status_event(LIB, SHAS[1]))
    await run_jobs(client)
    [(_, request)] = github.of("start_pipeline")
    assert (request.upstream_sha, request.upstream_ref) == (SHAS[1], "main")


async def test_a_status_naming_the_event_is_its_result(
    gitea_both: tuple[TestClient[Any, Any], MemoryHost], fake_gitea: FakeGitea
) -> None:
    """A downstream whose CI (Woodpecker, Jenkins) is started by a webhook and reports a
    commit status naming the event: that status is the trigger's result."""
    client, github = gitea_both
    github.files[("github.com/acme/lib", ".conjunction.yml")] = "owners: [libby]\n"
    fake_gitea.expect_index(APP, DOWNSTREAM_CONFIG)
    fake_gitea.expect_dispatch(APP, "downstream.yml", status=204)
    await index(client, "github.com/acme/lib", f"codeberg.org/{APP}")
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHAS[0]))
    await run_jobs(client)
    event = await trigger_event(client, f"codeberg.org/{APP}")

    # an unrelated status (no event named) is not the result
    await post_gitea(client, "status", status_event(APP, "e" * 40, state="failure"))
    await run_jobs(client)
    assert (await trigger_event(client, f"codeberg.org/{APP}")).result is None

    named = status_event(
        APP, "e" * 40, description=f"conjunction {event.id}: tests passed", target_url=""
    )
    await post_gitea(client, "status", named)
    await run_jobs(client)
    stored = await runtime(client).engine.get_event(event.id)
    assert stored is not None and stored.result == "success"
    _, (_, report) = github.of("status")[-1]
    assert report.description == "1 of 1 downstream projects passed"
