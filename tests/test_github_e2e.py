"""The GitHub App end to end: signed webhooks in, the calls GitHub receives out.

install -> configs indexed -> upstream success -> workflow_dispatch with the contract's inputs
-> downstream results -> commit status, check run, and a breakage issue opened then closed.
The app is wired as it runs (`GitHubApp`, its policy clients, tokens); only the transport
is the fake GitHub.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from gidgethub import sansio
from sqlalchemy import select, update

from conjunction import db
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.forges.github.auth import GitHubAppAuth
from conjunction.forges.github.client import GitHubClients
from conjunction.forges.github.forge import GitHubForge
from conjunction.forges.github.server import GitHubRunning
from conjunction.forges.github.service import GitHubApp
from conjunction.forges.github.settings import GitHubSettings
from conjunction.models import Event, Job, utcnow
from testkit.payloads import fixture, workflow_run
from testkit.settings import with_forge
from tests.conftest import post_github, run_jobs, runtime
from tests.fakegithub import FakeGitHub, FakeTime, fake_policy

LIB_SHA = ["1" * 40, "2" * 40, "3" * 40]
INSTALLATION = 957387  # of installation.created.json
TOKEN = f"token-{INSTALLATION}"
APP_CONFIG = """\
owners: [alice]
upstreams:
  - project: github.com/acme/lib
trigger:
  workflow: conjunction.yml
"""


def contents(text: str) -> dict[str, Any]:
    return {
        "type": "file",
        "encoding": "base64",
        "content": base64.b64encode(text.encode()).decode(),
    }


@contextlib.asynccontextmanager
async def started(
    aiohttp_client: Any, settings: Settings, private_pem: str, gh: FakeGitHub
) -> AsyncIterator[TestClient[Any, Any]]:
    """The service as it runs, with GitHub App credentials; GitHub is the fake. The app is
    installed on acme/lib and acme/app."""
    app_settings = settings.forge(GitHubSettings).model_copy(update={"private_key": private_pem})
    settings = with_forge(settings, app_settings)
    database = db.create_engine(settings.database_url)
    github = GitHubApp.build(settings.forge(GitHubSettings), gh.connect, db.sessionmaker(database))
    app = create_app(
        settings,
        running={"github": GitHubRunning(host=github.forge, app=github)},
        run_workers=False,
    )
    client = await aiohttp_client(app)
    gh.expect_installation_tokens(INSTALLATION)
    expect_install(gh)
    await install(client, gh)
    yield client
    await database.dispose()


@pytest.fixture
async def github(
    aiohttp_client: Any,
    settings: Settings,
    app_private_pem: str,
    fake_github: FakeGitHub,
) -> AsyncIterator[tuple[TestClient[Any, Any], FakeGitHub]]:
    async with started(aiohttp_client, settings, app_private_pem, fake_github) as client:
        yield client, fake_github


def expect_install(gh: FakeGitHub) -> None:
    for name in ("lib", "app"):
        gh.expect("GET", f"/repos/acme/{name}", body={"default_branch": "main", "private": False})
    gh.expect(
        "GET", "/repos/acme/lib/contents/.conjunction.yml", body=contents("owners: [libby]\n")
    )
    gh.expect("GET", "/repos/acme/app/contents/.conjunction.yml", body=contents(APP_CONFIG))
    for path in GitHubForge.codeowners_paths:
        gh.expect(
            "GET", f"/repos/acme/lib/contents/{path}", status=404, body={"message": "Not Found"}
        )
        gh.expect(
            "GET", f"/repos/acme/app/contents/{path}", status=404, body={"message": "Not Found"}
        )


def expect_dispatch(gh: FakeGitHub, run_id: int = 99, **answer: Any) -> None:
    body = {
        "workflow_run_id": run_id,
        "html_url": f"https://github.com/acme/app/actions/runs/{run_id}",
    }
    gh.expect(
        "POST",
        "/repos/acme/app/actions/workflows/conjunction.yml/dispatches",
        **({"body": body} | answer),
    )


def expect_artifacts(gh: FakeGitHub, run_id: int = 1, *artifacts: dict[str, Any]) -> None:
    """The upstream run's artifacts, which Conjunction asks for as the run has downstreams."""
    gh.expect(
        "GET",
        f"/repos/acme/lib/actions/runs/{run_id}/artifacts",
        body={"total_count": len(artifacts), "artifacts": list(artifacts)},
    )


def expect_reports(gh: FakeGitHub, *, completed: bool = True) -> None:
    """The upstream commit's status and check run; the pull request is looked up only when
    the report is complete."""
    gh.expect("POST", "/repos/acme/lib/statuses/" + LIB_SHA[0], body={}, repeat=True)
    gh.expect("GET", f"/repos/acme/lib/commits/{LIB_SHA[0]}/check-runs", body={"check_runs": []})
    gh.expect("POST", "/repos/acme/lib/check-runs", body={"id": 7})
    if completed:
        gh.expect("GET", f"/repos/acme/lib/commits/{LIB_SHA[0]}/pulls", body=[], repeat=True)


async def install(client: TestClient[Any, Any], gh: FakeGitHub) -> None:
    payload = fixture("github/installation.created.json")
    payload["repositories"] = [
        {"id": 1, "name": "lib", "full_name": "acme/lib", "private": False},
        {"id": 2, "name": "app", "full_name": "acme/app", "private": False},
    ]
    assert (await post_github(client, "installation", payload)).status == 202
    await run_jobs(client)


async def test_install_trigger_report_issue(
    github: tuple[TestClient[Any, Any], FakeGitHub],
) -> None:
    client, gh = github

    # an upstream success starts the downstream workflow with the contract's inputs
    expect_artifacts(gh)
    expect_dispatch(gh)
    expect_reports(gh)
    gh.expect("PATCH", "/repos/acme/lib/check-runs/7", body={}, repeat=True)
    assert (
        await post_github(client, "workflow_run", workflow_run("acme/lib", LIB_SHA[0]))
    ).status == 202
    await run_jobs(client)

    [dispatch] = gh.calls_to("POST", "/repos/acme/app/actions/workflows/")
    event_id = dispatch.body["inputs"]["conjunction_event"]
    assert dispatch.body == {
        "ref": "main",
        "inputs": {
            "conjunction_event": event_id,
            "upstream": "github.com/acme/lib",
            "upstream_sha": LIB_SHA[0],
            "upstream_ref": "main",
        },
        "return_run_details": True,
    }
    assert dispatch.headers["authorization"] == f"token {TOKEN}"  # as the installation
    [pending] = gh.calls_to("POST", "/repos/acme/lib/statuses/")
    assert pending.body["state"] == "pending"
    assert pending.body["context"] == "conjunction/downstream"
    assert pending.body["description"] == "0 of 1 downstream projects passed, 1 running"
    [created] = gh.calls_to("POST", "/repos/acme/lib/check-runs")
    assert (created.body["name"], created.body["status"]) == (
        "Conjunction: downstream",
        "in_progress",
    )

    # the downstream's own workflow_run is its result, matched by the run id
    done = workflow_run("acme/app", "a" * 40, run_id=99, event="workflow_dispatch")
    await post_github(client, "workflow_run", done)
    await run_jobs(client)
    final = gh.calls_to("POST", "/repos/acme/lib/statuses/")[-1].body
    assert (final["state"], final["description"]) == (
        "success",
        "1 of 1 downstream projects passed",
    )
    check = gh.calls_to("PATCH", "/repos/acme/lib/check-runs/7")[-1].body
    assert (check["status"], check["conclusion"]) == ("completed", "success")
    assert (
        "| github.com/acme/app | ✅ passed | [run](https://github.com/acme/app/actions/runs/99)"
        in (check["output"]["summary"])
    )
    assert "`alice`" in check["output"]["summary"]
    gh.assert_all_called()


async def test_a_breakage_opens_an_issue_and_a_pass_closes_it(
    github: tuple[TestClient[Any, Any], FakeGitHub],
) -> None:
    client, gh = github
    for sha in LIB_SHA:
        gh.expect("POST", f"/repos/acme/lib/statuses/{sha}", body={}, repeat=True)
        gh.expect("GET", f"/repos/acme/lib/commits/{sha}/check-runs", body={"check_runs": []})
        gh.expect("GET", f"/repos/acme/lib/commits/{sha}/pulls", body=[], repeat=True)
    gh.expect("POST", "/repos/acme/lib/check-runs", body={"id": 7}, times=3)
    gh.expect("PATCH", "/repos/acme/lib/check-runs/7", body={}, repeat=True)
    gh.expect(
        "GET", "/repos/acme/app/labels/conjunction", status=404, body={"message": "Not Found"}
    )
    gh.expect("POST", "/repos/acme/app/labels", body={"name": "conjunction"})
    gh.expect("GET", "/repos/acme/app/issues?labels=conjunction&state=open", body=[])
    gh.expect(
        "POST",
        "/repos/acme/app/issues",
        body={"number": 5, "html_url": "https://github.com/acme/app/issues/5"},
    )
    gh.expect("POST", "/repos/acme/app/issues/5/comments", body={})
    gh.expect("PATCH", "/repos/acme/app/issues/5", body={})
    # why run 101 failed is asked; none of its jobs says (tests/test_excerpts_flow.py)
    gh.expect(
        "GET",
        "/repos/acme/app/actions/runs/101/jobs?filter=latest&per_page=100",
        body={"total_count": 0, "jobs": []},
    )
    gh.expect(
        "GET",
        f"/repos/acme/lib/compare/{LIB_SHA[0]}...{LIB_SHA[1]}",
        body={
            "total_commits": 2,
            "commits": [
                {
                    "sha": "c1" * 20,
                    "html_url": f"https://github.com/acme/lib/commit/{'c1' * 20}",
                    "commit": {
                        "message": "Parse dates strictly\n\nLonger text.",
                        "author": {"name": "Libby"},
                    },
                    "author": {"login": "libby"},
                },
                {
                    "sha": LIB_SHA[1],
                    "html_url": f"https://github.com/acme/lib/commit/{LIB_SHA[1]}",
                    "commit": {"message": "Drop | support", "author": {"name": "A. Person"}},
                    "author": None,
                },
            ],
        },
    )

    for run_id, (sha, conclusion) in enumerate(
        zip(LIB_SHA, ["success", "failure", "success"], strict=True), start=100
    ):
        expect_artifacts(gh, run_id - 50)
        expect_dispatch(gh, run_id)
        await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=run_id - 50))
        await run_jobs(client)
        result = workflow_run("acme/app", "a" * 40, run_id=run_id, conclusion=conclusion)
        await post_github(client, "workflow_run", result)
        await run_jobs(client)

    [label] = gh.calls_to("POST", "/repos/acme/app/labels")
    assert label.body["name"] == "conjunction"
    [issue] = [call for call in gh.calls if call.path == "/repos/acme/app/issues"]
    assert issue.body["title"] == "github.com/acme/app fails against github.com/acme/lib"
    assert issue.body["labels"] == ["conjunction"]
    assert "Downstream owners: @alice" in issue.body["body"]
    assert "Upstream owners: @libby" in issue.body["body"]
    assert f"https://github.com/acme/lib/compare/{LIB_SHA[0]}...{LIB_SHA[1]}" in issue.body["body"]
    assert (
        "github.com/acme/app did not change since it last passed: the culprit is most likely "
        "among the 2 upstream commits `1111111`…`2222222`." in issue.body["body"]
    )
    assert (
        f"- [`c1c1c1c`](https://github.com/acme/lib/commit/{'c1' * 20}) Parse dates strictly"
        " — libby\n"
        f"- [`2222222`](https://github.com/acme/lib/commit/{LIB_SHA[1]}) Drop \\| support"
        " — A. Person\n" in issue.body["body"]
    )
    [comment] = gh.calls_to("POST", "/repos/acme/app/issues/5/comments")
    assert comment.body["body"].startswith(
        "github.com/acme/app passes again against upstream `3333333`"
    )
    [close] = gh.calls_to("PATCH", "/repos/acme/app/issues/5")
    assert close.body["state"] == "closed"
    gh.assert_all_called()


async def test_missing_workflow_is_a_reason_on_the_row(
    github: tuple[TestClient[Any, Any], FakeGitHub],
) -> None:
    client, gh = github
    expect_artifacts(gh)
    expect_dispatch(gh, status=404, body={"message": "Not Found"})
    expect_reports(gh)
    await post_github(client, "workflow_run", workflow_run("acme/lib", LIB_SHA[0]))
    await run_jobs(client)
    status = gh.calls_to("POST", "/repos/acme/lib/statuses/")[-1].body
    assert (status["state"], status["description"]) == (
        "success",
        "0 of 1 downstream projects passed, 1 error; none blamed on this commit",
    )
    [check] = gh.calls_to("POST", "/repos/acme/lib/check-runs")
    assert (check.body["status"], check.body["conclusion"]) == ("completed", "neutral")
    summary = check.body["output"]["summary"]
    assert "❌ error: workflow conjunction.yml not found in acme/app on main" in summary


async def test_a_dispatch_whose_answer_was_lost_is_found_not_sent_again(
    github: tuple[TestClient[Any, Any], FakeGitHub],
) -> None:
    """GitHub started the run but its answer was lost: the client does not repeat the POST;
    the job's retry asks GitHub for the run with the event id in its title, finds it and keeps
    its id, and the downstream's result is matched to it."""
    client, gh = github
    expect_artifacts(gh)
    expect_dispatch(gh, error=aiohttp.ServerDisconnectedError())
    expect_reports(gh)
    gh.expect("PATCH", "/repos/acme/lib/check-runs/7", body={}, repeat=True)
    await post_github(client, "workflow_run", workflow_run("acme/lib", LIB_SHA[0]))
    await run_jobs(client)
    [dispatch] = gh.calls_to("POST", "/repos/acme/app/actions/workflows/")
    event_id = dispatch.body["inputs"]["conjunction_event"]

    run = {
        "id": 99,
        "display_title": f"Conjunction {event_id}",
        "html_url": "https://github.com/acme/app/actions/runs/99",
    }
    gh.expect(
        "GET",
        "/repos/acme/app/actions/runs?event=workflow_dispatch&per_page=50",
        body={"workflow_runs": [run]},
    )
    async with runtime(client).sessions.begin() as session:  # its retry is due now
        await session.execute(update(Job).where(Job.state == "queued").values(run_at=utcnow()))
    await run_jobs(client)
    assert len(gh.calls_to("POST", "/repos/acme/app/actions/workflows/")) == 1
    async with runtime(client).sessions() as session:
        event = await session.get(Event, event_id)
    assert event is not None
    assert (event.run_id, event.url) == ("99", run["html_url"])

    done = workflow_run("acme/app", "a" * 40, run_id=99, event="workflow_dispatch")
    await post_github(client, "workflow_run", done)
    await run_jobs(client)
    final = gh.calls_to("POST", "/repos/acme/lib/statuses/")[-1].body
    assert (final["state"], final["description"]) == (
        "success",
        "1 of 1 downstream projects passed",
    )
    gh.assert_all_called()


async def test_rate_limit_answer_postpones_the_job(
    github: tuple[TestClient[Any, Any], FakeGitHub],
) -> None:
    client, gh = github
    expect_artifacts(gh)
    expect_dispatch(
        gh,
        status=403,
        body={"message": "You have exceeded a secondary rate limit"},
        headers={"Retry-After": "120"},
    )
    expect_reports(gh, completed=False)
    await post_github(client, "workflow_run", workflow_run("acme/lib", LIB_SHA[0]))
    await run_jobs(client)
    assert len(gh.calls_to("POST", "/repos/acme/app/actions/workflows/")) == 1, "not hammered"
    async with runtime(client).sessions() as session:
        job = await session.scalar(select(Job).where(Job.kind == "trigger"))
    assert job is not None
    assert (job.state, job.attempts) == ("queued", 0)
    assert 110 < (job.run_at - job.created_at).total_seconds() < 130


async def test_a_config_check_from_the_push_handler_is_paced(
    aiohttp_client: Any,
    settings: Settings,
    app_private_pem: str,
) -> None:
    time = FakeTime()
    gh = FakeGitHub(time=time, policy=fake_policy(time, per_minute=1))
    async with started(aiohttp_client, settings, app_private_pem, gh) as client:
        gh.expect(
            "GET", "/repos/acme/app/contents/.conjunction.yml", body=contents("x: ["), repeat=True
        )
        for path in GitHubForge.codeowners_paths:
            gh.expect("GET", f"/repos/acme/app/contents/{path}", status=404, body={}, repeat=True)
        gh.expect("POST", "/repos/acme/app/check-runs", status=201, body={"id": 1}, times=2)
        for sha in ("a" * 40, "b" * 40):
            await post_github(client, "push", push_to_app(sha))
            await run_jobs(client)
        # the second waits for its turn postponed in the queue, holding no worker
        assert len(gh.calls_to("POST", "/repos/acme/app/check-runs")) == 1
        async with runtime(client).sessions() as session:
            [waiting] = await session.scalars(select(Job).where(Job.state == "queued"))
        assert waiting.attempts == 0 and "secondary rate limit" in (waiting.last_error or "")
        time.now += 61
        async with runtime(client).sessions.begin() as session:
            await session.execute(update(Job).where(Job.state == "queued").values(run_at=utcnow()))
        await run_jobs(client)
        gh.assert_all_called()

    first, second = gh.calls_to("POST", "/repos/acme/app/check-runs")
    assert (first.body["head_sha"], second.body["head_sha"]) == ("a" * 40, "b" * 40)
    assert second.headers["authorization"] == f"token {TOKEN}"  # as the installation
    assert time.sleeps == []


def push_to_app(sha: str) -> dict[str, Any]:
    """A push to acme/app's default branch that changes `.conjunction.yml`."""
    payload = fixture("github/push.json")
    payload.update(ref="refs/heads/main", after=sha, installation={"id": INSTALLATION})
    payload["repository"].update(full_name="acme/app", name="app", default_branch="main")
    payload["head_commit"]["modified"] = [".conjunction.yml"]
    return payload


async def test_payload_without_installation_finds_it_by_repository(
    fake_github: FakeGitHub,
    app_private_pem: str,
) -> None:
    auth = GitHubAppAuth("1", app_private_pem)
    github = GitHubApp("github.com", GitHubClients(auth, fake_github.connect), None, None)  # type: ignore[arg-type]
    fake_github.expect("GET", "/repos/acme/lib/installation", body={"id": 5})
    fake_github.expect("GET", "/repos/other/repo/installation", status=404, body={})
    fake_github.expect_installation_tokens(5, 42)

    payload = workflow_run("acme/lib", LIB_SHA[0])
    assert "installation" not in payload
    event = sansio.Event(payload, event="workflow_run", delivery_id="1")
    found = await github.client_for_event(event)
    assert found is not None
    assert (found.oauth_token, found.pace_key) == ("token-5", "installation 5")
    payload["installation"] = {"id": 42}
    given = await github.client_for_event(event)
    assert given is not None
    assert (given.oauth_token, given.pace_key) == ("token-42", "installation 42")
    elsewhere = sansio.Event(
        workflow_run("other/repo", LIB_SHA[0]), event="workflow_run", delivery_id="2"
    )
    assert await github.client_for_event(elsewhere) is None
    gone = fixture("github/installation.deleted.json")
    assert (
        await github.client_for_event(sansio.Event(gone, event="installation", delivery_id="3"))
        is None
    )
