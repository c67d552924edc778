"""Pre-merge runs end to end through HTTP (CONTRACT §8): GitHub's documented `pull_request`
payload in, what the downstreams are started with and what the pull request shows out."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from conjunction.codehost import PREMERGE_REPORT_NAME, PREMERGE_STATUS_CONTEXT
from conjunction.models import Event
from conjunction.runner import TriggerRequest
from conjunction.runs import Change, Step, TriggerState
from testkit.memoryhost import MemoryHost
from testkit.payloads import fixture, workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.fakegithub import FakeGitHub
from tests.fakegitlab import FakeGitLab, encoded, pipeline_hook, post_gitlab
from tests.test_commands import comment as command_comment
from tests.test_flow import index, report_status, upstream_of
from tests.test_github_e2e import contents, expect_dispatch
from tests.test_github_e2e import github as github  # the service with the fake GitHub (fixture)

LIB = "github.com/acme/lib"
APP = "github.com/acme/app"
TOOL = "github.com/acme/tool"
EXT = "github.com/other/ext"
SECRET = "github.com/acme/secret"
BASE = "b" * 40
HEAD = "c" * 40
NEWER = "d" * 40
PR_URL = "https://github.com/acme/lib/pull/7"
MEMBERS = "owners: [libby]\npremerge: {when: members}\n"


def pull_request(
    action: str = "opened",
    head: str = HEAD,
    *,
    author: str = "libby",
    fork: bool = False,
    merged: bool = False,
) -> dict[str, Any]:
    """GitHub's documented `pull_request` example, pointed at acme/lib's pull request 7."""
    payload = copy.deepcopy(fixture("github/pull_request.opened.json"))
    payload["action"] = action
    payload["number"] = 7
    pull = payload["pull_request"]
    pull.update(number=7, html_url=PR_URL, state="closed" if action == "closed" else "open")
    pull["merged"] = merged
    pull["user"]["login"] = author
    pull["head"]["sha"], pull["base"]["sha"] = head, BASE
    pull["base"]["repo"]["full_name"] = "acme/lib"
    pull["head"]["repo"]["full_name"] = "stranger/lib" if fork else "acme/lib"
    payload["repository"]["full_name"] = "acme/lib"
    return payload


async def recorded_base(
    client: TestClient[Any, Any], forge: MemoryHost, results: dict[str, str]
) -> None:
    """LIB's merged base commit ran its downstreams, with these results."""
    await post_github(client, "workflow_run", workflow_run("acme/lib", BASE))
    await run_jobs(client)
    for project, request in forge.of("start_pipeline"):
        if project in results:
            assert (await report_status(client, request.event_id, results[project])).status == 202
    await run_jobs(client)
    forge.calls.clear()


async def open_pull(client: TestClient[Any, Any], **kw: Any) -> dict[str, TriggerRequest]:
    assert (await post_github(client, "pull_request", pull_request(**kw))).status == 202
    await run_jobs(client)
    return {
        project: request
        for project, request in runtime_forge(client).of("start_pipeline")
        if request.change is not None
    }


def runtime_forge(client: TestClient[Any, Any]) -> MemoryHost:
    host = runtime(client).engine.adapters.host(LIB)
    assert isinstance(host, MemoryHost)
    return host


def premerge_reports(forge: MemoryHost, kind: str = "status") -> list[Any]:
    return [
        report
        for _, (sha, report) in forge.of(kind)
        if sha == HEAD and report.status_context == PREMERGE_STATUS_CONTEXT
    ]


def comment(forge: MemoryHost) -> str:
    [*_, (project, (sha, body))] = forge.of("comment_on_change")
    assert (project, sha) == (LIB, HEAD)
    return str(body)


async def triggers(client: TestClient[Any, Any], project: str) -> list[Event]:
    async with runtime(client).sessions() as session:
        rows = await session.scalars(
            select(Event)
            .where(Event.project == project, Event.change_number.is_not(None))
            .order_by(Event.created_at)
        )
        return list(rows)


async def test_a_change_that_breaks_a_required_downstream_fails_its_check(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, MEMBERS)
    await index(client, APP, upstream_of(LIB, owners="[alice]"))
    await index(client, TOOL, upstream_of(LIB, owners="[bob]"))
    await recorded_base(client, forge, {APP: "success", TOOL: "success"})
    forge.writers.add("libby")

    started = await open_pull(client)

    assert sorted(started) == [APP, TOOL]
    request = started[APP]
    assert (request.upstream, request.upstream_sha, request.upstream_ref) == (
        LIB,
        HEAD,
        "refs/pull/7/head",
    )
    assert (request.change, request.kind, request.step) == (PR_URL, "premerge", None)
    # both pairs passed on the base commit: no baseline is run
    assert [e.step for e in await triggers(client, APP)] == [Step.FIRST]
    [pending] = premerge_reports(forge)
    assert pending.state == "pending"
    assert pending.target_url == "https://conjunction.test/changes/github.com/acme/lib/7"
    # the merged-commit report is not touched
    assert not [
        r for _, (sha, r) in forge.of("status") if r.status_context != PREMERGE_STATUS_CONTEXT
    ]

    await report_status(client, started[APP].event_id, "failure")
    await report_status(client, started[TOOL].event_id, "success")
    await run_jobs(client)

    final = premerge_reports(forge)[-1]
    assert (final.state, final.description) == (
        "failure",
        "1 of 2 downstream projects pass with this change, 1 breaks",
    )
    [*_, check] = premerge_reports(forge, "check")
    assert (check.check_name, check.conclusion) == (PREMERGE_REPORT_NAME, "failure")
    text = comment(forge)
    assert text.startswith("<!-- conjunction:premerge -->")
    assert "| github.com/acme/app | ❌ breaks |" in text
    assert "| github.com/acme/tool | ✅ passes |" in text
    assert "https://conjunction.test/changes/github.com/acme/lib/7" in text
    # no issue, no notification, no verdict in any pair's history
    assert not forge.of("open_issue")
    [app_run] = await triggers(client, APP)
    assert app_run.change is None


async def test_a_change_that_breaks_only_an_optional_downstream_passes(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(
        client, LIB, "owners: [libby]\npremerge: {when: members, downstreams: ['github.com/*']}\n"
    )
    await index(client, EXT, "upstreams:\n  - project: github.com/acme/lib\n    premerge: true\n")
    await index(client, APP, upstream_of(LIB))
    await recorded_base(client, forge, {APP: "success", EXT: "success"})
    forge.writers.add("libby")

    started = await open_pull(client)
    assert sorted(started) == [APP, EXT]
    await report_status(client, started[EXT].event_id, "failure")
    await report_status(client, started[APP].event_id, "success")
    await run_jobs(client)

    final = premerge_reports(forge)[-1]
    assert final.state == "success"
    assert "| github.com/other/ext | ❌ breaks (optional) |" in comment(forge)


async def test_a_downstream_already_broken_on_the_base_is_not_blamed(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, MEMBERS)
    await index(client, APP, upstream_of(LIB))
    await recorded_base(client, forge, {APP: "failure"})
    forge.writers.add("libby")

    started = await open_pull(client)
    await report_status(client, started[APP].event_id, "failure")
    await run_jobs(client)

    assert premerge_reports(forge)[-1].state == "success"
    assert "| github.com/acme/app | ⛔ already broken |" in comment(forge)


async def test_without_a_recorded_base_result_the_base_commit_is_run_too(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, MEMBERS)
    await index(client, APP, upstream_of(LIB))
    forge.writers.add("libby")

    await post_github(client, "pull_request", pull_request())
    await run_jobs(client)

    runs = {request.step: request for _, request in forge.of("start_pipeline")}
    assert sorted(runs, key=str) == [None, "baseline"]
    baseline = runs["baseline"]
    assert (baseline.upstream_sha, baseline.upstream_ref, baseline.kind, baseline.change) == (
        BASE,
        "main",
        "premerge",
        PR_URL,
    )
    await report_status(client, runs[None].event_id, "failure")
    await run_jobs(client)
    assert premerge_reports(forge)[-1].state == "pending"  # the baseline still runs

    await report_status(client, baseline.event_id, "success")
    await run_jobs(client)
    assert premerge_reports(forge)[-1].state == "failure"
    assert "| github.com/acme/app | ❌ breaks |" in comment(forge)

    # a later change with the same base finds that baseline: nothing more runs on the base
    forge.calls.clear()
    other = await runtime(client).engine.premerge(
        Change(LIB, 8, "https://github.com/acme/lib/pull/8", NEWER, BASE), commanded=True
    )
    assert other.downstreams == (APP,) and other.reason is None
    await run_jobs(client)
    assert [r.step for _, r in forge.of("start_pipeline")] == [None]


async def test_a_push_supersedes_the_unsent_triggers_of_the_older_head(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, MEMBERS)
    await index(client, APP, upstream_of(LIB))
    await recorded_base(client, forge, {APP: "success"})
    forge.writers.add("libby")

    # both deliveries arrive before the first head's trigger was sent
    await post_github(client, "pull_request", pull_request())
    await post_github(client, "pull_request", pull_request("synchronize", NEWER))
    await run_jobs(client)

    [(_, request)] = forge.of("start_pipeline")
    assert request.upstream_sha == NEWER
    first, newer = await triggers(client, APP)
    assert (first.state, first.reason) == (TriggerState.SUPERSEDED, "superseded by ddddddd")
    assert newer.state == TriggerState.STARTED


async def test_a_closed_pull_request_starts_nothing(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, MEMBERS)
    await index(client, APP, upstream_of(LIB))
    forge.writers.add("libby")

    await post_github(client, "pull_request", pull_request("closed", merged=True))
    await run_jobs(client)
    assert not forge.of("start_pipeline")
    answer = await runtime(client).engine.premerge(
        Change(LIB, 7, PR_URL, HEAD, BASE, state="merged"), commanded=True
    )
    assert answer.reason == "the pull request is merged: nothing more is run against it"


async def test_a_private_downstream_is_not_named_on_a_public_upstream(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, MEMBERS)
    await index(client, APP, upstream_of(LIB))
    await index(client, SECRET, upstream_of(LIB), private=True)
    await recorded_base(client, forge, {APP: "success", SECRET: "success"})
    forge.writers.add("libby")

    started = await open_pull(client)
    await report_status(client, started[APP].event_id, "success")
    await report_status(client, started[SECRET].event_id, "failure")
    await run_jobs(client)

    text = comment(forge)
    assert "secret" not in text
    assert "| 1 private project | 1 breaks |" in text
    assert premerge_reports(forge)[-1].state == "failure"  # it is required: acme's own
    answer = await runtime(client).engine.premerge(
        Change(LIB, 7, PR_URL, HEAD, BASE), retry=True, commanded=True
    )
    assert answer.downstreams == ("a private project",)


async def test_a_fork_or_a_non_writer_starts_nothing_by_itself(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, MEMBERS)
    await index(client, APP, upstream_of(LIB))
    forge.writers.update({"libby", "stranger"})

    await post_github(client, "pull_request", pull_request(author="stranger", fork=True))
    await post_github(client, "pull_request", pull_request(author="mallory"))
    await run_jobs(client)
    assert not forge.of("start_pipeline")

    engine = runtime(client).engine
    fork = Change(LIB, 7, PR_URL, HEAD, BASE, author="stranger", fork=True)
    refused = await engine.premerge(fork)
    assert refused.reason is not None and "fork" in refused.reason
    # a writer's command runs it
    assert (await engine.premerge(fork, commanded=True)).downstreams == (APP,)


async def test_when_command_runs_only_on_command_and_by_name(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, "owners: [libby]\n")
    await index(client, APP, upstream_of(LIB))
    await index(client, TOOL, upstream_of(LIB))
    await recorded_base(client, forge, {APP: "success", TOOL: "success"})
    forge.writers.add("libby")

    await post_github(client, "pull_request", pull_request())
    await run_jobs(client)
    assert not forge.of("start_pipeline")

    engine = runtime(client).engine
    change = Change(LIB, 7, PR_URL, HEAD, BASE, author="libby")
    forge.pulls[(LIB, 7)] = change
    # a writer's `/conjunction test tool` on the pull request, through the real engine
    asked = command_comment("acme/lib", 7, "/conjunction test tool", user="libby", pull=True)
    await post_github(client, "issue_comment", asked)
    await run_jobs(client)
    assert [request.project for _, request in forge.of("start_pipeline")] == [TOOL]
    assert forge.of("reply") == []  # started: the pre-merge report says the rest
    unknown = await engine.premerge(change, only=["nope"], commanded=True)
    assert unknown.reason == (
        "no downstream of github.com/acme/lib that runs against its changes is named nope"
    )
    [(_, tool)] = forge.of("start_pipeline")
    await report_status(client, tool.event_id, "failure")
    await run_jobs(client)

    # retry: the rows that did not pass
    again = await engine.premerge(change, retry=True, commanded=True)
    assert again.downstreams == (TOOL,)
    await run_jobs(client)
    [_, (_, rerun)] = forge.of("start_pipeline")
    await report_status(client, rerun.event_id, "success")
    await run_jobs(client)
    assert "| github.com/acme/tool | ✅ passes |" in comment(forge)
    nothing = await engine.premerge(change, retry=True, commanded=True)
    assert nothing.reason == "every row passed or is still running"


async def test_a_breaking_row_is_confirmed_when_the_downstream_asks(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, MEMBERS)
    await index(client, APP, "upstreams:\n  - project: github.com/acme/lib\n    confirm: true\n")
    await recorded_base(client, forge, {APP: "success"})
    forge.writers.add("libby")

    started = await open_pull(client)
    await report_status(client, started[APP].event_id, "failure")
    await run_jobs(client)
    [_, (_, again)] = forge.of("start_pipeline")
    assert (again.step, again.upstream_sha, again.kind) == ("confirm", HEAD, "premerge")
    assert premerge_reports(forge)[-1].state == "pending"

    await report_status(client, again.event_id, "success")
    await run_jobs(client)
    assert premerge_reports(forge)[-1].state == "success"
    assert "⚠️ flaky" in comment(forge)


async def test_a_downstream_that_does_not_consent_is_not_run(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(
        client, LIB, "owners: [libby]\npremerge: {when: members, downstreams: ['github.com/*']}\n"
    )
    await index(client, EXT, upstream_of(LIB))  # another owner: no consent by default
    await index(client, APP, "upstreams:\n  - project: github.com/acme/lib\n    premerge: false\n")
    forge.writers.add("libby")

    answer = await runtime(client).engine.premerge(
        Change(LIB, 7, PR_URL, HEAD, BASE, author="libby")
    )
    assert answer.reason is not None and answer.reason.startswith(
        "no downstream of github.com/acme/lib runs against its changes"
    )


# -- GitLab: the Merge Request Hook --

GL_LIB, GL_APP = "group/lib", "group/app"


def merge_request_hook(action: str = "open", *, head: str = HEAD) -> dict[str, Any]:
    """GitLab's documented Merge Request Hook example, pointed at group/lib's merge request 3
    (the example has no `diff_refs`; GitLab sends them, and the base is read from them)."""
    payload = copy.deepcopy(fixture("gitlab/merge_request_hook.json"))
    payload["project"]["path_with_namespace"] = GL_LIB
    request = payload["object_attributes"]
    request.update(
        iid=3,
        action=action,
        url=f"https://gitlab.com/{GL_LIB}/-/merge_requests/3",
        diff_refs={"base_sha": BASE, "head_sha": head, "start_sha": BASE},
    )
    request["last_commit"]["id"] = head
    return payload


async def test_a_gitlab_merge_request_is_run_against_its_downstreams(
    both: tuple[TestClient[Any, Any], MemoryHost],
    fake_gitlab: FakeGitLab,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, _ = both
    fake_gitlab.expect_index(GL_LIB, "premerge: {when: members}\n")
    fake_gitlab.expect_index(GL_APP, "upstreams:\n  - project: gitlab.com/group/lib\n")
    engine = runtime(client).engine
    for name in (GL_LIB, GL_APP):
        assert await engine.refresh_project(f"gitlab.com/{name}") is None
    # whether the author may write is the GitLab adapter's to say (members API); here: yes
    gitlab = engine.adapters.host(f"gitlab.com/{GL_LIB}")
    monkeypatch.setattr(gitlab, "can_write", lambda project, user: _yes())
    fake_gitlab.expect_pipeline(GL_APP, 61)
    fake_gitlab.expect_pipeline(GL_APP, 62)
    fake_gitlab.expect_status(GL_LIB, HEAD)

    assert (await post_gitlab(client, "Merge Request Hook", merge_request_hook())).status == 202
    await run_jobs(client)

    head, baseline = [
        {v["key"]: v["value"] for v in call.body["variables"]}
        for call in fake_gitlab.calls_to("POST", f"/projects/{encoded(GL_APP)}/pipeline")
    ]
    assert head["CONJUNCTION_UPSTREAM_SHA"] == HEAD
    assert head["CONJUNCTION_UPSTREAM_REF"] == "refs/merge-requests/3/head"
    assert head["CONJUNCTION_CHANGE"] == f"https://gitlab.com/{GL_LIB}/-/merge_requests/3"
    assert head["CONJUNCTION_KIND"] == "premerge" and "CONJUNCTION_STEP" not in head
    assert (baseline["CONJUNCTION_UPSTREAM_SHA"], baseline["CONJUNCTION_STEP"]) == (
        BASE,
        "baseline",
    )
    [running] = fake_gitlab.statuses(GL_LIB, HEAD)
    assert (running["name"], running["state"]) == ("conjunction/premerge", "running")

    # the head's pipeline fails, the base's passes: the merge request breaks app
    fake_gitlab.expect(
        "GET",
        f"/projects/{encoded(GL_LIB)}/repository/commits/{HEAD}/merge_requests",
        body=[{"iid": 3, "state": "opened"}],
    )
    fake_gitlab.expect("GET", f"/projects/{encoded(GL_LIB)}/merge_requests/3/notes", body=[])
    fake_gitlab.expect(
        "POST", f"/projects/{encoded(GL_LIB)}/merge_requests/3/notes", status=201, body={"id": 5}
    )
    fake_gitlab.expect_failure(
        GL_APP, 61, "$ pytest\nFAILED tests/test_app.py::test_dates - ValueError: 2026-13-01\n"
    )
    for pipeline_id, status, event in (
        (61, "failed", head["CONJUNCTION_EVENT"]),
        (62, "success", baseline["CONJUNCTION_EVENT"]),
    ):
        hook = pipeline_hook(
            GL_APP, "e" * 40, pipeline_id=pipeline_id, status=status, source="api", event=event
        )
        assert (await post_gitlab(client, "Pipeline Hook", hook)).status == 202
    await run_jobs(client)

    final = fake_gitlab.statuses(GL_LIB, HEAD)[-1]
    assert (final["name"], final["state"]) == ("conjunction/premerge", "failed")
    assert final["target_url"] == "https://conjunction.test/changes/gitlab.com/group/lib/3"
    [note] = fake_gitlab.calls_to("POST", f"/projects/{encoded(GL_LIB)}/merge_requests/3/notes")
    assert "| gitlab.com/group/app | ❌ breaks \\[test failure\\] |" in note.body["body"]
    assert (
        "<details><summary>test failure: the end of the failed job's log</summary>\n\n"
        "```text\n$ pytest\nFAILED tests/test_app.py::test_dates - ValueError: 2026-13-01\n```"
    ) in note.body["body"]

    # an update that is not a push (a title, a label) starts nothing
    assert (
        await post_gitlab(client, "Merge Request Hook", merge_request_hook("update"))
    ).status == 202
    await run_jobs(client)
    assert len(fake_gitlab.calls_to("POST", f"/projects/{encoded(GL_APP)}/pipeline")) == 2


async def _yes() -> bool:
    return True


async def test_the_change_page_the_project_page_and_the_event_json(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, MEMBERS)
    await index(client, APP, upstream_of(LIB))
    await index(client, SECRET, upstream_of(LIB), private=True)
    forge.writers.add("libby")
    await post_github(client, "pull_request", pull_request())
    await run_jobs(client)
    runs = {(p, r.step): r for p, r in forge.of("start_pipeline")}
    await report_status(client, runs[(APP, None)].event_id, "failure")
    await report_status(client, runs[(APP, "baseline")].event_id, "success")
    await run_jobs(client)

    page = await client.get("/changes/github.com/acme/lib/7", headers={"Accept": "text/html"})
    assert page.status == 200
    html = await page.text()
    assert "github.com/acme/app" in html and ">breaks<" in html
    assert "on the base commit" in html and "secret" not in html
    assert "a private project" in html
    admin = await client.get(
        "/changes/github.com/acme/lib/7", headers={"Authorization": "Bearer admin-token"}
    )
    assert "github.com/acme/secret" in await admin.text()
    assert (await client.get("/changes/github.com/acme/lib/8")).status == 404

    project = await (await client.get("/projects/github.com/acme/lib")).text()
    assert 'href="/changes/github.com/acme/lib/7"' in project

    trace = await (await client.get(f"/api/v1/events/{runs[(APP, 'baseline')].event_id}")).json()
    assert trace["sent"] == {"kind": "premerge", "step": "baseline", "change": PR_URL}
    assert trace["change_request"]["number"] == 7
    event_page = await client.get(f"/events/{runs[(APP, 'baseline')].event_id}")
    assert "<code>step: baseline</code>" in await event_page.text()

    # closed: the change leaves the project page's list
    await post_github(client, "pull_request", pull_request("closed"))
    await run_jobs(client)
    project = await (await client.get("/projects/github.com/acme/lib")).text()
    assert 'href="/changes/github.com/acme/lib/7"' not in project


# -- the GitHub App: what GitHub receives --


async def test_through_the_github_app_a_command_runs_the_change_and_the_pull_request_shows_it(
    github: tuple[TestClient[Any, Any], FakeGitHub],
) -> None:
    client, gh = github
    head = HEAD
    # lib says `when: command` (its default): the pull request alone starts nothing
    assert (await post_github(client, "pull_request", pull_request())).status == 202
    await run_jobs(client)
    assert not gh.calls_to("POST", "/repos/acme/app/actions/workflows/")

    gh.expect(
        "GET",
        "/repos/acme/app/contents/.github/workflows/conjunction.yml?ref=main",
        body=contents(
            "on:\n  workflow_dispatch:\n    inputs:\n"
            + "".join(
                f"      {name}: {{required: false}}\n"
                for name in (
                    "conjunction_event",
                    "upstream",
                    "upstream_sha",
                    "upstream_ref",
                    "conjunction_change",
                    "conjunction_kind",
                    "conjunction_step",
                )
            )
        ),
    )
    expect_dispatch(gh, 99)
    expect_dispatch(gh, 98)
    gh.expect("POST", f"/repos/acme/lib/statuses/{head}", body={}, repeat=True)
    gh.expect("GET", f"/repos/acme/lib/commits/{head}/check-runs", body={"check_runs": []})
    gh.expect("POST", "/repos/acme/lib/check-runs", body={"id": 8})
    gh.expect("PATCH", "/repos/acme/lib/check-runs/8", body={}, repeat=True)
    change = Change("github.com/acme/lib", 7, PR_URL, head, BASE, author="libby")
    started = await runtime(client).engine.premerge(change, commanded=True)
    assert started.downstreams == ("github.com/acme/app",)
    await run_jobs(client)

    first, baseline = (
        call.body["inputs"] for call in gh.calls_to("POST", "/repos/acme/app/actions/workflows/")
    )
    assert first == {
        "conjunction_event": first["conjunction_event"],
        "upstream": "github.com/acme/lib",
        "upstream_sha": head,
        "upstream_ref": "refs/pull/7/head",
        "conjunction_change": PR_URL,
        "conjunction_kind": "premerge",
    }
    assert (baseline["upstream_sha"], baseline["upstream_ref"]) == (BASE, "main")
    assert baseline["conjunction_step"] == "baseline"
    [created] = gh.calls_to("POST", "/repos/acme/lib/check-runs")
    assert (created.body["name"], created.body["head_sha"], created.body["status"]) == (
        "Conjunction: downstream (pre-merge)",
        head,
        "in_progress",
    )
    pending = gh.calls_to("POST", f"/repos/acme/lib/statuses/{head}")[-1].body
    assert (pending["context"], pending["state"]) == ("conjunction/premerge", "pending")

    # app fails with the change and passes on the base: the pull request learns it breaks app
    gh.expect("GET", f"/repos/acme/lib/commits/{head}/pulls", body=[{"number": 7}])
    gh.expect("GET", "/repos/acme/lib/issues/7/comments", body=[])
    gh.expect("POST", "/repos/acme/lib/issues/7/comments", body={"id": 1})
    for run_id, conclusion in ((99, "failure"), (98, "success")):
        done = workflow_run(
            "acme/app", "a" * 40, run_id=run_id, conclusion=conclusion, event="workflow_dispatch"
        )
        await post_github(client, "workflow_run", done)
    await run_jobs(client)

    final = gh.calls_to("POST", f"/repos/acme/lib/statuses/{head}")[-1].body
    assert (final["state"], final["description"]) == (
        "failure",
        "0 of 1 downstream projects pass with this change, 1 breaks",
    )
    assert final["target_url"] == "https://conjunction.test/changes/github.com/acme/lib/7"
    check = gh.calls_to("PATCH", "/repos/acme/lib/check-runs/8")[-1].body
    assert (check["status"], check["conclusion"]) == ("completed", "failure")
    [comment] = gh.calls_to("POST", "/repos/acme/lib/issues/7/comments")
    assert comment.body["body"].startswith("<!-- conjunction:premerge -->")
    assert (
        "| github.com/acme/app | ❌ breaks | [run](https://github.com/acme/app/actions/runs/99) "
        "| [run](https://github.com/acme/app/actions/runs/98) |" in comment.body["body"]
    )
    # the merged-commit report, issues and labels are never touched
    assert not gh.calls_to("GET", "/repos/acme/app/labels")
    assert not [
        call
        for call in gh.calls_to("POST", "/repos/acme/lib/statuses/")
        if call.body["context"] != "conjunction/premerge"
    ]
