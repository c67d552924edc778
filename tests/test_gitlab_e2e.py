"""Across forges, end to end through HTTP: signed GitHub webhooks and GitLab webhooks with the
token in, the calls GitLab receives (the fake GitLab) and what the GitHub side shows (the
in-memory code host) out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from conjunction.models import Event, utcnow
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.fakegitlab import (
    FakeGitLab,
    encoded,
    job,
    pipeline_hook,
    post_gitlab,
)
from tests.test_pages import Page

APP = "group/sub/app"  # a nested group
SHAS = ["1" * 40, "2" * 40, "3" * 40]
MARKER = "<!-- conjunction:downstream-summary -->"
# a failed job's trace as GitLab serves it: colours, sections, a secret the job echoed
TRACE = (
    "\x1b[0KRunning with gitlab-runner 17.5.0\n"
    "section_start:1733565600:step_script\r\x1b[0K\x1b[36;1mExecuting step_script\x1b[0;m\n"
    "$ cargo build\n"
    "\x1b[1m\x1b[38;5;9merror[E0425]\x1b[0m: cannot find value `x` in this scope\n"
    " --> src/main.rs:2:5\n"
    "section_end:1733565660:step_script\r\x1b[0K\n"
    "\x1b[31;1mERROR: Job failed: exit code 101\n\x1b[0;m\n"
)


async def index(client: TestClient[Any, Any], *names: str) -> None:
    for name in names:
        assert await runtime(client).engine.refresh_project(name) is None


async def trigger_event(client: TestClient[Any, Any], project: str) -> Event:
    [event] = await runtime(client).engine.pending_triggers(project)
    return event


async def test_github_upstream_gitlab_downstream(
    both: tuple[TestClient[Any, Any], MemoryHost], fake_gitlab: FakeGitLab
) -> None:
    client, github = both
    github.files[("github.com/acme/lib", ".conjunction.yml")] = "owners: [libby]\n"
    fake_gitlab.expect_index(
        APP,
        "upstreams:\n  - project: github.com/acme/lib\n",
        codeowners={".gitlab/CODEOWNERS": "* @alice @group/sub/team\n"},
    )
    await index(client, "github.com/acme/lib", f"gitlab.com/{APP}")

    # a GitHub success creates the GitLab pipeline, with the contract's variables
    for run in range(61, 61 + len(SHAS)):
        fake_gitlab.expect_pipeline(APP, run)
    assert (
        await post_github(client, "workflow_run", workflow_run("acme/lib", SHAS[0]))
    ).status == 202
    await run_jobs(client)
    [created] = fake_gitlab.calls_to("POST", f"/projects/{encoded(APP)}/pipeline")
    event = await trigger_event(client, f"gitlab.com/{APP}")
    variables = {item["key"]: item["value"] for item in created.body["variables"]}
    assert created.body["ref"] == "main"
    assert variables == {
        "CONJUNCTION_EVENT": event.id,
        "CONJUNCTION_UPSTREAM": "github.com/acme/lib",
        "CONJUNCTION_UPSTREAM_SHA": SHAS[0],
        "CONJUNCTION_UPSTREAM_REF": "main",
        "CONJUNCTION_CALLBACK_URL": f"https://conjunction.test/api/v1/events/{event.id}/status",
    }
    _, (_, pending) = github.of("status")[-1]
    assert pending.description == "0 of 1 downstream projects passed, 1 running"

    # GitLab's pipeline hook for that pipeline is the result, shown on the GitHub commit
    done = pipeline_hook(APP, "a" * 40, pipeline_id=61, source="api", event=event.id)
    assert (await post_gitlab(client, "Pipeline Hook", done)).status == 202
    await run_jobs(client)
    _, (sha, passed) = github.of("status")[-1]
    assert (sha, passed.state, passed.description) == (
        SHAS[0],
        "success",
        "1 of 1 downstream projects passed",
    )
    _, (_, summary) = github.of("check")[-1]
    assert "| gitlab.com/group/sub/app | ✅ passed |" in summary.summary
    assert "(https://gitlab.com/group/sub/app/-/pipelines/61)" in summary.summary
    assert "`alice`, `group/sub/team`" in summary.summary

    # a breakage opens an issue in the GitLab project, mentioning its owners and naming the
    # GitHub upstream's owners with a link (on GitLab, @libby is someone else)
    fake_gitlab.expect(
        "GET", f"/projects/{encoded(APP)}/issues", query={"state": "opened"}, body=[]
    )
    fake_gitlab.expect("POST", f"/projects/{encoded(APP)}/labels", status=201, body={"id": 1})
    fake_gitlab.expect(
        "POST",
        f"/projects/{encoded(APP)}/issues",
        status=201,
        body={"iid": 12, "web_url": f"https://gitlab.com/{APP}/-/issues/12"},
    )
    # what changed downstream since it last passed is asked of GitLab
    fake_gitlab.expect("GET", f"/projects/{encoded(APP)}/repository/compare", repeat=True, body={})
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHAS[1], run_id=2))
    await run_jobs(client)
    event = await trigger_event(client, f"gitlab.com/{APP}")
    # why it failed: the failed job's trace, its tail in the issue and the check run
    fake_gitlab.expect_failure(APP, 62, TRACE)
    failed = pipeline_hook(APP, "b" * 40, pipeline_id=62, status="failed", event=event.id)
    await post_gitlab(client, "Pipeline Hook", failed)
    await run_jobs(client)
    [issue] = fake_gitlab.calls_to("POST", f"/projects/{encoded(APP)}/issues")
    assert issue.body["labels"] == "conjunction"
    assert (
        "Why it failed (**build error**), from the end of the failed job's log:\n\n"
        "```text\nRunning with gitlab-runner 17.5.0\nExecuting step_script\n$ cargo build\n"
        "error[E0425]: cannot find value `x` in this scope\n --> src/main.rs:2:5\n```\n\n"
        f"[the whole log](https://gitlab.com/{APP}/-/jobs/900)" in issue.body["description"]
    )
    _, (_, report) = github.of("check")[-1]
    assert "| ❌ new regression (optional) `build error` |" in report.summary
    assert "<details><summary>build error: the end of the failed job's log</summary>" in (
        report.summary
    )
    assert "Downstream owners: @alice @group/sub/team" in issue.body["description"]
    assert (
        "Upstream owners: [libby on GitHub](https://github.com/libby)"
        in (issue.body["description"])
    )
    _, (_, broken) = github.of("status")[-1]
    assert broken.description == (
        "0 of 1 downstream projects passed, 1 new regression; none blamed on this commit"
    )

    # the next pass closes it
    fake_gitlab.expect(
        "POST", f"/projects/{encoded(APP)}/issues/12/notes", status=201, body={"id": 3}
    )
    fake_gitlab.expect("PUT", f"/projects/{encoded(APP)}/issues/12", body={"iid": 12})
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHAS[2], run_id=3))
    await run_jobs(client)
    event = await trigger_event(client, f"gitlab.com/{APP}")
    await post_gitlab(client, "Pipeline Hook", pipeline_hook(APP, "c" * 40, pipeline_id=63))
    await run_jobs(client)
    [closed] = fake_gitlab.calls_to("PUT", f"/projects/{encoded(APP)}/issues/12")
    assert closed.body == {"state_event": "close"}
    assert (await runtime(client).engine.get_event(event.id)).result == "success"  # type: ignore[union-attr]


async def test_gitlab_upstream_github_downstream(
    both: tuple[TestClient[Any, Any], MemoryHost], fake_gitlab: FakeGitLab
) -> None:
    client, github = both
    lib, sha = "acme/lib", SHAS[0]
    fake_gitlab.expect_index(lib, None, codeowners={"CODEOWNERS": "* @libby\n"})
    github.files[("github.com/acme/app", ".conjunction.yml")] = (
        "upstreams:\n  - project: gitlab.com/acme/lib\n"
    )
    await index(client, f"gitlab.com/{lib}", "github.com/acme/app")
    project = f"/projects/{encoded(lib)}"
    fake_gitlab.expect_status(lib, sha)
    fake_gitlab.expect(
        "GET",
        f"{project}/repository/commits/{sha}/merge_requests",
        body=[{"iid": 3, "state": "merged"}],
        repeat=True,
    )
    # the merge request hears once, of the complete result
    fake_gitlab.expect("GET", f"{project}/merge_requests/3/notes", body=[])
    fake_gitlab.expect("POST", f"{project}/merge_requests/3/notes", status=201, body={"id": 5})

    # a GitLab push pipeline's success starts the GitHub downstream, with its job artifacts
    fake_gitlab.expect_jobs(lib, 900, [job(31, "wheel"), job(32, "test", None)])
    hook = pipeline_hook(lib, sha, pipeline_id=900, source="push")
    assert (await post_gitlab(client, "Pipeline Hook", hook)).status == 202
    await run_jobs(client)
    [(name, request)] = github.of("start_pipeline")
    assert (name, request.upstream, request.upstream_sha, request.upstream_ref) == (
        "github.com/acme/app",
        "gitlab.com/acme/lib",
        sha,
        "main",
    )
    [wheel] = request.artifacts
    assert (wheel["name"], wheel["url"], wheel["job_id"]) == (
        "wheel",
        "https://gitlab.com/acme/lib/-/jobs/31/artifacts/download",
        31,
    )
    page = Page(await (await client.get(f"/events/{request.event_id}")).text())
    assert "Upstream artifacts" in page.text and wheel["url"] in page.links
    running = fake_gitlab.statuses(lib, sha)[-1]
    assert running["state"] == "running"
    assert running["name"] == "conjunction/downstream"
    assert running["description"] == "0 of 1 downstream projects passed, 1 running"
    assert running["target_url"].startswith("https://conjunction.test/events/")

    # the GitHub run's result comes back to the GitLab commit and merge request
    done = workflow_run("acme/app", "d" * 40, run_id=1, event="workflow_dispatch")
    await post_github(client, "workflow_run", done)
    await run_jobs(client)
    final = fake_gitlab.statuses(lib, sha)[-1]
    assert (final["state"], final["description"]) == (
        "success",
        "1 of 1 downstream projects passed",
    )
    [note] = fake_gitlab.calls_to("POST", f"{project}/merge_requests/3/notes")
    assert note.body["body"].startswith(MARKER)
    assert "| github.com/acme/app | ✅ passed |" in note.body["body"]


async def test_refused_pipeline_creation_is_the_reason_on_the_row(
    both: tuple[TestClient[Any, Any], MemoryHost], fake_gitlab: FakeGitLab
) -> None:
    client, github = both
    fake_gitlab.expect_index(APP, "upstreams:\n  - project: github.com/acme/lib\n")
    await index(client, "github.com/acme/lib", f"gitlab.com/{APP}")
    fake_gitlab.expect_pipeline(APP, 1, status=403, body={"message": "403 Forbidden"})

    await post_github(client, "workflow_run", workflow_run("acme/lib", SHAS[0]))
    await run_jobs(client)

    _, (_, report) = github.of("check")[-1]
    assert (
        "❌ error (optional): the GitLab bot account may not create pipelines in group/sub/app"
        in (report.summary)
    )
    assert "it needs the Developer role there" in report.summary
    assert await runtime(client).engine.pending_triggers(f"gitlab.com/{APP}") == []


async def test_an_unrelated_pipeline_leaves_the_trigger_waiting(
    both: tuple[TestClient[Any, Any], MemoryHost], fake_gitlab: FakeGitLab
) -> None:
    client, github = both
    fake_gitlab.expect_index(APP, "upstreams:\n  - project: github.com/acme/lib\n")
    await index(client, "github.com/acme/lib", f"gitlab.com/{APP}")
    fake_gitlab.expect_pipeline(APP, 61)
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHAS[0]))
    await run_jobs(client)
    reports = len(github.calls)

    # someone's push pipeline and merge-request pipeline, and ours still running
    for hook in (
        pipeline_hook(APP, "f" * 40, pipeline_id=70, source="push", status="failed"),
        pipeline_hook(APP, "f" * 40, pipeline_id=71, source="merge_request_event"),
        pipeline_hook(APP, "f" * 40, pipeline_id=61, source="api", status="running"),
    ):
        assert (await post_gitlab(client, "Pipeline Hook", hook)).status == 202
    await run_jobs(client)

    event = await trigger_event(client, f"gitlab.com/{APP}")
    assert (event.result, event.run_id) == (None, "61")
    assert len(github.calls) == reports  # nothing new shown upstream


async def test_a_private_gitlab_downstream_is_never_named_on_a_public_upstream(
    both: tuple[TestClient[Any, Any], MemoryHost], fake_gitlab: FakeGitLab
) -> None:
    client, github = both
    fake_gitlab.expect_index(
        "acme/secret", "upstreams:\n  - project: github.com/acme/lib\n", visibility="private"
    )
    await index(client, "github.com/acme/lib", "gitlab.com/acme/secret")
    fake_gitlab.expect_pipeline("acme/secret", 5)
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHAS[0]))
    await run_jobs(client)
    event = await trigger_event(client, "gitlab.com/acme/secret")
    hook = pipeline_hook("acme/secret", "a" * 40, pipeline_id=5, source="api", event=event.id)
    await post_gitlab(client, "Pipeline Hook", hook)
    await run_jobs(client)

    shown = [repr(details) for _, details in github.of("check") + github.of("comment_on_change")]
    assert shown and not any("secret" in text for text in shown)
    _, (_, report) = github.of("check")[-1]
    assert "| 1 private project | 1 ✅ passed |" in report.summary


async def test_a_pipeline_of_an_unknown_project_starts_nothing(
    both: tuple[TestClient[Any, Any], MemoryHost], fake_gitlab: FakeGitLab
) -> None:
    client, github = both
    hook = pipeline_hook("someone/else", "a" * 40, pipeline_id=3)
    assert (await post_gitlab(client, "Pipeline Hook", hook)).status == 202
    await run_jobs(client)
    assert github.calls == [] and fake_gitlab.calls == []


async def test_a_result_after_the_time_out_replaces_it_and_starts_nothing_new(
    both: tuple[TestClient[Any, Any], MemoryHost], fake_gitlab: FakeGitLab
) -> None:
    client, github = both
    fake_gitlab.expect_index(APP, "upstreams:\n  - project: github.com/acme/lib\n")
    await index(client, "github.com/acme/lib", f"gitlab.com/{APP}")
    fake_gitlab.expect_pipeline(APP, 61)
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHAS[0]))
    await run_jobs(client)
    engine = runtime(client).engine
    event = await trigger_event(client, f"gitlab.com/{APP}")
    async with engine.sessions.begin() as session:
        stored = await session.get(Event, event.id)
        assert stored is not None
        stored.deadline_at = utcnow() - timedelta(seconds=1)
    assert await engine.expire_overdue() == 1

    late = pipeline_hook(APP, "a" * 40, pipeline_id=61, source="api", event=event.id)
    await post_gitlab(client, "Pipeline Hook", late)
    await run_jobs(client)

    recorded = await engine.get_event(event.id)
    assert recorded is not None and recorded.result == "success"
    async with engine.sessions() as session:
        builds = await session.scalar(
            select(func.count()).select_from(Event).where(Event.kind == "build")
        )
    assert builds == 1  # the upstream's; the late pipeline is no success of its own
    _, (_, final) = github.of("status")[-1]
    assert final.description == "1 of 1 downstream projects passed"


async def test_owners_are_mentioned_on_their_own_forge_and_linked_on_the_other(
    both: tuple[TestClient[Any, Any], MemoryHost], fake_gitlab: FakeGitLab
) -> None:
    """A GitLab upstream that opted in to issues and a GitHub downstream: the issue in each
    repository mentions its own side's owners and links to the other side's."""
    client, github = both
    lib, project = "acme/lib", f"/projects/{encoded('acme/lib')}"
    fake_gitlab.expect_index(
        lib,
        "owners: [libby, acme/core]\n"
        "report:\n  issues: true\n  required: ['github.com/acme/*']\n"
        "  commit_status: false\n  pull_request_comment: false\n",
    )
    github.files[("github.com/acme/app", ".conjunction.yml")] = (
        "owners: [alice, acme/app-team]\nupstreams:\n  - project: gitlab.com/acme/lib\n"
    )
    await index(client, f"gitlab.com/{lib}", "github.com/acme/app")
    fake_gitlab.expect_jobs(lib, 900, [])
    fake_gitlab.expect_jobs(lib, 901, [])
    fake_gitlab.expect("GET", f"{project}/repository/compare", repeat=True, body={})
    fake_gitlab.expect("GET", f"{project}/issues", query={"state": "opened"}, body=[])
    fake_gitlab.expect("POST", f"{project}/labels", status=201, body={"id": 1})
    fake_gitlab.expect(
        "POST",
        f"{project}/issues",
        status=201,
        body={"iid": 4, "web_url": f"https://gitlab.com/{lib}/-/issues/4"},
    )

    for run, (pipeline, sha, conclusion) in enumerate(
        ((900, SHAS[0], "success"), (901, SHAS[1], "failure")), start=1
    ):
        await post_gitlab(client, "Pipeline Hook", pipeline_hook(lib, sha, pipeline_id=pipeline))
        await run_jobs(client)
        done = workflow_run(
            "acme/app", "d" * 40, conclusion=conclusion, run_id=run, event="workflow_dispatch"
        )
        await post_github(client, "workflow_run", done)
        await run_jobs(client)

    [on_github] = github.issues.values()
    assert "Downstream owners: @alice @acme/app-team" in on_github["body"]
    assert (
        "Upstream owners: [libby on GitLab](https://gitlab.com/libby) "
        "[acme/core on GitLab](https://gitlab.com/acme/core)"
    ) in on_github["body"]
    [on_gitlab] = fake_gitlab.calls_to("POST", f"{project}/issues")
    assert (
        "Downstream owners: [alice on GitHub](https://github.com/alice) "
        "[acme/app-team on GitHub](https://github.com/acme/app-team)"
    ) in on_gitlab.body["description"]
    assert "Upstream owners: @libby @acme/core" in on_gitlab.body["description"]


async def test_a_culprit_search_of_a_gitlab_upstream_with_a_github_downstream(
    both: tuple[TestClient[Any, Any], MemoryHost], fake_gitlab: FakeGitLab
) -> None:
    """The range comes from GitLab's compare; the steps run on GitHub; the answer names the
    culprit's author as GitLab does (a name, no account to mention on GitHub)."""
    client, github = both
    lib, app = "acme/lib", "github.com/acme/app"
    commits = [f"{n:02x}" + "e" * 38 for n in range(6)]
    fake_gitlab.expect_index(lib, None, codeowners={"CODEOWNERS": "* @libby\n"})
    github.files[(app, ".conjunction.yml")] = (
        "upstreams:\n  - project: gitlab.com/acme/lib\n    bisect: true\n"
    )
    await index(client, f"gitlab.com/{lib}", app)
    project = f"/projects/{encoded(lib)}"
    for sha in (commits[0], commits[-1]):
        fake_gitlab.expect_status(lib, sha)
        fake_gitlab.expect(
            "GET", f"{project}/repository/commits/{sha}/merge_requests", body=[], repeat=True
        )
    fake_gitlab.expect(
        "GET",
        f"{project}/repository/compare",
        query={"from": commits[0], "to": commits[-1]},
        body={
            "commits": [
                {
                    "id": sha,
                    "title": f"Change {n}",
                    "author_name": "Ada Lovelace",
                    "web_url": f"https://gitlab.com/{lib}/-/commit/{sha}",
                }
                for n, sha in enumerate(commits[1:], 1)
            ],
            "diffs": [],
        },
        repeat=True,
    )

    async def result(event_id: str, outcome: str) -> None:
        token = runtime(client).engine.signer.token(event_id)
        answer = await client.post(
            f"/api/v1/events/{event_id}/status",
            json={"result": outcome},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status == 202
        await run_jobs(client)

    for pipeline, (sha, outcome) in enumerate(
        [(commits[0], "success"), (commits[-1], "failure")], 900
    ):
        fake_gitlab.expect_jobs(lib, pipeline, [])
        hook = pipeline_hook(lib, sha, pipeline_id=pipeline, source="push")
        assert (await post_gitlab(client, "Pipeline Hook", hook)).status == 202
        await run_jobs(client)
        _, request = github.of("start_pipeline")[-1]
        await result(request.event_id, outcome)

    # 5 commits: ⌈log2 5⌉ = 3 runs at most
    while True:
        _, request = github.of("start_pipeline")[-1]
        async with runtime(client).sessions() as session:
            step = await session.get(Event, request.event_id)
        if step is None or step.step != "bisect" or step.result is not None:
            break
        assert request.upstream == "gitlab.com/acme/lib"
        await result(
            request.event_id, "failure" if commits.index(request.upstream_sha) >= 4 else "success"
        )
    steps = [r.upstream_sha for _, r in github.of("start_pipeline")[2:]]
    assert steps == [commits[2], commits[3], commits[4]]
    [issue] = github.issues.values()
    [comment] = issue["comments"]
    assert (
        f"first fails against [`{commits[4][:7]}`](https://gitlab.com/{lib}/-/commit/{commits[4]}) "
        "Change 4 by Ada Lovelace"
    ) in comment
    final = fake_gitlab.statuses(lib, commits[-1])[-1]
    # another owner's downstream is optional: shown, not failing the GitLab commit
    assert (final["state"], final["description"]) == (
        "success",
        "0 of 1 downstream projects passed, 1 new regression; none blamed on this commit",
    )
