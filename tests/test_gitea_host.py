"""GiteaHost against the fake Gitea: the calls the client really makes, their bodies, and what
the engine gets back — for Gitea and for Forgejo where their answers differ."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from conjunction.codehost import CommentRef, CommitReport
from conjunction.config.repo_config import ConfigError, ConfigProblem, Trigger
from conjunction.excerpts import FailureText, Source
from conjunction.runner import TriggerError, TriggerRequest
from tests.fakegitea import ACTIONS_LOG, FakeGitea, gitea_host, repo_path

LIB = "acme/lib"
NAME = f"codeberg.org/{LIB}"
REPO = repo_path(LIB)
SHA = "a" * 40
MARKER = "<!-- conjunction:downstream-summary -->"
EVENT = "e" * 32


def request(**values: Any) -> TriggerRequest:
    fields: dict[str, Any] = {
        "event_id": EVENT,
        "project": NAME,
        "upstream": "github.com/acme/core",
        "upstream_sha": SHA,
        "upstream_ref": "main",
        "upstream_url": None,
        "callback_url": f"https://conjunction.test/api/v1/events/{EVENT}/status",
        "callback_token": "token",
        "trigger": Trigger(workflow="downstream.yml"),
        "default_branch": "main",
    }
    return TriggerRequest(**(fields | values))


def report(state: str = "pending", description: str = "0 of 1 downstream projects passed") -> Any:
    return CommitReport(
        state=state,  # type: ignore[arg-type]
        conclusion=None if state == "pending" else "success",
        description=description,
        target_url="https://conjunction.test/events/1",
        title=description,
        summary="table",
    )


def commit(sha: str, message: str, login: str | None, files: list[str]) -> dict[str, Any]:
    """A commit as Gitea's compare lists it."""
    return {
        "sha": sha,
        "html_url": f"https://codeberg.org/{LIB}/commit/{sha}",
        "commit": {"message": message, "author": {"name": "Someone", "email": "s@example.com"}},
        "author": {"login": login} if login else None,
        "files": [{"filename": name, "status": "modified"} for name in files],
    }


async def test_repository_files_and_visibility(fake_gitea: FakeGitea) -> None:
    fake_gitea.expect_repo(LIB, default_branch="trunk", private=True)
    fake_gitea.expect_file(LIB, ".gitea/CODEOWNERS", "* @acme/core\n", ref="trunk")
    fake_gitea.expect_file(LIB, "docs/CODEOWNERS", None, ref=None)
    host = gitea_host(fake_gitea)

    info = await host.project_info(NAME)
    assert (info.default_branch, info.private) == ("trunk", True)
    assert await host.read_file(NAME, ".gitea/CODEOWNERS", "trunk") == "* @acme/core\n"
    assert await host.read_file(NAME, "docs/CODEOWNERS") is None
    assert [call.path for call in fake_gitea.calls] == [
        "/repos/acme/lib",
        "/repos/acme/lib/raw/.gitea/CODEOWNERS",
        "/repos/acme/lib/raw/docs/CODEOWNERS",
    ]
    assert fake_gitea.calls[0].headers["authorization"] == "token gitea-bot-token-for-tests"


async def test_changed_files_and_commits_come_from_the_compare(fake_gitea: FakeGitea) -> None:
    compared = {
        "total_commits": 2,
        "commits": [  # newest first, as Gitea lists them
            commit("2" * 40, "Second\n\nbody", None, ["src/b.py"]),
            commit("1" * 40, "First", "alice", ["src/a.py", "README.md"]),
        ],
    }
    path = f"{REPO}/compare/{'0' * 40}...{'2' * 40}"
    fake_gitea.expect("GET", path, query={"files": "true"}, body=compared)
    fake_gitea.expect("GET", path, query={"files": "false"}, body=compared, times=2)
    fake_gitea.expect("GET", path, query={"files": "false"}, body={**compared, "total_commits": 3})
    host = gitea_host(fake_gitea)

    assert await host.changed_files(NAME, "0" * 40, "2" * 40) == [
        "README.md",
        "src/a.py",
        "src/b.py",
    ]
    commits = await host.commits_between(NAME, "0" * 40, "2" * 40)
    assert commits is not None and commits.total == 2
    assert [(c.sha[0], c.title, c.author) for c in commits.commits] == [
        ("1", "First", "alice"),
        ("2", "Second", "Someone"),
    ]
    assert commits.url == f"https://codeberg.org/{LIB}/compare/{'0' * 40}...{'2' * 40}"
    # a culprit search's range: every commit, oldest first, the author's account where known
    every = await host.commit_list(NAME, "0" * 40, "2" * 40)
    assert every is not None
    assert [(c.sha[0], c.login) for c in every] == [("1", "alice"), ("2", None)]
    assert await host.commit_list(NAME, "0" * 40, "2" * 40) is None, "fewer listed than counted"
    assert host.profile_url("alice") == "https://codeberg.org/alice"
    assert host.profile_url("acme/core") == "https://codeberg.org/org/acme/teams/core"


async def test_the_report_is_a_commit_status(fake_gitea: FakeGitea) -> None:
    fake_gitea.expect_status(LIB, SHA)
    host = gitea_host(fake_gitea)
    await host.publish_report(NAME, SHA, report(), status=True, check=True)
    await host.publish_report(NAME, SHA, report("success", "x " * 200), status=True, check=True)
    await host.publish_report(NAME, SHA, report(), status=False, check=True)

    first, second = fake_gitea.statuses(LIB, SHA)
    assert first == {
        "state": "pending",
        "context": "conjunction/downstream",
        "description": "0 of 1 downstream projects passed",
        "target_url": "https://conjunction.test/events/1",
    }
    assert second["state"] == "success" and len(second["description"]) <= 255


async def test_an_invalid_config_is_a_failed_status_linked_to_its_line(
    fake_gitea: FakeGitea,
) -> None:
    fake_gitea.expect_status(LIB, SHA)
    error = ConfigError([ConfigProblem(3, "upstream", "unknown key")])
    await gitea_host(fake_gitea).report_config(NAME, SHA, error)
    [status] = fake_gitea.statuses(LIB, SHA)
    assert status["context"] == "conjunction/config" and status["state"] == "failure"
    assert status["target_url"] == (
        f"https://codeberg.org/{LIB}/src/commit/{SHA}/.conjunction.yml#L3"
    )


async def test_the_pull_request_comment_is_edited_in_place(fake_gitea: FakeGitea) -> None:
    fake_gitea.expect("GET", f"{REPO}/commits/{SHA}/pull", body={"number": 5}, times=2)
    fake_gitea.expect("GET", f"{REPO}/issues/5/comments", body=[{"id": 1, "body": "LGTM"}])
    fake_gitea.expect("POST", f"{REPO}/issues/5/comments", status=201, body={"id": 9})
    fake_gitea.expect(
        "GET", f"{REPO}/issues/5/comments", body=[{"id": 9, "body": f"{MARKER}\nold"}]
    )
    fake_gitea.expect("PATCH", f"{REPO}/issues/comments/9", body={"id": 9})
    host = gitea_host(fake_gitea)

    await host.comment_on_change(NAME, SHA, MARKER, "first")
    await host.comment_on_change(NAME, SHA, MARKER, "second")
    [posted] = fake_gitea.calls_to("POST", f"{REPO}/issues/5/comments")
    assert posted.body == {"body": f"{MARKER}\nfirst"}
    [edited] = fake_gitea.calls_to("PATCH", f"{REPO}/issues/comments/9")
    assert edited.body == {"body": f"{MARKER}\nsecond"}


async def test_a_commit_without_a_pull_request_gets_no_comment(fake_gitea: FakeGitea) -> None:
    """Neither merged through a pull request nor the head of an open one."""
    fake_gitea.expect("GET", f"{REPO}/commits/{SHA}/pull", status=404, body={"message": "nope"})
    fake_gitea.expect(
        "GET",
        f"{REPO}/pulls",
        query={"state": "open"},
        body=[{"number": 2, "head": {"sha": "f" * 40}}],
    )
    await gitea_host(fake_gitea).comment_on_change(NAME, SHA, MARKER, "text")


async def test_breakage_issue_life_cycle(fake_gitea: FakeGitea) -> None:
    fake_gitea.expect(
        "GET",
        f"{REPO}/issues",
        query={"state": "open", "type": "issues", "labels": "conjunction"},
        body=[{"number": 2, "body": "someone else's", "html_url": "x"}],
    )
    fake_gitea.expect("GET", f"{REPO}/labels", body=[{"id": 4, "name": "bug"}])
    fake_gitea.expect("POST", f"{REPO}/labels", status=201, body={"id": 8, "name": "conjunction"})
    fake_gitea.expect(
        "POST",
        f"{REPO}/issues",
        status=201,
        body={"number": 3, "html_url": f"https://codeberg.org/{LIB}/issues/3"},
        times=2,
    )
    fake_gitea.expect("POST", f"{REPO}/issues/3/comments", status=201, body={"id": 1}, times=2)
    fake_gitea.expect("PATCH", f"{REPO}/issues/3", status=201, body={"number": 3})
    host = gitea_host(fake_gitea)

    assert await host.find_issue(NAME, "<!-- marker -->") is None
    issue = await host.open_issue(NAME, "It broke", "<!-- marker -->\n@alice", ["conjunction"])
    assert (issue.number, issue.url) == (3, f"https://codeberg.org/{LIB}/issues/3")
    await host.open_issue(NAME, "Again", "body", ["conjunction"])  # the label id is kept
    await host.comment_issue(NAME, 3, "still failing")
    await host.close_issue(NAME, 3, "fixed")

    [label] = fake_gitea.calls_to("POST", f"{REPO}/labels")
    assert label.body == {
        "name": "conjunction",
        "color": "#d93f0b",
        "description": "A downstream project broke against an upstream change",
    }
    opened = fake_gitea.calls_to("POST", f"{REPO}/issues")
    assert opened[0].body == {
        "title": "It broke",
        "body": "<!-- marker -->\n@alice",
        "labels": [8],
    }
    [closed] = fake_gitea.calls_to("PATCH", f"{REPO}/issues/3")
    assert closed.body == {"state": "closed"}


@pytest.mark.parametrize(
    ("status", "answer", "run_id", "url"),
    [
        (204, None, None, f"https://codeberg.org/{LIB}/actions?workflow=downstream.yml"),
        (  # Gitea with return_run_details
            200,
            {"workflow_run_id": 77, "html_url": f"https://codeberg.org/{LIB}/actions/runs/77"},
            "77",
            f"https://codeberg.org/{LIB}/actions/runs/77",
        ),
        (  # Forgejo with return_run_info
            201,
            {"id": 900, "run_number": 12, "jobs": ["test"]},
            "900",
            f"https://codeberg.org/{LIB}/actions/runs/12",
        ),
    ],
)
async def test_a_downstream_is_a_workflow_dispatch_with_the_contract_inputs(
    fake_gitea: FakeGitea, status: int, answer: Any, run_id: str | None, url: str
) -> None:
    fake_gitea.expect_dispatch(LIB, "downstream.yml", status=status, body=answer)
    artifacts = [{"name": "lib.whl", "url": "https://ci.example.com/lib.whl"}]
    started = await gitea_host(fake_gitea).start_pipeline(request(artifacts=artifacts))

    assert (started.run_id, started.url) == (run_id, url)
    [call] = fake_gitea.dispatches(LIB, "downstream.yml")
    assert call.query == {"return_run_details": "true"}
    assert call.body == {
        "ref": "main",
        "inputs": {
            "conjunction_event": EVENT,
            "upstream": "github.com/acme/core",
            "upstream_sha": SHA,
            "upstream_ref": "main",
            "upstream_artifacts": json.dumps(artifacts),
        },
        "return_run_info": True,
    }


async def test_a_pre_merge_baseline_names_its_change_kind_and_step(fake_gitea: FakeGitea) -> None:
    """Gitea and Forgejo take the inputs a workflow declares and drop the others: the run's
    fields go along whenever they say something."""
    fake_gitea.expect_dispatch(LIB, "downstream.yml", status=204, body=None)
    change = "https://codeberg.org/acme/core/pulls/7"
    await gitea_host(fake_gitea).start_pipeline(
        request(upstream_ref="main", change=change, kind="premerge", step="baseline")
    )

    [call] = fake_gitea.dispatches(LIB, "downstream.yml")
    assert call.body["inputs"] == {
        "conjunction_event": EVENT,
        "upstream": "github.com/acme/core",
        "upstream_sha": SHA,
        "upstream_ref": "main",
        "conjunction_change": change,
        "conjunction_kind": "premerge",
        "conjunction_step": "baseline",
    }


async def test_refusals_say_what_to_do_and_a_server_error_is_not_sent_twice(
    fake_gitea: FakeGitea,
) -> None:
    host = gitea_host(fake_gitea)
    with pytest.raises(TriggerError, match=r"set trigger.workflow"):
        await host.start_pipeline(request(trigger=Trigger()))

    fake_gitea.expect_dispatch(LIB, "downstream.yml", status=404, body={"message": "not found"})
    with pytest.raises(TriggerError, match=r"downstream.yml not found on main of acme/lib") as exc:
        await host.start_pipeline(request())
    assert exc.value.permanent

    fake_gitea.expect_dispatch(LIB, "downstream.yml", status=403, body={"message": "forbidden"})
    with pytest.raises(TriggerError, match=r"needs write access"):
        await host.start_pipeline(request())

    fake_gitea.expect_dispatch(LIB, "downstream.yml", status=502, body={"message": "bad gw"})
    with pytest.raises(TriggerError, match=r"unavailable") as exc:
        await host.start_pipeline(request())
    assert not exc.value.permanent
    assert len(fake_gitea.dispatches(LIB, "downstream.yml")) == 3


async def test_reads_are_retried_after_server_errors(fake_gitea: FakeGitea) -> None:
    fake_gitea.expect("GET", REPO, status=503, body={"message": "busy"})
    fake_gitea.expect("GET", REPO, status=429, body={"message": "slow down"})
    fake_gitea.expect_repo(LIB)
    info = await gitea_host(fake_gitea).project_info(NAME)
    assert info.default_branch == "main"
    assert [call.status for call in fake_gitea.calls] == [503, 429, 200]


async def test_find_started_finds_the_run_by_its_title(fake_gitea: FakeGitea) -> None:
    runs = {
        "workflow_runs": [
            {"id": 3, "display_title": "downstream", "html_url": "u3"},
            {"id": 4, "display_title": f"conjunction {EVENT}", "html_url": "u4"},  # Gitea
        ]
    }
    fake_gitea.expect(
        "GET", f"{REPO}/actions/runs", query={"event": "workflow_dispatch"}, body=runs
    )
    fake_gitea.expect(  # Forgejo: the run's title, here without the event id
        "GET",
        f"{REPO}/actions/runs",
        body={"workflow_runs": [{"id": 5, "title": "Downstream", "html_url": "u5"}]},
    )
    fake_gitea.expect("GET", f"{REPO}/actions/runs", status=404, body={"message": "no"})
    sent = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    forgejo_runs = [  # Forgejo's runs: the dispatched workflow on main since the dispatch
        {
            "id": 6,
            "title": "Downstream",
            "workflow_id": "downstream.yml",
            "prettyref": "main",
            "created": "2026-05-01T12:00:03Z",
            "html_url": "u6",
        },
        {
            "id": 7,
            "title": "Downstream",
            "workflow_id": "downstream.yml",
            "prettyref": "main",
            "created": "2026-05-01T11:50:00Z",
            "html_url": "u7",
        },  # before it was sent
        {
            "id": 8,
            "title": "Other",
            "workflow_id": "other.yml",
            "prettyref": "main",
            "created": "2026-05-01T12:00:04Z",
            "html_url": "u8",
        },
    ]
    fake_gitea.expect("GET", f"{REPO}/actions/runs", body={"workflow_runs": forgejo_runs})
    fake_gitea.expect(  # two that fit: a guess, so none
        "GET", f"{REPO}/actions/runs", body={"workflow_runs": forgejo_runs + forgejo_runs[:1]}
    )
    host = gitea_host(fake_gitea)

    found = await host.find_started(request())
    assert found is not None and (found.run_id, found.url) == ("4", "u4")
    assert await host.find_started(request()) is None
    assert await host.find_started(request()) is None  # a server without the API
    found = await host.find_started(request(sent_at=sent))
    assert found is not None and (found.run_id, found.url) == ("6", "u6")
    assert await host.find_started(request(sent_at=sent)) is None


async def test_why_a_run_failed_is_the_log_of_its_first_failed_job(
    fake_gitea: FakeGitea,
) -> None:
    fake_gitea.expect_failed_job(LIB, 901, 78, ACTIONS_LOG)
    found = await gitea_host(fake_gitea).failure_text(NAME, "901")
    assert found == FailureText(
        Source.LOG, ACTIONS_LOG, f"https://codeberg.org/{LIB}/actions/runs/901/jobs/1"
    )
    listed, logs = fake_gitea.calls
    assert (listed.path, listed.query) == (f"{REPO}/actions/runs/901/jobs", {"limit": "50"})
    assert logs.path == f"{REPO}/actions/jobs/78/logs"


async def test_no_excerpt_without_a_failed_job_or_where_the_server_has_no_jobs_api(
    fake_gitea: FakeGitea,
) -> None:
    """None, and no error: when no job failed (the log is not asked for), when the answer is
    not Gitea's list, on a 404 (Forgejo, an older Gitea: asked once, not retried), and when
    the server still fails after the client's retries."""
    jobs = f"{REPO}/actions/runs/7/jobs"
    passed = [{"id": 1, "conclusion": "success"}, {"id": 2, "conclusion": "cancelled"}]
    fake_gitea.expect("GET", jobs, body={"jobs": passed, "total_count": 2})
    fake_gitea.expect("GET", jobs, body=[{"id": 3, "status": "failure"}])
    fake_gitea.expect("GET", jobs, status=404, body={"message": "The target couldn't be found."})
    fake_gitea.expect("GET", jobs, status=502, body={"message": "bad gateway"}, times=5)
    host = gitea_host(fake_gitea)

    assert [await host.failure_text(NAME, "7") for _ in range(4)] == [None] * 4
    assert [call.status for call in fake_gitea.calls] == [200, 200, 404] + [502] * 5
    assert all(call.path == jobs for call in fake_gitea.calls)


async def test_commands_ask_the_collaborator_permission_and_read_the_pull_request(
    fake_gitea: FakeGitea,
) -> None:
    for user, permission in (("maria", "write"), ("owner", "owner"), ("reader", "read")):
        fake_gitea.expect(
            "GET",
            f"{REPO}/collaborators/{user}/permission",
            body={"permission": permission, "role_name": permission},
        )
    fake_gitea.expect(
        "GET", f"{REPO}/collaborators/ghost/permission", status=404, body={"message": "nope"}
    )
    fake_gitea.expect(
        "GET",
        f"{REPO}/pulls/3",
        body={
            "number": 3,
            "html_url": f"https://codeberg.org/{LIB}/pulls/3",
            "title": "Faster parsing",
            "state": "open",
            "merged": False,
            "user": {"login": "maria"},
            "head": {"sha": "b" * 40, "repo": {"full_name": "maria/lib"}},
            "base": {"sha": SHA, "repo": {"full_name": LIB}},
        },
    )
    fake_gitea.expect(
        "POST", f"{REPO}/issues/comments/77/reactions", status=201, body={"content": "eyes"}
    )
    fake_gitea.expect("POST", f"{REPO}/issues/3/comments", status=201, body={"id": 78})
    host = gitea_host(fake_gitea)

    assert [await host.can_write(NAME, user) for user in ("maria", "owner", "reader")] == [
        True,
        True,
        False,
    ]
    assert await host.can_write(NAME, "ghost") is False
    change = await host.get_change(NAME, 3)
    assert change is not None
    assert (change.head_sha, change.base_sha, change.fork, change.state) == (
        "b" * 40,
        SHA,
        True,
        "open",
    )
    comment = CommentRef(NAME, 3, 77, on_change=True)
    await host.react(comment, "eyes")
    await host.reply(comment, "done")
    [reaction] = fake_gitea.calls_to("POST", f"{REPO}/issues/comments/77/reactions")
    assert reaction.body == {"content": "eyes"}
    [reply] = fake_gitea.calls_to("POST", f"{REPO}/issues/3/comments")
    assert reply.body == {"body": "done"}
