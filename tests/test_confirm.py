"""Confirming (`confirm: true`): a would-be new regression is re-run on the same commits, then
against the upstream commit it last passed with, before anyone is blamed (CONTRACT §7) — end to
end through HTTP, with the downstream started by the forge or by a webhook runner."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from conjunction import db
from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.engine import Engine, UpstreamSuccess
from conjunction.forges.github.forge import GitHubForge
from conjunction.forges.github.server import GitHubRunning
from conjunction.forges.github.service import GitHubApp
from conjunction.forges.github.settings import GitHubSettings
from conjunction.models import Event
from conjunction.results import Confirmation, Result, Step, Verdict, after_rerun
from conjunction.runner import PipelineStarted, TriggerRequest
from conjunction.tokens import CallbackSigner, create_project_token
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from testkit.settings import with_forge
from tests.conftest import post_github, run_jobs, runtime
from tests.fakegithub import FakeGitHub
from tests.test_flow import APP, LIB, events_of, index, report_status
from tests.test_github_e2e import (
    INSTALLATION,
    TOKEN,
    contents,
    expect_artifacts,
    expect_dispatch,
    install,
)
from tests.test_pages import BROWSER, Page
from tests.webhook_receiver import HOOK_SECRET, Received, Receiver

PASSED_SHA, NEW_SHA = "1" * 40, "2" * 40
CONFIRM = f"owners: [alice]\nupstreams:\n  - project: {LIB}\n    confirm: true\n"
WEBHOOK = "trigger:\n  webhook:\n    url: https://ci.acme.dev/hooks/app\n"


@pytest.mark.parametrize(
    ("step", "result", "last_passed", "expected"),
    [
        (Step.AGAIN, Result.SUCCESS, "u1", Confirmation(Verdict.FLAKY)),
        (Step.AGAIN, Result.FAILURE, "u1", Confirmation(next_step=Step.LAST_PASSED)),
        (Step.AGAIN, Result.ERROR, "u1", Confirmation(next_step=Step.LAST_PASSED)),
        # it passed with this very upstream commit before: its own change broke it
        (Step.AGAIN, Result.FAILURE, "u2", Confirmation(Verdict.ALREADY_BROKEN)),
        (
            Step.AGAIN,
            Result.FAILURE,
            None,
            Confirmation(reason="not confirmed: the upstream commit it passed with is unknown"),
        ),
        (
            Step.AGAIN,
            Result.TIMED_OUT,
            "u1",
            Confirmation(reason="not confirmed: the re-run ended timed_out"),
        ),
        (Step.LAST_PASSED, Result.SUCCESS, "u1", Confirmation(Verdict.NEW_REGRESSION)),
        (Step.LAST_PASSED, Result.FAILURE, "u1", Confirmation(Verdict.ALREADY_BROKEN)),
        (
            Step.LAST_PASSED,
            Result.CANCELLED,
            "u1",
            Confirmation(reason="not confirmed: the re-run ended cancelled"),
        ),
    ],
)
def test_what_a_re_run_settles(
    step: Step, result: Result, last_passed: str | None, expected: Confirmation
) -> None:
    assert after_rerun(step, result, upstream_sha="u2", last_passed_sha=last_passed) == expected


class WebhookRunner:
    """A CI system reached by webhook: remembers what it was asked to start."""

    def __init__(self) -> None:
        self.started: list[TriggerRequest] = []

    async def start_pipeline(self, request: TriggerRequest) -> PipelineStarted:
        self.started.append(request)
        return PipelineStarted(url=f"https://ci.acme.dev/builds/{len(self.started)}")

    async def find_started(self, request: TriggerRequest) -> PipelineStarted | None:
        return None


Started = Callable[[], list[TriggerRequest]]
Setup = tuple[TestClient[Any, Any], MemoryHost, Started]


@pytest.fixture(params=["forge", "webhook"])
async def setup(request: pytest.FixtureRequest, aiohttp_client: Any, settings: Any) -> Setup:
    """The app with APP confirming its failures against LIB; APP is started by the forge or by
    a webhook runner. Returns the client, the forge, and what APP was asked to start so far."""
    forge, runner = MemoryHost(), WebhookRunner()
    adapters = Adapters.of(forge, runners={"webhook": runner})
    client = await aiohttp_client(create_app(settings, adapters=adapters, run_workers=False))
    await index(client, LIB, "owners: [libby]\nreport:\n  issues: true\n")
    if request.param == "webhook":
        await index(client, APP, CONFIRM + WEBHOOK)
        return client, forge, lambda: list(runner.started)
    await index(client, APP, CONFIRM)
    return client, forge, lambda: [started for _, started in forge.of("start_pipeline")]


async def lib_success(client: TestClient[Any, Any], sha: str, run_id: int) -> None:
    await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=run_id))
    await run_jobs(client)


async def answer(client: TestClient[Any, Any], request: TriggerRequest, result: str) -> None:
    reply = await report_status(client, request.event_id, result, metadata={"sha": "d" * 40})
    assert reply.status == 202
    await run_jobs(client)


async def page_text(client: TestClient[Any, Any], event_id: str) -> str:
    """The event page's words, as a reader sees them (blanks collapsed)."""
    response = await client.get(f"/events/{event_id}", headers=BROWSER)
    assert response.status == 200
    return " ".join("".join(Page(await response.text()).text).split())


async def a_new_failure(client: TestClient[Any, Any], started: Started) -> TriggerRequest:
    """APP passed against PASSED_SHA and fails against NEW_SHA: the failure being confirmed."""
    await lib_success(client, PASSED_SHA, 1)
    await answer(client, started()[-1], "success")
    await lib_success(client, NEW_SHA, 2)
    failure = started()[-1]
    await answer(client, failure, "failure")
    return failure


async def test_a_failure_is_run_again_and_the_upstream_waits(
    setup: Setup,
) -> None:
    client, forge, started = setup
    failure = await a_new_failure(client, started)

    assert len(started()) == 3
    again = started()[-1]
    assert again.event_id != failure.event_id
    assert (again.project, again.upstream_sha, again.parent_id) == (
        APP,
        NEW_SHA,
        failure.parent_id,
    )
    _, (sha, status) = forge.of("status")[-1]
    assert (sha, status.state, status.description) == (
        NEW_SHA,
        "pending",
        "0 of 1 downstream projects passed, confirming 1 failure",
    )
    _, (_, check) = forge.of("check")[-1]
    assert (
        f"| {APP} | 🔁 confirming: failed once, running again against the same upstream commit |"
        in check.summary
    )
    trace = await (await client.get(f"/api/v1/events/{again.event_id}")).json()
    assert trace["confirms"] == {"event": failure.event_id, "step": "again", "upstream_sha": None}
    failed = await (await client.get(f"/api/v1/events/{failure.event_id}")).json()
    assert (failed["result"], failed["verdict"]) == ("failure", None)
    assert failed["confirmation"]["step"] == "again"
    assert forge.issues == {}

    shown = await page_text(client, failure.parent_id or "")
    assert "0 of 1 downstream projects passed, confirming 1 failure" in shown
    assert f"Re-run against the same upstream commit {NEW_SHA[:7]} → running" in shown
    assert "Meaning:" not in shown, "nothing settled yet"


async def test_passing_again_makes_it_flaky(
    setup: Setup,
) -> None:
    client, forge, started = setup
    failure = await a_new_failure(client, started)
    await answer(client, started()[-1], "success")

    assert len(started()) == 3
    [_, original, _] = await events_of(client, APP)
    assert (original.id, original.result, original.change) == (
        failure.event_id,
        "failure",
        "flaky",
    )
    _, (_, status) = forge.of("status")[-1]
    assert (status.state, status.description) == (
        "success",
        "0 of 1 downstream projects passed, 1 flaky; none blamed on this commit",
    )
    _, (_, check) = forge.of("check")[-1]
    assert (check.conclusion, f"| {APP} | ⚠️ flaky |" in check.summary) == ("neutral", True)
    assert forge.issues == {}

    shown = await page_text(client, failure.event_id)
    assert f"Re-run against the same upstream commit {NEW_SHA[:7]} → passed" in shown
    lib = await client.get(f"/projects/{LIB}", headers=BROWSER)
    matrix = " ".join("".join(Page(await lib.text()).text).split())
    assert "0 of 1 passed" in matrix and "of 2" not in matrix, "a re-run is a step, not a run"
    home = await client.get("/", headers=BROWSER)
    home_text = " ".join("".join(Page(await home.text()).text).split())
    assert "0 of 1 downstream projects passed, 1 flaky" in home_text
    assert "Meaning: flaky — it passed when run again on the same commits" in shown
    assert "confirming" not in shown


async def test_failing_against_the_last_passed_commit_too_is_already_broken(
    setup: Setup,
) -> None:
    client, forge, started = setup
    await a_new_failure(client, started)
    await answer(client, started()[-1], "failure")

    assert len(started()) == 4
    back = started()[-1]
    assert (back.upstream_sha, back.upstream_ref) == (PASSED_SHA, "main")
    trace = await (await client.get(f"/api/v1/events/{back.event_id}")).json()
    assert trace["confirms"]["step"] == "last passed"
    assert trace["confirms"]["upstream_sha"] == PASSED_SHA
    _, (_, check) = forge.of("check")[-1]
    assert check.state == "pending"
    assert "🔁 confirming: failed twice, running against `1111111`" in check.summary

    await answer(client, back, "failure")
    _, (_, status) = forge.of("status")[-1]
    assert (status.state, status.description) == (
        "success",
        "0 of 1 downstream projects passed, 1 already broken; none blamed on this commit",
    )
    _, (_, check) = forge.of("check")[-1]
    assert f"| {APP} | ⛔ already broken |" in check.summary
    assert forge.issues == {}

    shown = await page_text(client, back.parent_id or "")
    assert f"Re-run against the same upstream commit {NEW_SHA[:7]} → failed" in shown
    assert (
        f"Re-run against the upstream commit it last passed with {PASSED_SHA[:7]} → failed" in shown
    )
    assert "Meaning: already broken — it fails against the upstream commit it last" in shown
    assert status.description in shown, "the page says what the status says"
    assert (
        "0 of 1 downstream projects passed, 1 already broken; none blamed on this commit" in shown
    ), "re-runs are no rows"


async def test_passing_against_the_last_passed_commit_confirms_a_new_regression(
    setup: Setup,
) -> None:
    client, forge, started = setup
    failure = await a_new_failure(client, started)
    await answer(client, started()[-1], "failure")
    await answer(client, started()[-1], "success")

    assert len(started()) == 4
    _, (_, status) = forge.of("status")[-1]
    assert (status.state, status.description) == (
        "failure",
        "0 of 1 downstream projects passed, 1 new regression",
    )
    _, (_, check) = forge.of("check")[-1]
    assert f"| {APP} | ❌ new regression |" in check.summary
    assert sorted(issue["project"] for issue in forge.issues.values()) == [APP, LIB]
    original = next(event for event in await events_of(client, APP) if event.id == failure.event_id)
    assert original.change == "new regression"
    reruns = [event for event in await events_of(client, APP) if event.confirms_id == original.id]
    assert [rerun.step for rerun in reruns] == ["again", "last passed"]

    shown = await page_text(client, failure.event_id)
    assert (
        f"Re-run against the upstream commit it last passed with {PASSED_SHA[:7]} → passed" in shown
    )
    assert "Meaning: confirmed new regression — it passes against the upstream commit" in shown


def lib_build_url(number: int) -> str:
    return f"https://ci.acme.dev/lib/{number}"


def wheel_of(number: int) -> dict[str, str]:
    return {"name": f"lib-1.{number}-py3-none-any.whl", "url": f"{lib_build_url(number)}/lib.whl"}


async def lib_build(client: TestClient[Any, Any], sha: str, number: int) -> None:
    """A success of LIB reported through the builds API, with the wheel it built."""
    async with runtime(client).sessions.begin() as session:
        token = await create_project_token(session, LIB)
    reply = await client.post(
        "/api/v1/builds",
        json={
            "project": LIB,
            "sha": sha,
            "ref": "main",
            "result": "success",
            "url": lib_build_url(number),
            "artifacts": [wheel_of(number)],
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert reply.status == 202
    await run_jobs(client)


async def test_the_re_run_against_the_last_passed_commit_gets_that_builds_artifacts(
    setup: Setup,
) -> None:
    """A downstream that installs the upstream's wheel tests the one built from the commit it
    last passed with, not the new one again (which would call a real regression already
    broken)."""
    client, forge, started = setup
    await lib_build(client, PASSED_SHA, 1)
    await answer(client, started()[-1], "success")
    await lib_build(client, NEW_SHA, 2)
    await answer(client, started()[-1], "failure")
    again = started()[-1]
    assert (again.upstream_sha, again.upstream_url, list(again.artifacts)) == (
        NEW_SHA,
        lib_build_url(2),
        [wheel_of(2)],
    )
    await answer(client, again, "failure")

    assert len(started()) == 4
    back = started()[-1]
    assert (back.upstream_sha, back.upstream_ref, back.upstream_url, list(back.artifacts)) == (
        PASSED_SHA,
        "main",
        lib_build_url(1),
        [wheel_of(1)],
    )
    trace = await (await client.get(f"/api/v1/events/{back.event_id}")).json()
    assert trace["upstream_artifacts"] == [wheel_of(1)], "the page lists what was sent"
    page = Page(await (await client.get(f"/events/{back.event_id}", headers=BROWSER)).text())
    assert "Upstream artifacts" in page.text
    assert wheel_of(1)["url"] in page.links and wheel_of(2)["url"] not in page.links

    await answer(client, back, "success")  # the old wheel passes: the new one broke it
    _, (_, status) = forge.of("status")[-1]
    assert (status.state, status.description) == (
        "failure",
        "0 of 1 downstream projects passed, 1 new regression",
    )


async def test_a_re_run_that_never_reports_blames_nobody(
    setup: Setup,
) -> None:
    client, forge, started = setup
    failure = await a_new_failure(client, started)
    await runtime(client).engine.record_result(started()[-1].event_id, "timed_out")
    await run_jobs(client)

    _, (_, status) = forge.of("status")[-1]
    assert (status.state, status.description) == (
        "success",
        "0 of 1 downstream projects passed, 1 failed; none blamed on this commit",
    )
    _, (_, check) = forge.of("check")[-1]
    assert f"| {APP} | ❌ failed: not confirmed: the re-run ended timed_out |" in check.summary
    assert forge.issues == {}
    original = next(event for event in await events_of(client, APP) if event.id == failure.event_id)
    assert (original.change, original.confirming) == (None, None)


async def test_a_later_failure_of_a_broken_pair_is_not_confirmed_again(
    setup: Setup,
) -> None:
    client, _, started = setup
    await a_new_failure(client, started)
    await answer(client, started()[-1], "failure")
    await answer(client, started()[-1], "success")  # a confirmed new regression
    await lib_success(client, "3" * 40, 3)
    await answer(client, started()[-1], "failure")
    assert len(started()) == 5
    assert [event.change for event in await events_of(client, APP)][-1] == "still failing"


async def test_confirming_in_storage(database_url: str, forge: MemoryHost) -> None:
    """The confirmation's rows and locks on SQLite and on PostgreSQL."""
    database = db.create_engine(database_url)
    await db.migrate(database)
    settings = Settings(database_url=database_url, public_url="https://conjunction.test")
    engine = Engine(
        db.sessionmaker(database), Adapters.of(forge), settings, CallbackSigner("k" * 20)
    )
    try:
        await engine.index_project(LIB, private=False, default_branch="main", config_text=None)
        await engine.index_project(APP, private=False, default_branch="main", config_text=CONFIRM)
        for sha, results in [
            (PASSED_SHA, ["success"]),
            (NEW_SHA, ["failure", "failure", "success"]),
        ]:
            await engine.upstream_success(UpstreamSuccess(LIB, sha, "main"))
            for result in results:
                [pending] = await engine.pending_triggers(APP)
                await engine.record_result(pending.id, result, sha="d" * 40)
        async with engine.sessions() as session:
            rows = await session.execute(
                select(Event.result, Event.change, Event.confirms_id, Event.step)
                .where(Event.project == APP)
                .order_by(Event.created_at)
            )
            runs = [
                (result, change, bool(confirms), None if step == "first" else step)
                for result, change, confirms, step in rows
            ]
        assert runs == [
            ("success", "passed", False, None),
            ("failure", "new regression", False, None),
            ("failure", None, True, "again"),
            ("success", None, True, "last passed"),
        ]
    finally:
        await database.dispose()


# confirming over the wire: the real webhook runner calls a CI system on loopback


async def reply(client: TestClient[Any, Any], sent: Received, result: str) -> None:
    """The CI system reports the run it was asked for, as the body it got tells it to."""
    body = sent.json()
    answer = await client.post(
        body["callback_url"].removeprefix("https://conjunction.test"),
        json={"result": result, "metadata": {"sha": "d" * 40}},
        headers={"Authorization": f"Bearer {body['callback_token']}"},
    )
    assert answer.status == 202, await answer.text()
    await run_jobs(client)


async def test_a_regression_is_confirmed_through_a_real_webhook(
    aiohttp_client: Any,
    settings: Settings,
    forge: MemoryHost,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    """APP's CI is reached by `trigger.webhook` (the real WebhookRunner, signed, to a receiver on
    loopback); LIB's builds come through the builds API with their wheels. Both re-runs arrive
    there as new trigger events of the same parent, the second with build 1's commit, URL and
    wheel; each is reported back with the token its body carried."""
    secrets_file = tmp_path / "secrets.yml"
    secrets_file.write_text(f'acme-ci: {{value: "{HOOK_SECRET}", projects: ["{APP}"]}}\n')
    settings = settings.model_copy(
        update={"secrets_file": secrets_file, "allow_private_webhooks": True}
    )
    client = await aiohttp_client(
        create_app(settings, adapters=Adapters.of(forge), run_workers=False)
    )
    hook = f"trigger:\n  webhook:\n    url: {receiver.url('/hooks/app')}\n    secret: acme-ci\n"
    await index(client, LIB, "owners: [libby]\nreport:\n  issues: true\n")
    await index(client, APP, CONFIRM + hook)

    await lib_build(client, PASSED_SHA, 1)
    await reply(client, receiver.received[-1], "success")
    await lib_build(client, NEW_SHA, 2)
    await reply(client, receiver.received[-1], "failure")
    _, (_, status) = forge.of("status")[-1]
    assert (status.state, status.description) == (
        "pending",
        "0 of 1 downstream projects passed, confirming 1 failure",
    )
    await reply(client, receiver.received[-1], "failure")  # re-run 1: it fails again
    await reply(client, receiver.received[-1], "success")  # re-run 2: passes with build 1

    assert len(receiver.received) == 4
    assert [(sent.method, sent.path, sent.signature_ok) for sent in receiver.received] == [
        ("POST", "/hooks/app", True)
    ] * 4
    bodies = [sent.json() for sent in receiver.received]
    assert [sent.headers["X-Conjunction-Event"] for sent in receiver.received] == [
        body["event"] for body in bodies
    ]
    assert len({body["event"] for body in bodies}) == 4, "each re-run is a new trigger event"
    assert len({body["callback_token"] for body in bodies}) == 4
    _, failure, again, back = bodies
    for rerun in (again, back):
        assert (rerun["project"], rerun["upstream"], rerun["upstream_ref"]) == (APP, LIB, "main")
        assert (rerun["parent"], rerun["root"], rerun["depth"]) == (
            failure["parent"],
            failure["root"],
            failure["depth"],
        )
        assert rerun["callback_url"] == (
            f"https://conjunction.test/api/v1/events/{rerun['event']}/status"
        )
    assert [
        (body["upstream_sha"], body["upstream_url"], body["artifacts"])
        for body in (failure, again, back)
    ] == [
        (NEW_SHA, lib_build_url(2), [wheel_of(2)]),
        (NEW_SHA, lib_build_url(2), [wheel_of(2)]),  # the same commits again
        (PASSED_SHA, lib_build_url(1), [wheel_of(1)]),  # what it last passed with
    ]
    # a token answers for its own event only
    wrong = await client.post(
        back["callback_url"].removeprefix("https://conjunction.test"),
        json={"result": "failure"},
        headers={"Authorization": f"Bearer {again['callback_token']}"},
    )
    assert wrong.status == 401

    _, (sha, status) = forge.of("status")[-1]
    assert (sha, status.state, status.description) == (
        NEW_SHA,
        "failure",
        "0 of 1 downstream projects passed, 1 new regression",
    )
    _, (_, check) = forge.of("check")[-1]
    assert f"| {APP} | ❌ new regression |" in check.summary
    assert sorted(issue["project"] for issue in forge.issues.values()) == [APP, LIB]
    original = await (await client.get(f"/api/v1/events/{failure['event']}")).json()
    assert (original["result"], original["verdict"]) == ("failure", "new regression")
    assert [
        (await (await client.get(f"/api/v1/events/{rerun['event']}")).json())["confirms"]
        for rerun in (again, back)
    ] == [
        {"event": failure["event"], "step": "again", "upstream_sha": None},
        {"event": failure["event"], "step": "last passed", "upstream_sha": PASSED_SHA},
    ]
    shown = await page_text(client, failure["event"])
    assert "Meaning: confirmed new regression — it passes against the upstream commit" in shown


# confirming through the GitHub App: gidgethub and the app's own policy client, on a fake GitHub

GH_LIB, GH_APP = "github.com/acme/lib", "github.com/acme/app"
GH_CONFIRM = (
    f"owners: [alice]\nupstreams:\n  - project: {GH_LIB}\n    confirm: true\n"
    "trigger:\n  workflow: conjunction.yml\n"
)
DISPATCHES = "/repos/acme/app/actions/workflows/conjunction.yml/dispatches"
GitHubSetup = tuple[TestClient[Any, Any], FakeGitHub]


@pytest.fixture
async def confirming_github(
    aiohttp_client: Any, settings: Settings, app_private_pem: str, fake_github: FakeGitHub
) -> AsyncIterator[GitHubSetup]:
    """The service as it runs with GitHub App credentials (only the transport is the fake
    GitHub), installed on acme/lib and on acme/app, which confirms its failures against lib."""
    gh = fake_github
    app_settings = settings.forge(GitHubSettings).model_copy(
        update={"private_key": app_private_pem}
    )
    settings = with_forge(settings, app_settings)
    database = db.create_engine(settings.database_url)
    github = GitHubApp.build(settings.forge(GitHubSettings), gh.connect, db.sessionmaker(database))
    client = await aiohttp_client(
        create_app(
            settings,
            running={"github": GitHubRunning(host=github.forge, app=github)},
            run_workers=False,
        )
    )
    gh.expect_installation_tokens(INSTALLATION)
    for name, config in (("lib", "owners: [libby]\n"), ("app", GH_CONFIRM)):
        gh.expect("GET", f"/repos/acme/{name}", body={"default_branch": "main", "private": False})
        gh.expect("GET", f"/repos/acme/{name}/contents/.conjunction.yml", body=contents(config))
        for path in GitHubForge.codeowners_paths:
            gh.expect(
                "GET",
                f"/repos/acme/{name}/contents/{path}",
                status=404,
                body={"message": "Not Found"},
            )
    await install(client, gh)
    gh.assert_all_called()
    yield client, gh
    await database.dispose()


def expect_lib_reports(gh: FakeGitHub, sha: str, check_run: int) -> None:
    """The commit status and the check run on one lib commit, and the pull request looked up
    when its report is complete."""
    gh.expect("POST", f"/repos/acme/lib/statuses/{sha}", body={}, repeat=True)
    gh.expect("GET", f"/repos/acme/lib/commits/{sha}/check-runs", body={"check_runs": []})
    gh.expect("POST", "/repos/acme/lib/check-runs", status=201, body={"id": check_run})
    gh.expect("PATCH", f"/repos/acme/lib/check-runs/{check_run}", body={}, repeat=True)
    gh.expect("GET", f"/repos/acme/lib/commits/{sha}/pulls", body=[], repeat=True)


async def lib_run_succeeds(
    client: TestClient[Any, Any], gh: FakeGitHub, sha: str, run: int
) -> None:
    """lib's push run at sha passes (no artifacts); app is dispatched as run `run + 50`."""
    expect_artifacts(gh, run)
    expect_dispatch(gh, run + 50)
    reply = await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=run))
    assert reply.status == 202
    await run_jobs(client)


async def app_run_ends(
    client: TestClient[Any, Any], run: int, conclusion: str, *, title: str = ""
) -> None:
    """The dispatched app run's own workflow_run: matched by its run id, or by the event id in
    its run-name."""
    done = workflow_run(
        "acme/app", "a" * 40, run_id=run, conclusion=conclusion, event="workflow_dispatch"
    )
    if title:
        done["workflow_run"]["display_title"] = title
    assert (await post_github(client, "workflow_run", done)).status == 202
    await run_jobs(client)


def dispatched(gh: FakeGitHub) -> list[dict[str, Any]]:
    """The inputs of every workflow_dispatch of app GitHub received, in order."""
    calls = gh.calls_to("POST", DISPATCHES)
    assert all(call.body["ref"] == "main" and call.body["return_run_details"] for call in calls)
    assert all(call.headers["authorization"] == f"token {TOKEN}" for call in calls)
    return [call.body["inputs"] for call in calls]


def statuses(gh: FakeGitHub, sha: str) -> list[tuple[str, str]]:
    return [
        (call.body["state"], call.body["description"])
        for call in gh.calls_to("POST", f"/repos/acme/lib/statuses/{sha}")
    ]


def check_run(gh: FakeGitHub, number: int) -> dict[str, Any]:
    """The check run as its last update left it."""
    body: dict[str, Any] = gh.calls_to("PATCH", f"/repos/acme/lib/check-runs/{number}")[-1].body
    return body


async def a_new_failure_on_github(client: TestClient[Any, Any], gh: FakeGitHub) -> dict[str, Any]:
    """app passed against lib at PASSED_SHA (run 101) and fails against NEW_SHA (run 102); the
    re-run against NEW_SHA is dispatched as run 103. Returns the failure's inputs."""
    expect_lib_reports(gh, PASSED_SHA, 7)
    await lib_run_succeeds(client, gh, PASSED_SHA, 51)
    await app_run_ends(client, 101, "success")
    assert statuses(gh, PASSED_SHA)[-1] == ("success", "1 of 1 downstream projects passed")

    expect_lib_reports(gh, NEW_SHA, 8)
    await lib_run_succeeds(client, gh, NEW_SHA, 52)
    # a re-run's step (`confirm`) goes only to a workflow declaring conjunction_step: it is read
    gh.expect(
        "GET",
        "/repos/acme/app/contents/.github/workflows/conjunction.yml?ref=main",
        status=404,
        body={"message": "Not Found"},
    )
    expect_dispatch(gh, 103)  # the re-run against the same upstream commit
    await app_run_ends(client, 102, "failure")
    passed, failure, again = dispatched(gh)
    for inputs, sha in ((passed, PASSED_SHA), (failure, NEW_SHA), (again, NEW_SHA)):
        assert inputs == {
            "conjunction_event": inputs["conjunction_event"],
            "upstream": GH_LIB,
            "upstream_sha": sha,
            "upstream_ref": "main",
        }
    assert len({inputs["conjunction_event"] for inputs in (passed, failure, again)}) == 3
    assert statuses(gh, NEW_SHA)[-1] == (
        "pending",
        "0 of 1 downstream projects passed, confirming 1 failure",
    )
    check = check_run(gh, 8)
    assert check["status"] == "in_progress"
    assert (
        f"| {GH_APP} | 🔁 confirming: failed once, running again against the same upstream commit |"
        in check["output"]["summary"]
    )
    return failure


async def test_a_regression_is_confirmed_through_the_github_app(
    confirming_github: GitHubSetup,
) -> None:
    """Failing against lib's new commit, app is dispatched again against it (a new event),
    fails again, is dispatched against the commit it last passed with and passes there: a
    confirmed new regression, which fails lib's status and opens an issue in acme/app."""
    client, gh = confirming_github
    failure = await a_new_failure_on_github(client, gh)

    expect_dispatch(gh, status=204, body=None)  # an older GitHub: no run details
    await app_run_ends(client, 103, "failure")
    back = dispatched(gh)[-1]
    assert back == {
        "conjunction_event": back["conjunction_event"],
        "upstream": GH_LIB,
        "upstream_sha": PASSED_SHA,  # the commit it last passed with
        "upstream_ref": "main",
    }
    assert len({inputs["conjunction_event"] for inputs in dispatched(gh)}) == 4
    assert statuses(gh, NEW_SHA)[-1] == (
        "pending",
        "0 of 1 downstream projects passed, confirming 1 failure",
    )
    assert (
        "🔁 confirming: failed twice, running against `1111111`"
        in (check_run(gh, 8)["output"]["summary"])
    )
    assert gh.calls_to("POST", "/repos/acme/app/issues") == [], "nobody blamed yet"

    gh.expect(
        "GET", "/repos/acme/app/labels/conjunction", status=404, body={"message": "Not Found"}
    )
    gh.expect("POST", "/repos/acme/app/labels", status=201, body={"name": "conjunction"})
    gh.expect("GET", "/repos/acme/app/issues?labels=conjunction&state=open", body=[])
    gh.expect(
        "GET",
        f"/repos/acme/lib/compare/{PASSED_SHA}...{NEW_SHA}",
        body={
            "total_commits": 1,
            "commits": [
                {
                    "sha": NEW_SHA,
                    "html_url": f"https://github.com/acme/lib/commit/{NEW_SHA}",
                    "commit": {"message": "Parse dates strictly", "author": {"name": "Libby"}},
                    "author": {"login": "libby"},
                }
            ],
        },
    )
    gh.expect(
        "POST",
        "/repos/acme/app/issues",
        status=201,
        body={"number": 5, "html_url": "https://github.com/acme/app/issues/5"},
    )
    # the run it started names the event in its run-name (as the README's workflow does)
    await app_run_ends(client, 104, "success", title=f"Conjunction {back['conjunction_event']}")

    assert len(dispatched(gh)) == 4
    assert statuses(gh, NEW_SHA)[-1] == (
        "failure",
        "0 of 1 downstream projects passed, 1 new regression",
    )
    check = check_run(gh, 8)
    assert (check["status"], check["conclusion"]) == ("completed", "failure")
    assert f"| {GH_APP} | ❌ new regression |" in check["output"]["summary"]
    [issue] = gh.calls_to("POST", "/repos/acme/app/issues")
    assert issue.path == "/repos/acme/app/issues"
    assert issue.body["title"] == f"{GH_APP} fails against {GH_LIB}"
    assert issue.body["labels"] == ["conjunction"]
    assert "Downstream owners: @alice" in issue.body["body"]
    assert "Upstream owners: @libby" in issue.body["body"]
    assert (
        f"Confirmed by re-running: {GH_APP} passes against upstream `1111111` and fails "
        "against `2222222`, so the culprit is among" in issue.body["body"]
    )
    assert "- Failing run: <https://github.com/acme/app/actions/runs/102>" in issue.body["body"]
    assert f"`2222222`](https://github.com/acme/lib/commit/{NEW_SHA})" in issue.body["body"]
    assert gh.calls_to("POST", "/repos/acme/lib/issues") == [], "lib did not opt in"
    original = await (await client.get(f"/api/v1/events/{failure['conjunction_event']}")).json()
    assert (original["result"], original["verdict"]) == ("failure", "new regression")
    gh.assert_all_called()


async def test_passing_again_through_the_github_app_is_flaky(
    confirming_github: GitHubSetup,
) -> None:
    client, gh = confirming_github
    failure = await a_new_failure_on_github(client, gh)
    await app_run_ends(client, 103, "success")

    assert len(dispatched(gh)) == 3, "no re-run against the last passed commit"
    assert statuses(gh, NEW_SHA)[-1] == (
        "success",
        "0 of 1 downstream projects passed, 1 flaky; none blamed on this commit",
    )
    check = check_run(gh, 8)
    assert (check["status"], check["conclusion"]) == ("completed", "neutral")
    assert f"| {GH_APP} | ⚠️ flaky |" in check["output"]["summary"]
    assert [call for call in gh.calls if "/issues" in call.path or "/labels" in call.path] == []
    original = await (await client.get(f"/api/v1/events/{failure['conjunction_event']}")).json()
    assert (original["result"], original["verdict"]) == ("failure", "flaky")
    gh.assert_all_called()
