"""GitLabHost against the fake GitLab: the calls python-gitlab really makes, their bodies, and
what the engine gets back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conjunction.codehost import CommitReport
from conjunction.config.repo_config import ConfigError, ConfigProblem, Trigger
from conjunction.forges.gitlab.host import DESCRIPTION_LIMIT, cut
from conjunction.runner import TriggerError, TriggerRequest
from tests.fakegitlab import FakeGitLab, encoded, gitlab_host, job

APP = "group/sub/app"
NAME = f"gitlab.com/{APP}"
PROJECT = f"/projects/{encoded(APP)}"
SHA = "a" * 40
MARKER = "<!-- conjunction:downstream-summary -->"


def request(**values: Any) -> TriggerRequest:
    fields: dict[str, Any] = {
        "event_id": "e" * 32,
        "project": NAME,
        "upstream": "github.com/acme/lib",
        "upstream_sha": SHA,
        "upstream_ref": "main",
        "upstream_url": None,
        "callback_url": "https://conjunction.test/api/v1/events/e/status",
        "callback_token": "token",
        "trigger": Trigger(),
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


async def test_nested_group_paths_are_encoded_and_internal_counts_as_private(
    fake_gitlab: FakeGitLab,
) -> None:
    fake_gitlab.expect_project(APP, visibility="internal", default_branch="trunk")
    fake_gitlab.expect_file(APP, ".gitlab/CODEOWNERS", "* @group/sub/team\n", ref="trunk")
    fake_gitlab.expect_file(APP, "CODEOWNERS", None, ref=None)
    host = gitlab_host(fake_gitlab)

    info = await host.project_info(NAME)
    assert (info.default_branch, info.private) == ("trunk", True)
    assert await host.read_file(NAME, ".gitlab/CODEOWNERS", "trunk") == "* @group/sub/team\n"
    assert await host.read_file(NAME, "CODEOWNERS") is None
    assert [call.path for call in fake_gitlab.calls] == [
        "/projects/group%2Fsub%2Fapp",
        "/projects/group%2Fsub%2Fapp/repository/files/.gitlab%2FCODEOWNERS/raw",
        "/projects/group%2Fsub%2Fapp/repository/files/CODEOWNERS/raw",
    ]
    assert fake_gitlab.calls[0].headers["private-token"] == "glpat-bot-token-for-tests"


async def test_a_pipeline_is_created_with_the_contract_variables(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.expect_pipeline(APP, 61)
    started = await gitlab_host(fake_gitlab).start_pipeline(request(trigger=Trigger(ref="v2")))

    assert (started.run_id, started.url) == (
        "61",
        "https://gitlab.com/group/sub/app/-/pipelines/61",
    )
    [call] = fake_gitlab.calls_to("POST", f"{PROJECT}/pipeline")
    assert call.body == {
        "ref": "v2",
        "variables": [
            {"key": "CONJUNCTION_EVENT", "value": "e" * 32, "variable_type": "env_var"},
            {
                "key": "CONJUNCTION_UPSTREAM",
                "value": "github.com/acme/lib",
                "variable_type": "env_var",
            },
            {"key": "CONJUNCTION_UPSTREAM_SHA", "value": SHA, "variable_type": "env_var"},
            {"key": "CONJUNCTION_UPSTREAM_REF", "value": "main", "variable_type": "env_var"},
            {
                "key": "CONJUNCTION_CALLBACK_URL",
                "value": "https://conjunction.test/api/v1/events/e/status",
                "variable_type": "env_var",
            },
        ],
    }


async def test_upstream_artifacts_travel_as_a_json_variable(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.expect_pipeline(APP, 62)
    wheel = {"name": "lib.whl", "url": "https://ci.acme.dev/lib.whl"}
    await gitlab_host(fake_gitlab).start_pipeline(request(artifacts=[wheel]))
    [call] = fake_gitlab.calls_to("POST", f"{PROJECT}/pipeline")
    assert call.body["variables"][-1] == {
        "key": "CONJUNCTION_UPSTREAM_ARTIFACTS",
        "value": json.dumps([wheel]),
        "variable_type": "env_var",
    }


async def test_a_pipelines_job_artifacts_are_listed_with_their_download_links(
    fake_gitlab: FakeGitLab,
) -> None:
    fake_gitlab.expect_jobs(APP, 70, [job(901, "wheel", "dist.zip"), job(902, "lint", None)])
    artifacts = await gitlab_host(fake_gitlab).pipeline_artifacts(NAME, "70")
    [call] = fake_gitlab.calls_to("GET", f"{PROJECT}/pipelines/70/jobs")
    assert call.query["per_page"] == "100"
    assert artifacts == [
        {
            "name": "wheel",
            "url": f"https://gitlab.com/{APP}/-/jobs/901/artifacts/download",
            "api_url": f"{fake_gitlab.url}/api/v4{PROJECT}/jobs/901/artifacts",
            "job_id": 901,
            "pipeline_id": "70",
            "repository": NAME,
            "file": "dist.zip",
        }
    ]


async def test_jobs_gitlab_will_not_list_mean_no_artifacts(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.expect(
        "GET", f"{PROJECT}/pipelines/70/jobs", status=403, body={"message": "403 Forbidden"}
    )
    assert await gitlab_host(fake_gitlab).pipeline_artifacts(NAME, "70") == []


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (
            403,
            {"message": "403 Forbidden"},
            "the GitLab bot account may not create pipelines in group/sub/app: it needs the "
            "Developer role there (or use trigger.webhook with a pipeline trigger token)",
        ),
        (404, {"message": "404 Project Not Found"}, "group/sub/app not found on gitlab.com"),
        (
            # the project's "Minimum role to use pipeline variables" is above the bot's role
            400,
            {"message": {"base": ["Insufficient permissions to set pipeline variables"]}},
            "GitLab refuses pipeline variables on group/sub/app: set Settings > CI/CD > "
            "Variables > Minimum role to use pipeline variables to Developer",
        ),
        (
            400,
            {
                "message": {
                    "base": [
                        "You do not have sufficient permission to run a pipeline on 'main'. "
                        "Please select a different branch or contact your administrator for "
                        "assistance."
                    ]
                }
            },
            "the GitLab bot account may not run pipelines on main of group/sub/app, a "
            "protected branch: give it a role allowed to merge into main (Maintainer by "
            "default), or set trigger.ref to a branch that is not protected",
        ),
        (
            403,
            {"error": "insufficient_scope", "scope": "api"},
            "GitLab refused the bot account's token (GITLAB_TOKEN): revoked, expired, or "
            "without the api scope",
        ),
        (
            400,
            {"message": {"base": ["Reference not found"]}},
            "GitLab refused a pipeline on main of group/sub/app: Reference not found",
        ),
    ],
)
async def test_a_refused_pipeline_gives_a_reason(
    fake_gitlab: FakeGitLab, status: int, body: Any, reason: str
) -> None:
    fake_gitlab.expect_pipeline(APP, 1, status=status, body=body)
    with pytest.raises(TriggerError) as raised:
        await gitlab_host(fake_gitlab).start_pipeline(request())
    assert raised.value.reason.startswith(reason)
    assert raised.value.permanent


async def test_a_pipeline_is_requested_once_when_gitlab_is_unavailable(
    fake_gitlab: FakeGitLab,
) -> None:
    """A 5xx may follow a pipeline GitLab created: the client does not repeat the request, the
    job's retry looks for the pipeline first."""
    fake_gitlab.expect_pipeline(APP, 1, status=503, body={"message": "down"})
    with pytest.raises(TriggerError) as raised:
        await gitlab_host(fake_gitlab, max_retries=3).start_pipeline(request())
    assert not raised.value.permanent
    assert len(fake_gitlab.calls_to("POST", f"{PROJECT}/pipeline")) == 1


async def test_find_started_finds_the_pipeline_by_its_event_variable(
    fake_gitlab: FakeGitLab,
) -> None:
    fake_gitlab.expect(
        "GET",
        f"{PROJECT}/pipelines",
        query={"source": "api", "ref": "main"},
        body=[{"id": 8, "web_url": "https://gitlab.com/p/8"}, {"id": 7, "web_url": "u7"}],
    )
    fake_gitlab.expect(
        "GET", f"{PROJECT}/pipelines/8/variables", body=[{"key": "OTHER", "value": "x"}]
    )
    fake_gitlab.expect(
        "GET",
        f"{PROJECT}/pipelines/7/variables",
        body=[{"key": "CONJUNCTION_EVENT", "value": "e" * 32}],
    )
    found = await gitlab_host(fake_gitlab).find_started(request())
    assert found is not None and (found.run_id, found.url) == ("7", "u7")


async def test_the_report_is_a_commit_status_with_a_cleanly_cut_description(
    fake_gitlab: FakeGitLab,
) -> None:
    fake_gitlab.expect_status(APP, SHA)
    host = gitlab_host(fake_gitlab)
    long = "12 of 40 downstream projects passed, " + "and more words " * 30
    await host.publish_report(NAME, SHA, report(description=long), status=True, check=True)
    await host.publish_report(NAME, SHA, report("failure"), status=True, check=False)
    await host.publish_report(NAME, SHA, report("success"), status=False, check=True)

    first, second = fake_gitlab.statuses(APP, SHA)
    assert first["state"] == "running"
    assert first["name"] == "conjunction/downstream"
    assert first["target_url"] == "https://conjunction.test/events/1"
    assert len(first["description"]) <= DESCRIPTION_LIMIT
    kept = first["description"].removesuffix("…")
    assert long.startswith(kept) and long[len(kept)] == " "  # cut between words
    assert second["state"] == "failed"


def test_cut_keeps_short_text_and_cuts_at_a_word() -> None:
    assert cut("3 of 4 downstream projects passed") == "3 of 4 downstream projects passed"
    assert cut("one two three four", 12) == "one two…"


async def test_a_status_already_running_is_not_an_error(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.expect(
        "POST",
        f"{PROJECT}/statuses/{SHA}",
        status=400,
        body={"message": "Cannot transition status via :run from :running"},
    )
    await gitlab_host(fake_gitlab).publish_report(NAME, SHA, report(), status=True, check=True)


async def test_one_note_on_the_merge_request_edited_in_place(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.expect(
        "GET",
        f"{PROJECT}/repository/commits/{SHA}/merge_requests",
        body=[{"iid": 4, "state": "opened"}, {"iid": 3, "state": "merged"}],
        repeat=True,
    )
    fake_gitlab.expect("GET", f"{PROJECT}/merge_requests/3/notes", body=[])
    fake_gitlab.expect("POST", f"{PROJECT}/merge_requests/3/notes", status=201, body={"id": 9})
    fake_gitlab.expect(
        "GET",
        f"{PROJECT}/merge_requests/3/notes",
        body=[{"id": 2, "body": "LGTM"}, {"id": 9, "body": f"{MARKER}\nold"}],
    )
    fake_gitlab.expect("PUT", f"{PROJECT}/merge_requests/3/notes/9", body={"id": 9})
    host = gitlab_host(fake_gitlab)

    await host.comment_on_change(NAME, SHA, MARKER, f"{MARKER}\nrunning")
    await host.comment_on_change(NAME, SHA, MARKER, "passed")

    [created] = fake_gitlab.calls_to("POST", f"{PROJECT}/merge_requests/3/notes")
    assert created.body == {"body": f"{MARKER}\nrunning"}
    [edited] = fake_gitlab.calls_to("PUT", f"{PROJECT}/merge_requests/3/notes/9")
    assert edited.body == {"body": f"{MARKER}\npassed"}


async def test_no_merge_request_no_note(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.expect("GET", f"{PROJECT}/repository/commits/{SHA}/merge_requests", body=[])
    await gitlab_host(fake_gitlab).comment_on_change(NAME, SHA, MARKER, "text")


async def test_issue_found_by_marker_opened_with_label_commented_and_closed(
    fake_gitlab: FakeGitLab,
) -> None:
    marker = "<!-- conjunction:breakage a -> b -->"
    fake_gitlab.expect(
        "GET",
        f"{PROJECT}/issues",
        query={"labels": "conjunction", "state": "opened"},
        body=[{"iid": 1, "description": "someone else's", "web_url": "u1"}],
    )
    fake_gitlab.expect(
        "POST", f"{PROJECT}/labels", status=409, body={"message": "Label already exists"}
    )
    fake_gitlab.expect(
        "POST", f"{PROJECT}/issues", status=201, body={"iid": 5, "web_url": "https://gl/i/5"}
    )
    fake_gitlab.expect(
        "GET",
        f"{PROJECT}/issues",
        query={"labels": "conjunction", "state": "opened"},
        body=[{"iid": 5, "description": f"{marker}\nbody", "web_url": "https://gl/i/5"}],
    )
    fake_gitlab.expect("POST", f"{PROJECT}/issues/5/notes", status=201, body={"id": 1}, times=2)
    fake_gitlab.expect("PUT", f"{PROJECT}/issues/5", body={"iid": 5, "state": "closed"})
    host = gitlab_host(fake_gitlab)

    assert await host.find_issue(NAME, marker) is None
    opened = await host.open_issue(NAME, "Title", f"{marker}\nbody @alice", ["conjunction"])
    assert (opened.number, opened.url) == (5, "https://gl/i/5")
    assert await host.find_issue(NAME, marker) == opened
    await host.comment_issue(NAME, 5, "still failing")
    await host.close_issue(NAME, 5, "fixed")

    [label] = fake_gitlab.calls_to("POST", f"{PROJECT}/labels")
    assert label.body["name"] == "conjunction" and label.body["color"] == "#d93f0b"
    [issue] = fake_gitlab.calls_to("POST", f"{PROJECT}/issues")
    assert issue.body == {
        "title": "Title",
        "description": f"{marker}\nbody @alice",
        "labels": "conjunction",
    }
    notes = fake_gitlab.calls_to("POST", f"{PROJECT}/issues/5/notes")
    assert [note.body["body"] for note in notes] == ["still failing", "fixed"]
    [closed] = fake_gitlab.calls_to("PUT", f"{PROJECT}/issues/5")
    assert closed.body == {"state_event": "close"}


async def test_an_invalid_config_is_a_failed_status_naming_line_and_key(
    fake_gitlab: FakeGitLab,
) -> None:
    fake_gitlab.expect_status(APP, SHA)
    host = gitlab_host(fake_gitlab)
    error = ConfigError(
        [
            ConfigProblem(3, "upstreams.0.project", "not a project name"),
            ConfigProblem(7, "trigger", "unknown key"),
        ]
    )
    await host.report_config(NAME, SHA, error)
    await host.report_config(NAME, SHA, None)

    failed, valid = fake_gitlab.statuses(APP, SHA)
    assert failed == {
        "state": "failed",
        "name": "conjunction/config",
        "description": ".conjunction.yml line 3: upstreams.0.project: not a project name (+1 more)",
        "target_url": f"https://gitlab.com/{APP}/-/blob/{SHA}/.conjunction.yml#L3",
    }
    assert (valid["state"], valid["description"]) == ("success", ".conjunction.yml is valid")


async def test_changed_files_and_compare_url(fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.expect(
        "GET",
        f"{PROJECT}/repository/compare",
        query={"from": "b" * 40, "to": SHA},
        body={
            "diffs": [
                {"old_path": "src/a.py", "new_path": "src/a.py"},
                {"old_path": "old.txt", "new_path": "new.txt"},
            ],
            "compare_timeout": False,
        },
    )
    fake_gitlab.expect(
        "GET", f"{PROJECT}/repository/compare", body={"diffs": [], "compare_timeout": True}
    )
    host = gitlab_host(fake_gitlab)
    assert await host.changed_files(NAME, "b" * 40, SHA) == ["new.txt", "old.txt", "src/a.py"]
    assert await host.changed_files(NAME, "b" * 40, SHA) is None
    assert host.compare_url(NAME, "b", "c") == f"https://gitlab.com/{APP}/-/compare/b...c"


async def test_every_commit_of_a_range_for_a_culprit_search(fake_gitlab: FakeGitLab) -> None:
    commits = [
        {"id": f"{n:040x}", "title": f"Change {n}", "author_name": "Ada", "web_url": f"u{n}"}
        for n in range(30)
    ]
    fake_gitlab.expect(
        "GET",
        f"{PROJECT}/repository/compare",
        query={"from": "b" * 40, "to": SHA},
        body={"commits": commits, "diffs": []},
    )
    fake_gitlab.expect("GET", f"{PROJECT}/repository/compare", status=404, body={})
    host = gitlab_host(fake_gitlab)
    listed = await host.commit_list(NAME, "b" * 40, SHA)
    assert listed is not None and len(listed) == 30
    assert (listed[0].sha, listed[0].title, listed[0].author, listed[0].url) == (
        f"{0:040x}",
        "Change 0",
        "Ada",
        "u0",
    )
    assert listed[0].login is None, "GitLab names the author, not their account"
    assert await host.commit_list(NAME, "b" * 40, SHA) is None


async def test_a_wrong_token_is_refused_by_gitlab(fake_gitlab: FakeGitLab) -> None:
    host = gitlab_host(fake_gitlab, token="revoked")
    with pytest.raises(TriggerError) as raised:
        await host.start_pipeline(request())
    assert raised.value.reason == (
        "GitLab refused the bot account's token (GITLAB_TOKEN): revoked, expired, or without "
        "the api scope"
    )
    [refused] = fake_gitlab.calls
    assert refused.status == 401


async def test_developers_and_above_may_write_named_by_id_or_username(
    fake_gitlab: FakeGitLab,
) -> None:
    members = f"/projects/{encoded(APP)}/members/all"
    fake_gitlab.expect("GET", f"{members}/7", body={"id": 7, "access_level": 30})
    fake_gitlab.expect("GET", f"{members}/8", body={"id": 8, "access_level": 20})
    fake_gitlab.expect("GET", f"{members}/9", status=404, body={"message": "404 Not found"})
    fake_gitlab.expect("GET", "/users", query={"username": "maria"}, body=[{"id": 7}])
    fake_gitlab.expect("GET", f"{members}/7", body={"id": 7, "access_level": 50})
    fake_gitlab.expect("GET", "/users", query={"username": "nobody"}, body=[])
    host = gitlab_host(fake_gitlab)

    assert await host.can_write(NAME, "dev", user_id=7) is True
    assert await host.can_write(NAME, "reporter", user_id=8) is False
    assert await host.can_write(NAME, "stranger", user_id=9) is False
    assert await host.can_write(NAME, "maria") is True  # looked up by username
    assert await host.can_write(NAME, "nobody") is False


async def test_a_merge_request_from_a_fork_as_a_change(fake_gitlab: FakeGitLab) -> None:
    mr = f"/projects/{encoded(APP)}/merge_requests"
    fake_gitlab.expect(
        "GET",
        f"{mr}/4",
        body={
            "iid": 4,
            "title": "Faster parsing",
            "state": "merged",
            "sha": "b" * 40,
            "diff_refs": {"base_sha": "a" * 40},
            "author": {"username": "maria"},
            "source_project_id": 99,
            "target_project_id": 42,
            "web_url": f"https://gitlab.com/{APP}/-/merge_requests/4",
        },
    )
    fake_gitlab.expect("GET", f"{mr}/5", status=404, body={"message": "404 Not found"})
    host = gitlab_host(fake_gitlab)

    change = await host.get_change(NAME, 4)
    assert change is not None
    assert (change.head_sha, change.base_sha, change.author) == ("b" * 40, "a" * 40, "maria")
    assert (change.fork, change.state, change.ref) == (True, "merged", "refs/merge-requests/4/head")
    assert await host.get_change(NAME, 5) is None
