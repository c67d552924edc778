"""Failure excerpts end to end: a failing downstream's lines that say why, fetched once from
its CI and shown on the check run, the breakage issue, the event page and the home page.

GitHub is the fake GitHub behind the app's own client (the calls it receives are asserted);
a webhook CI reports through the status API with `metadata.summary` and `metadata.log_url`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from conjunction.config.settings import Settings
from conjunction.excerpts import FailureText, Source
from conjunction.forges.github.client import PolicyAPI, aiohttp_connect
from conjunction.forges.github.forge import GitHubForge
from conjunction.models import Event, Job
from testkit.github_server import GitHubServer
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.fakegithub import FakeGitHub
from tests.test_dashboard import page
from tests.test_flow import APP, report_status, start_one
from tests.test_github_e2e import LIB_SHA, expect_artifacts, expect_dispatch, started

# GitHub's job log: timestamps, colours, the failed step, then the post-job steps
JOB_LOG = "\n".join(
    [
        "2026-12-07T10:00:01.0000000Z ##[group]Run pytest -q",
        "2026-12-07T10:00:01.2000000Z ##[endgroup]",
        "2026-12-07T10:00:02.0000000Z collected 31 items",
        "2026-12-07T10:00:03.0000000Z \x1b[31mFAILED\x1b[0m tests/test_parse.py::test_name"
        " - KeyError: 'name'",
        "2026-12-07T10:00:03.0500000Z using GITHUB_TOKEN=ghs_" + "x" * 36,
        "2026-12-07T10:00:03.1000000Z \x1b[31m1 failed, 30 passed in 0.52s\x1b[0m",
        "2026-12-07T10:00:03.2000000Z ##[error]Process completed with exit code 1.",
        "2026-12-07T10:00:04.0000000Z Post job cleanup.",
    ]
)
ANNOTATIONS = [
    {
        "path": ".github",
        "start_line": 1,
        "annotation_level": "failure",
        "message": "Process completed with exit code 1.",
        "title": "",
    },
    {
        "path": "tests/test_parse.py",
        "start_line": 12,
        "annotation_level": "failure",
        "message": "KeyError: 'name' @alice see [docs](https://evil.example) <script>x()</script>",
        "title": "test_name",
    },
]
JOB_ID = 555


@pytest.fixture
async def github(
    aiohttp_client: Any, settings: Settings, app_private_pem: str, fake_github: FakeGitHub
) -> AsyncIterator[tuple[TestClient[Any, Any], FakeGitHub]]:
    """The service as it runs with the GitHub App installed on acme/lib and acme/app."""
    async with started(aiohttp_client, settings, app_private_pem, fake_github) as client:
        yield client, fake_github


def failed_jobs(run_id: int) -> dict[str, Any]:
    """GitHub's list of a run's jobs: one passed, one failed."""
    return {
        "total_count": 2,
        "jobs": [
            {"id": 554, "run_id": run_id, "name": "lint", "conclusion": "success"},
            {
                "id": JOB_ID,
                "run_id": run_id,
                "name": "test",
                "conclusion": "failure",
                "html_url": f"https://github.com/acme/app/actions/runs/{run_id}/job/{JOB_ID}",
                "check_run_url": f"https://api.github.com/repos/acme/app/check-runs/{JOB_ID}",
            },
        ],
    }


def expect_a_breakage(gh: FakeGitHub) -> None:
    """Reports on both upstream commits and the issue a new regression opens."""
    for sha in LIB_SHA[:2]:
        gh.expect("POST", f"/repos/acme/lib/statuses/{sha}", body={}, repeat=True)
        gh.expect("GET", f"/repos/acme/lib/commits/{sha}/check-runs", body={"check_runs": []})
        gh.expect("GET", f"/repos/acme/lib/commits/{sha}/pulls", body=[], repeat=True)
    gh.expect("POST", "/repos/acme/lib/check-runs", body={"id": 7}, times=2)
    gh.expect("PATCH", "/repos/acme/lib/check-runs/7", body={}, repeat=True)
    gh.expect("GET", "/repos/acme/app/labels/conjunction", body={"name": "conjunction"})
    gh.expect("GET", "/repos/acme/app/issues?labels=conjunction&state=open", body=[])
    gh.expect(
        "POST",
        "/repos/acme/app/issues",
        body={"number": 5, "html_url": "https://github.com/acme/app/issues/5"},
    )
    gh.expect(
        "GET",
        f"/repos/acme/lib/compare/{LIB_SHA[0]}...{LIB_SHA[1]}",
        body={"total_commits": 0, "commits": []},
    )


async def pass_then_fail(client: TestClient[Any, Any], gh: FakeGitHub) -> str:
    """acme/app passes against the first upstream commit and fails (run 101) against the
    second; returns the failure's event id."""
    for run_id, (sha, conclusion) in enumerate(
        zip(LIB_SHA[:2], ["success", "failure"], strict=True), start=100
    ):
        expect_artifacts(gh, run_id - 50)
        expect_dispatch(gh, run_id)
        await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=run_id - 50))
        await run_jobs(client)
        result = workflow_run("acme/app", "a" * 40, run_id=run_id, conclusion=conclusion)
        await post_github(client, "workflow_run", result)
        await run_jobs(client)
    async with runtime(client).sessions() as session:
        failure = await session.scalar(select(Event).where(Event.run_id == "101"))
    assert failure is not None and failure.result == "failure"
    return failure.id


def expect_jobs(gh: FakeGitHub, run_id: int = 101, **answer: Any) -> None:
    gh.expect(
        "GET",
        f"/repos/acme/app/actions/runs/{run_id}/jobs?filter=latest&per_page=100",
        **({"body": failed_jobs(run_id)} | answer),
    )


async def test_a_github_failure_is_explained_by_its_annotations(
    github: tuple[TestClient[Any, Any], FakeGitHub],
) -> None:
    client, gh = github
    expect_a_breakage(gh)
    expect_jobs(gh)
    gh.expect("GET", f"/repos/acme/app/check-runs/{JOB_ID}/annotations", body=ANNOTATIONS)
    failure = await pass_then_fail(client, gh)
    gh.assert_all_called()  # the log is not asked for: the annotations say why
    assert gh.calls_to("GET", "/repos/acme/app/actions/jobs/") == []

    why = (
        "tests/test_parse.py:12: test_name: KeyError: 'name' @alice see "
        "[docs](https://evil.example) <script>x()</script>"
    )
    [issue] = [call for call in gh.calls if call.path == "/repos/acme/app/issues"]
    assert (
        "Why it failed, from the failed job's annotations:\n\n```text\n" + why + "\n```\n\n"
        "[the whole log](https://github.com/acme/app/actions/runs/101/job/555)"
    ) in issue.body["body"]
    check = gh.calls_to("PATCH", "/repos/acme/lib/check-runs/7")[-1].body["output"]["summary"]
    assert "**Why they failed**\n\ngithub.com/acme/app:\n\n" in check
    assert (
        "<details><summary>why it failed: the failed job's annotations</summary>\n\n"
        "```text\n" + why + "\n```\n\n"
    ) in check

    shown = await page(client, f"/events/{failure}")
    text = " ".join(" ".join(shown.text).split())
    assert f"from the failed job's annotations · the whole log {why}" in text
    assert "https://github.com/acme/app/actions/runs/101/job/555" in shown.links
    assert "https://evil.example" not in shown.links and shown.inline == []  # no script


async def test_without_annotations_the_failed_jobs_log_says_why(
    github: tuple[TestClient[Any, Any], FakeGitHub],
) -> None:
    client, gh = github
    expect_a_breakage(gh)
    expect_jobs(gh)
    gh.expect("GET", f"/repos/acme/app/check-runs/{JOB_ID}/annotations", body=ANNOTATIONS[:1])
    # GitHub answers with a redirect to the plain text, which the client follows
    gh.expect("GET", f"/repos/acme/app/actions/jobs/{JOB_ID}/logs", body=JOB_LOG)
    failure = await pass_then_fail(client, gh)
    gh.assert_all_called()

    [issue] = [call for call in gh.calls if call.path == "/repos/acme/app/issues"]
    assert (
        "Why it failed (**test failure**), from the end of the failed job's log:\n\n```text\n"
        "collected 31 items\n"
        "FAILED tests/test_parse.py::test_name - KeyError: 'name'\n"
        "using GITHUB_TOKEN=[redacted]\n"
        "1 failed, 30 passed in 0.52s\n```"
    ) in issue.body["body"]
    check = gh.calls_to("PATCH", "/repos/acme/lib/check-runs/7")[-1].body["output"]["summary"]
    assert "| ❌ new regression `test failure` |" in check
    assert "ghs_" not in check and "ghs_" not in issue.body["body"]

    shown = await page(client, f"/events/{failure}")
    text = " ".join(" ".join(shown.text).split())
    assert "test failure from the end of the failed job's log" in text
    api = await (await client.get(f"/api/v1/events/{failure}")).json()
    assert (api["excerpt"]["cause"], api["excerpt"]["source"]) == ("test failure", "log")
    assert "using GITHUB_TOKEN=[redacted]" in api["excerpt"]["text"]
    home = await page(client, "/")
    home_text = " ".join(" ".join(home.text).split())
    assert ("github.com/acme/app fails against github.com/acme/lib — new regression") in home_text
    assert "test failure FAILED tests/test_parse.py::test_name - KeyError: 'name'" in home_text


async def test_a_failed_fetch_leaves_the_result_and_the_job_finishes(
    github: tuple[TestClient[Any, Any], FakeGitHub],
) -> None:
    """GitHub answers 500 (after the client's retries) to the list of jobs: no excerpt, the
    result and its issue as they are, the job done — asked once, never again."""
    client, gh = github
    expect_a_breakage(gh)
    expect_jobs(gh, status=500, body={"message": "Server Error"}, repeat=True)
    failure = await pass_then_fail(client, gh)
    asked = len(gh.calls_to("GET", "/repos/acme/app/actions/runs/101/jobs"))
    gh.assert_all_called()

    [issue] = [call for call in gh.calls if call.path == "/repos/acme/app/issues"]
    assert "Why it failed" not in issue.body["body"]
    async with runtime(client).sessions() as session:
        event = await session.get(Event, failure)
        jobs = list(await session.scalars(select(Job).where(Job.kind == "excerpt")))
    assert event is not None and (event.result, event.change, event.excerpt) == (
        "failure",
        "new regression",
        None,
    )
    assert [job.state for job in jobs] == ["done"]  # the failure's: a pass has none
    await run_jobs(client)
    assert len(gh.calls_to("GET", "/repos/acme/app/actions/runs/101/jobs")) == asked
    shown = await page(client, f"/events/{failure}")
    assert "from the end" not in " ".join(shown.text)


async def test_a_404_for_the_jobs_gives_no_excerpt(
    github: tuple[TestClient[Any, Any], FakeGitHub],
) -> None:
    client, gh = github
    expect_a_breakage(gh)
    expect_jobs(gh, status=404, body={"message": "Not Found"})
    failure = await pass_then_fail(client, gh)
    gh.assert_all_called()
    async with runtime(client).sessions() as session:
        event = await session.get(Event, failure)
    assert event is not None and (event.result, event.excerpt) == ("failure", None)


async def test_a_webhook_cis_summary_and_log_url_are_its_excerpt(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    request = await start_one(client, forge)
    summary = "\n".join(
        [*[f"step {i}" for i in range(600)], "make: *** [all] Error 2 password=hunter2"]
    )
    assert len(summary) > 2048  # cut to its end, not refused
    answer = await report_status(
        client,
        request.event_id,
        "failure",
        url="https://ci.example/builds/41",
        metadata={"summary": summary, "log_url": "https://ci.example/builds/41/log"},
    )
    assert answer.status == 202
    await run_jobs(client)
    assert forge.of("failure_text") == []  # the CI said why: its runner is not asked

    async with runtime(client).sessions() as session:
        event = await session.get(Event, request.event_id)
    assert event is not None and event.excerpt is not None
    assert event.excerpt["source"] == "ci" and event.excerpt["cause"] == "build error"
    assert event.excerpt["text"].endswith("step 599\nmake: *** [all] Error 2 password=[redacted]")
    assert event.excerpt["text"].count("\n") == 19  # its last 20 lines
    [(_, (_, check))] = forge.of("check")[-1:]
    assert "| ❌ failed `build error` |" in check.summary
    assert "[the whole log](https://ci.example/builds/41/log)" in check.summary

    shown = await page(client, f"/events/{request.event_id}")
    text = " ".join(" ".join(shown.text).split())
    assert "build error from what its CI reported · the whole log step 581" in text
    assert "https://ci.example/builds/41/log" in shown.links
    assert "hunter2" not in text


async def test_a_runner_is_asked_once_and_a_pass_has_no_excerpt(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    """The runner (here the in-memory host) is asked for a failure only; its answer is
    classified (a time-out), and a later pass of the same event's newer attempt drops it."""
    request = await start_one(client, forge)
    forge.failures[(APP, "1")] = FailureText(
        Source.LOG, "Waiting for runner...\nThe job exceeded the maximum execution time of 6h"
    )
    await report_status(client, request.event_id, "failure")
    await run_jobs(client)
    await run_jobs(client)
    assert forge.of("failure_text") == [(APP, "1")]
    async with runtime(client).sessions() as session:
        event = await session.get(Event, request.event_id)
    assert event is not None and event.excerpt is not None
    assert event.excerpt["cause"] == "timed out"

    await report_status(client, request.event_id, "success", metadata={"attempt": 2})
    await run_jobs(client)
    async with runtime(client).sessions() as session:
        event = await session.get(Event, request.event_id)
    assert event is not None and (event.result, event.excerpt) == ("success", None)
    assert forge.of("failure_text") == [(APP, "1")]


async def test_wrong_types_in_the_summary_are_refused_naming_the_field(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    request = await start_one(client, forge)
    for metadata, error in [
        ({"summary": 42}, "metadata.summary: Input should be a valid string"),
        ({"summary": "x", "log_url": "file:///etc/passwd"}, "metadata.log_url: not an http(s) URL"),
    ]:
        answer = await report_status(client, request.event_id, "failure", metadata=metadata)
        assert (answer.status, await answer.json()) == (422, {"error": error})
    async with runtime(client).sessions() as session:
        event = await session.get(Event, request.event_id)
    assert event is not None and event.result is None  # nothing recorded


async def test_the_app_s_own_client_reads_a_job_s_log_over_http() -> None:
    """The GitHub adapter over aiohttp against the fake GitHub server: the jobs of a run, the
    failed job's annotations (only GitHub's exit line), then its log as plain text; a run
    without a failed job has no excerpt."""
    with GitHubServer() as server:
        job_id = server.fail_job(41, JOB_LOG, ANNOTATIONS[:1])
        async with aiohttp.ClientSession() as session:
            connect = aiohttp_connect(session, api_url=server.url)

            async def clients(project: str) -> PolicyAPI:
                return connect(oauth_token="token-1")

            forge = GitHubForge(clients)
            found = await forge.failure_text("github.com/acme/app", "41")
            assert await forge.failure_text("github.com/acme/app", "42") is None
        assert found == FailureText(Source.LOG, JOB_LOG, None)
        assert server.unexpected == []
        assert [call.path for call in server.calls] == [
            "/repos/acme/app/actions/runs/41/jobs?filter=latest&per_page=100",
            f"/repos/acme/app/check-runs/{job_id}/annotations",
            f"/repos/acme/app/actions/jobs/{job_id}/logs",
            "/repos/acme/app/actions/runs/42/jobs?filter=latest&per_page=100",
        ]


async def test_an_excerpt_that_cannot_be_made_holds_back_no_issue(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    """The runner fails in a way no one foresaw: the job fails (and is retried as any job),
    but the breakage issue it held back is opened all the same, without an excerpt."""
    first = await start_one(client, forge)
    await report_status(client, first.event_id, "success")
    await run_jobs(client)
    await post_github(client, "workflow_run", workflow_run("acme/lib", "b" * 40, run_id=2))
    await run_jobs(client)
    [(_, second)] = forge.of("start_pipeline")[1:]
    forge.failures[(APP, "2")] = RuntimeError("a bug")
    await report_status(client, second.event_id, "failure")
    await run_jobs(client)
    [issue] = forge.issues.values()
    assert issue["project"] == APP and "Why it failed" not in issue["body"]
    async with runtime(client).sessions() as session:
        [job] = await session.scalars(select(Job).where(Job.kind == "excerpt"))
    assert job.state != "done" and "a bug" in (job.last_error or "")
