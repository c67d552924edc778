"""The GitHub adapter: the REST calls each forge operation makes, through the fake GitHub."""

import asyncio
import base64
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from conjunction.codehost import REPORT_NAME as CHECK_NAME
from conjunction.codehost import STATUS_CONTEXT, CommitReport
from conjunction.config.repo_config import ConfigError, Trigger, parse_config
from conjunction.forges.github.forge import PERMISSION_REASON, GitHubForge
from conjunction.queue import RetryLater
from conjunction.runner import TriggerError, TriggerRequest
from conjunction.texts import ISSUE_LABEL, ISSUE_LABEL_COLOR, ISSUE_LABEL_DESCRIPTION
from testkit.payloads import fixture
from tests.fakegithub import FakeGitHub, FakeTime, fake_policy

PROJECT = "github.com/acme/app"
SHA = "0123456789abcdef0123456789abcdef01234567"
MARKER = "<!-- conjunction:downstream-summary -->"


def forge_on(gh: FakeGitHub, **kw) -> GitHubForge:
    async def clients(project):
        return gh

    return GitHubForge(clients, **kw)


@pytest.fixture
def github_forge(fake_github):
    return forge_on(fake_github)


def request(**trigger) -> TriggerRequest:
    return TriggerRequest(
        event_id="ev1",
        project=PROJECT,
        upstream="github.com/acme/lib",
        upstream_sha=SHA,
        upstream_ref="main",
        upstream_url="https://github.com/acme/lib/actions/runs/7",
        callback_url="https://conjunction.test/api/v1/events/ev1/status",
        callback_token="secret-token",
        trigger=Trigger(**trigger),
        default_branch="trunk",
    )


def report(**changes) -> CommitReport:
    values = {
        "state": "pending",
        "conclusion": None,
        "description": "1 of 2 downstream projects finished",
        "target_url": "https://conjunction.test/events/ev1",
        "title": "1 of 2 finished",
        "summary": "| downstream | result |",
    }
    return CommitReport(**{**values, **changes})


WORKFLOW_PATH = "/repos/acme/app/actions/workflows/conjunction.yml/dispatches"


# read_file


async def test_read_file_decodes_content_at_ref(github_forge, fake_github):
    content = base64.b64encode(b"upstreams: []\n").decode()
    fake_github.expect(
        "GET",
        "/repos/acme/app/contents/.conjunction.yml?ref=main",
        body={"type": "file", "encoding": "base64", "content": content},
    )
    assert await github_forge.read_file(PROJECT, ".conjunction.yml", "main") == "upstreams: []\n"


async def test_read_file_missing_is_none(github_forge, fake_github):
    fake_github.expect(
        "GET", "/repos/acme/app/contents/.github/CODEOWNERS", status=404, body={"message": "x"}
    )
    assert await github_forge.read_file(PROJECT, ".github/CODEOWNERS") is None
    assert fake_github.calls[0].path == "/repos/acme/app/contents/.github/CODEOWNERS"


# start_pipeline


async def test_workflow_dispatch_returns_the_run(github_forge, fake_github):
    fake_github.expect(
        "POST",
        WORKFLOW_PATH,
        body={
            "workflow_run_id": 42,
            "run_url": "https://api.github.com/repos/acme/app/actions/runs/42",
            "html_url": "https://github.com/acme/app/actions/runs/42",
        },
    )
    started = await github_forge.start_pipeline(request(workflow="conjunction.yml", ref="release"))
    assert started.url == "https://github.com/acme/app/actions/runs/42"
    assert started.run_id == "42"
    [call] = fake_github.calls
    assert call.body == {
        "ref": "release",
        "inputs": {
            "conjunction_event": "ev1",
            "upstream": "github.com/acme/lib",
            "upstream_sha": SHA,
            "upstream_ref": "main",
        },
        "return_run_details": True,
    }


async def test_workflow_dispatch_without_run_details(github_forge, fake_github):
    fake_github.expect("POST", WORKFLOW_PATH, status=204)
    started = await github_forge.start_pipeline(request(workflow="conjunction.yml"))
    assert started.url is None and started.run_id is None
    assert fake_github.calls[0].body["ref"] == "trunk"  # the default branch


async def test_repository_dispatch_payload(github_forge, fake_github):
    fake_github.expect("POST", "/repos/acme/app/dispatches", status=204)
    started = await github_forge.start_pipeline(request())
    assert started.url is None
    assert fake_github.calls[0].body == {
        "event_type": "conjunction",
        "client_payload": {
            "event": "ev1",
            "upstream": "github.com/acme/lib",
            "upstream_sha": SHA,
            "upstream_ref": "main",
            "upstream_url": "https://github.com/acme/lib/actions/runs/7",
            "callback_url": "https://conjunction.test/api/v1/events/ev1/status",
        },
    }
    assert "secret-token" not in str(fake_github.calls[0].body)


@pytest.mark.parametrize(
    ("status", "message", "reason"),
    [
        (404, "Not Found", "workflow conjunction.yml not found in acme/app on trunk"),
        (
            422,
            "Workflow does not have 'workflow_dispatch' trigger",
            "conjunction.yml has no workflow_dispatch trigger: "
            "add `on: workflow_dispatch` with the conjunction inputs",
        ),
        (
            422,
            'Unexpected inputs provided: ["upstream"]',
            "conjunction.yml does not declare the inputs "
            "conjunction_event, upstream, upstream_sha, upstream_ref",
        ),
        (422, "No ref found for: trunk", "No ref found for: trunk"),
        (403, "Resource not accessible by integration", PERMISSION_REASON),
    ],
)
async def test_workflow_dispatch_errors_explain_the_fix(
    github_forge, fake_github, status, message, reason
):
    fake_github.expect("POST", WORKFLOW_PATH, status=status, body={"message": message})
    with pytest.raises(TriggerError) as excinfo:
        await github_forge.start_pipeline(request(workflow="conjunction.yml"))
    assert excinfo.value.reason == reason
    assert excinfo.value.permanent


async def test_repository_dispatch_not_found(github_forge, fake_github):
    fake_github.expect(
        "POST", "/repos/acme/app/dispatches", status=404, body={"message": "Not Found"}
    )
    with pytest.raises(TriggerError) as excinfo:
        await github_forge.start_pipeline(request())
    assert excinfo.value.reason == "repository acme/app not found or app not installed"
    assert excinfo.value.permanent


async def test_app_not_installed_is_a_trigger_error():
    async def clients(project):
        raise LookupError("the Conjunction app is not installed on acme/app")

    forge = GitHubForge(clients)
    with pytest.raises(TriggerError, match="not installed on acme/app") as excinfo:
        await forge.start_pipeline(request())
    assert excinfo.value.permanent


# the client's policy, seen through the forge


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 502, "body": {"message": "Bad gateway"}},
        {"error": aiohttp.ServerDisconnectedError()},
        {"error": TimeoutError()},
    ],
    ids=["502", "answer lost", "timed out"],
)
@pytest.mark.parametrize(
    ("trigger", "path"),
    [
        ({"workflow": "conjunction.yml"}, WORKFLOW_PATH),
        ({}, "/repos/acme/app/dispatches"),
    ],
    ids=["workflow_dispatch", "repository_dispatch"],
)
async def test_a_dispatch_is_sent_once_whatever_its_failure(
    github_forge, fake_github, failure, trigger, path
):
    """The client never repeats a dispatch itself: it may have started a run. The job's retry
    asks GitHub first (`find_started`)."""
    fake_github.expect("POST", path, **failure)
    with pytest.raises(TriggerError) as excinfo:
        await github_forge.start_pipeline(request(**trigger))
    assert not excinfo.value.permanent
    assert "GitHub is unavailable" in excinfo.value.reason
    assert len(fake_github.calls) == 1
    assert fake_github.time.sleeps == []


async def test_rate_limit_postpones_the_job(github_forge, fake_github):
    headers = {
        "X-RateLimit-Limit": "5000",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "4000000000",
    }
    fake_github.expect(
        "POST",
        f"/repos/acme/app/statuses/{SHA}",
        status=403,
        body={"message": "x"},
        headers=headers,
    )
    with pytest.raises(RetryLater) as excinfo:
        await github_forge.publish_report(PROJECT, SHA, report(), status=True, check=False)
    assert excinfo.value.delay > 0
    assert fake_github.time.sleeps == []
    assert len(fake_github.calls) == 1


async def test_secondary_rate_limit_waits_as_told(github_forge, fake_github):
    fake_github.expect(
        "POST",
        "/repos/acme/app/issues/3/comments",
        status=429,
        body={"message": "You have exceeded a secondary rate limit"},
        headers={"Retry-After": "30"},
    )
    with pytest.raises(RetryLater) as excinfo:
        await github_forge.comment_issue(PROJECT, 3, "hello")
    assert excinfo.value.delay == 30


async def test_content_calls_are_paced():
    time = FakeTime()
    gh = FakeGitHub(time=time, policy=fake_policy(time, per_minute=1))
    forge = forge_on(gh)
    gh.expect("POST", f"/repos/acme/app/statuses/{SHA}", status=201, body={}, times=2)
    gh.expect("GET", "/repos/acme/app/contents/x", status=404, body={"message": "x"}, times=2)
    await forge.read_file(PROJECT, "x")
    await forge.publish_report(PROJECT, SHA, report(), status=True, check=False)
    await forge.read_file(PROJECT, "x")
    with pytest.raises(RetryLater):  # the second status waits for the minute: postponed
        await forge.publish_report(PROJECT, SHA, report(), status=True, check=False)
    time.now += 61
    await forge.publish_report(PROJECT, SHA, report(), status=True, check=False)
    assert time.sleeps == []
    gh.assert_all_called()


# commit status and check run


async def test_commit_status(github_forge, fake_github):
    fake_github.expect("POST", f"/repos/acme/app/statuses/{SHA}", status=201, body={})
    await github_forge.publish_report(
        PROJECT, SHA, report(state="success", description="x" * 200), status=True, check=False
    )
    [call] = fake_github.calls
    assert call.body == {
        "state": "success",
        "target_url": "https://conjunction.test/events/ev1",
        "description": "x" * 139 + "…",
        "context": STATUS_CONTEXT,
    }


def expect_a_new_check_run(fake_github: FakeGitHub) -> None:
    """None found on the commit: run 99 is created, then updated once."""
    query = "check_name=Conjunction%3A%20downstream"
    fake_github.expect(
        "GET",
        f"/repos/acme/app/commits/{SHA}/check-runs?{query}",
        body={"total_count": 0, "check_runs": []},
    )
    fake_github.expect("POST", "/repos/acme/app/check-runs", status=201, body={"id": 99})
    fake_github.expect("PATCH", "/repos/acme/app/check-runs/99", body={"id": 99})


async def test_check_run_created_then_patched(github_forge, fake_github):
    expect_a_new_check_run(fake_github)

    await github_forge.publish_report(PROJECT, SHA, report(), status=False, check=True)
    await github_forge.publish_report(
        PROJECT,
        SHA,
        report(state="failure", conclusion="failure", title="1 of 2 passed"),
        status=False,
        check=True,
    )

    _, created, patched = fake_github.calls
    assert created.body == {
        "name": CHECK_NAME,
        "head_sha": SHA,
        "status": "in_progress",
        "details_url": "https://conjunction.test/events/ev1",
        "output": {"title": "1 of 2 finished", "summary": "| downstream | result |"},
    }
    assert patched.body == {
        "status": "completed",
        "conclusion": "failure",
        "details_url": "https://conjunction.test/events/ev1",
        "output": {"title": "1 of 2 passed", "summary": "| downstream | result |"},
    }


async def test_two_reports_at_once_make_one_check_run(fake_github, monkeypatch):
    """A progress report beside another report of the same commit: one check run, updated."""
    expect_a_new_check_run(fake_github)
    forge = forge_on(fake_github)
    call = forge._call

    async def slow_call(*args, **kwargs):  # GitHub takes a moment: the other report runs
        await asyncio.sleep(0.01)
        return await call(*args, **kwargs)

    monkeypatch.setattr(forge, "_call", slow_call)
    await asyncio.gather(
        *(forge.publish_report(PROJECT, SHA, report(), status=False, check=True) for _ in "ab")
    )
    assert len(fake_github.calls_to("POST", "/repos/acme/app/check-runs")) == 1


async def test_check_run_found_again_when_cache_is_cold(github_forge, fake_github):
    fake_github.expect(
        "GET",
        f"/repos/acme/app/commits/{SHA}/check-runs",
        body={"total_count": 1, "check_runs": [{"id": 7, "name": CHECK_NAME}]},
    )
    fake_github.expect("PATCH", "/repos/acme/app/check-runs/7", body={"id": 7}, times=2)
    long = report(summary="y" * 70_000)
    await github_forge.publish_report(PROJECT, SHA, long, status=False, check=True)
    await github_forge.publish_report(PROJECT, SHA, long, status=False, check=True)
    assert len(fake_github.calls_to("GET", "/")) == 1
    assert len(fake_github.calls[1].body["output"]["summary"]) < 65_535


# pull request comment


async def test_pull_request_comment_created_then_edited_in_place(github_forge, fake_github):
    fake_github.expect("GET", f"/repos/acme/app/commits/{SHA}/pulls", body=[{"number": 5}], times=2)
    fake_github.expect("GET", "/repos/acme/app/issues/5/comments", body=[{"id": 1, "body": "hi"}])
    fake_github.expect("POST", "/repos/acme/app/issues/5/comments", status=201, body={"id": 2})
    fake_github.expect(
        "GET", "/repos/acme/app/issues/5/comments", body=[{"id": 2, "body": f"{MARKER}\nold"}]
    )
    fake_github.expect("PATCH", "/repos/acme/app/issues/comments/2", body={"id": 2})

    await github_forge.comment_on_change(PROJECT, SHA, MARKER, "2 of 2 passed")
    await github_forge.comment_on_change(PROJECT, SHA, MARKER, f"{MARKER}\n1 of 2 passed")

    assert fake_github.calls_to("POST", "/")[0].body == {"body": f"{MARKER}\n2 of 2 passed"}
    assert fake_github.calls_to("PATCH", "/")[0].body == {"body": f"{MARKER}\n1 of 2 passed"}


async def test_no_pull_request_no_comment(github_forge, fake_github):
    fake_github.expect("GET", f"/repos/acme/app/commits/{SHA}/pulls", body=[])
    await github_forge.comment_on_change(PROJECT, SHA, MARKER, "2 of 2 passed")
    assert len(fake_github.calls) == 1


# issues


async def test_issue_opened_with_missing_label_created_once(github_forge, fake_github):
    fake_github.expect(
        "GET", f"/repos/acme/app/labels/{ISSUE_LABEL}", status=404, body={"message": "Not Found"}
    )
    fake_github.expect("POST", "/repos/acme/app/labels", status=201, body={"id": 1})
    fake_github.expect(
        "POST",
        "/repos/acme/app/issues",
        status=201,
        body={"number": 12, "html_url": "https://github.com/acme/app/issues/12"},
        times=2,
    )

    issue = await github_forge.open_issue(PROJECT, "app fails against lib", "body", [ISSUE_LABEL])
    await github_forge.open_issue(PROJECT, "again", "body", [ISSUE_LABEL])

    assert issue.number == 12
    assert issue.url == "https://github.com/acme/app/issues/12"
    assert fake_github.calls[1].body == {
        "name": ISSUE_LABEL,
        "color": ISSUE_LABEL_COLOR,
        "description": ISSUE_LABEL_DESCRIPTION,
    }
    assert fake_github.calls[2].body == {
        "title": "app fails against lib",
        "body": "body",
        "labels": [ISSUE_LABEL],
    }
    assert len(fake_github.calls_to("GET", "/repos/acme/app/labels")) == 1


async def test_existing_label_is_not_recreated(github_forge, fake_github):
    fake_github.expect("GET", f"/repos/acme/app/labels/{ISSUE_LABEL}", body={"name": ISSUE_LABEL})
    fake_github.expect("POST", "/repos/acme/app/issues", status=201, body={"number": 1})
    await github_forge.open_issue(PROJECT, "t", "b", [ISSUE_LABEL])
    assert fake_github.calls_to("POST", "/repos/acme/app/labels") == []


async def test_issue_closed_with_a_comment(github_forge, fake_github):
    fake_github.expect("POST", "/repos/acme/app/issues/12/comments", status=201, body={"id": 3})
    fake_github.expect("PATCH", "/repos/acme/app/issues/12", body={"number": 12})
    await github_forge.close_issue(PROJECT, 12, "app passes again. Closing.")
    comment, close = fake_github.calls
    assert comment.body == {"body": "app passes again. Closing."}
    assert close.body == {"state": "closed", "state_reason": "completed"}


# Enterprise and names


async def test_enterprise_server_urls():
    gh = FakeGitHub(base_url="https://ghe.example.com/api/v3")
    forge = forge_on(gh, host="ghe.example.com", web_url="https://ghe.example.com")
    gh.expect("POST", "/repos/acme/app/statuses/abc", status=201, body={})
    await forge.publish_report(
        "ghe.example.com/acme/app", "abc", report(), status=True, check=False
    )
    assert gh.calls[0].url == "https://ghe.example.com/api/v3/repos/acme/app/statuses/abc"
    assert (
        forge.compare_url("ghe.example.com/acme/app", "aaa", "bbb")
        == "https://ghe.example.com/acme/app/compare/aaa...bbb"
    )
    gh.assert_all_called()


def test_compare_url(github_forge):
    assert (
        github_forge.compare_url("github.com/Acme/App", "v1", "abc")
        == "https://github.com/Acme/App/compare/v1...abc"
    )


def test_project_on_another_host_is_refused(github_forge):
    with pytest.raises(ValueError, match=r"not a repository on github\.com"):
        github_forge.compare_url("gitlab.com/acme/app", "a", "b")


# changed files


async def test_changed_files_come_from_the_compare_api(github_forge, fake_github) -> None:
    gh = fake_github
    gh.expect(
        "GET",
        "/repos/acme/lib/compare/aaa...bbb",
        body={"files": [{"filename": "src/a.py"}, {"filename": "README.md"}]},
    )
    gh.expect("GET", "/repos/acme/lib/compare/bbb...ccc", body={"files": [{"filename": "x"}] * 300})
    gh.expect("GET", "/repos/acme/lib/compare/ccc...ddd", status=404, body={"message": "Not Found"})

    forge = github_forge
    assert await forge.changed_files("github.com/acme/lib", "aaa", "bbb") == [
        "src/a.py",
        "README.md",
    ]
    assert await forge.changed_files("github.com/acme/lib", "bbb", "ccc") is None
    assert await forge.changed_files("github.com/acme/lib", "ccc", "ddd") is None


async def test_commits_between_come_from_the_compare_api(github_forge, fake_github) -> None:
    def commit(n: int, login: str | None) -> dict:
        return {
            "sha": f"{n:040x}",
            "html_url": f"https://github.com/acme/lib/commit/{n:040x}",
            "commit": {"message": f"Change {n}\n\nwhy", "author": {"name": f"Person {n}"}},
            "author": {"login": login} if login else None,
        }

    fake_github.expect(
        "GET",
        "/repos/acme/lib/compare/aaa...bbb",
        body={
            "total_commits": 31,
            "commits": [commit(n, "libby" if n % 2 else None) for n in range(25)],
        },
    )
    fake_github.expect(
        "GET", "/repos/acme/lib/compare/bbb...ccc", status=404, body={"message": "Not Found"}
    )

    found = await github_forge.commits_between("github.com/acme/lib", "aaa", "bbb")
    assert found is not None
    assert (found.base, found.head, found.total, found.more, len(found.commits)) == (
        "aaa",
        "bbb",
        31,
        11,
        20,
    )
    assert found.url == "https://github.com/acme/lib/compare/aaa...bbb"
    first, second = found.commits[:2]
    assert (first.sha, first.title, first.author, first.url) == (
        f"{0:040x}",
        "Change 0",
        "Person 0",
        f"https://github.com/acme/lib/commit/{0:040x}",
    )
    assert second.author == "libby"
    assert await github_forge.commits_between("github.com/acme/lib", "bbb", "ccc") is None
    fake_github.assert_all_called()


async def test_commit_list_pages_through_the_compare_api(github_forge, fake_github) -> None:
    def commit(n: int) -> dict:
        return {
            "sha": f"{n:040x}",
            "html_url": f"https://github.com/acme/lib/commit/{n:040x}",
            "commit": {"message": f"Change {n}", "author": {"name": f"Person {n}"}},
            "author": {"login": "libby"} if n % 2 else None,
        }

    for page, numbers in ((1, range(100)), (2, range(100, 200)), (3, range(200, 260))):
        fake_github.expect(
            "GET",
            f"/repos/acme/lib/compare/aaa...bbb?per_page=100&page={page}",
            body={"total_commits": 260, "commits": [commit(n) for n in numbers]},
        )
    fake_github.expect(
        "GET",
        "/repos/acme/lib/compare/bbb...ccc?per_page=100&page=1",
        status=404,
        body={"message": "Not Found"},
    )

    listed = await github_forge.commit_list("github.com/acme/lib", "aaa", "bbb")
    assert listed is not None
    assert [c.sha for c in listed] == [f"{n:040x}" for n in range(260)]
    assert (listed[0].author, listed[0].login) == ("Person 0", None)
    assert (listed[1].author, listed[1].login) == ("libby", "libby")
    assert await github_forge.commit_list("github.com/acme/lib", "bbb", "ccc") is None
    fake_github.assert_all_called()


async def test_changed_files_unknown_where_the_app_is_not_installed() -> None:
    async def not_installed(project: str) -> FakeGitHub:
        raise LookupError(f"the Conjunction app is not installed on {project}")

    forge = GitHubForge(not_installed)
    assert await forge.changed_files("github.com/python/cpython", "aaa", "bbb") is None


# the code host's side: project info, the config check run, issues by marker

CONFIG_CHECK_RUNS = "/repos/acme/app/check-runs"
INVALID = "owners: [alice]\nupstreams:\n  - project: not-a-project\n    branch: [main]\n"


def problems_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        parse_config(text)
    return raised.value


async def test_project_info(github_forge, fake_github):
    fake_github.expect("GET", "/repos/acme/app", body={"default_branch": "trunk", "private": True})
    info = await github_forge.project_info(PROJECT)
    assert (info.default_branch, info.private) == ("trunk", True)


async def test_invalid_config_fails_a_check_run_with_annotations(github_forge, fake_github):
    fake_github.expect("POST", CONFIG_CHECK_RUNS, status=201, body={"id": 7})
    await github_forge.report_config(PROJECT, SHA, problems_of(INVALID))
    [call] = fake_github.calls
    assert call.body == {
        "name": "Conjunction: .conjunction.yml",
        "head_sha": SHA,
        "status": "completed",
        "conclusion": "failure",
        "output": {
            "title": "Invalid .conjunction.yml: 2 problems",
            "summary": (
                "- line 3, `upstreams.0.project`: not a project name: "
                "the host must be a domain like github.com\n"
                "- line 4, `upstreams.0.branch`: unknown key 'branch', did you mean 'branches'?\n"
                "\n"
                "The last valid configuration stays in force."
            ),
            "annotations": [
                {
                    "path": ".conjunction.yml",
                    "start_line": 3,
                    "end_line": 3,
                    "annotation_level": "failure",
                    "message": "upstreams.0.project: not a project name: "
                    "the host must be a domain like github.com",
                },
                {
                    "path": ".conjunction.yml",
                    "start_line": 4,
                    "end_line": 4,
                    "annotation_level": "failure",
                    "message": "upstreams.0.branch: unknown key 'branch', did you mean 'branches'?",
                },
            ],
        },
    }


async def test_problem_without_a_line_is_annotated_on_line_one(github_forge, fake_github):
    fake_github.expect("POST", CONFIG_CHECK_RUNS, status=201, body={"id": 7})
    await github_forge.report_config(PROJECT, SHA, problems_of("x" * (64 * 1024 + 1)))
    output = fake_github.calls[0].body["output"]
    assert output["summary"].startswith("- file is 65537 bytes, the limit is 65536\n")
    [annotation] = output["annotations"]
    assert (annotation["start_line"], annotation["end_line"]) == (1, 1)
    assert annotation["message"] == "file is 65537 bytes, the limit is 65536"


async def test_annotations_go_in_batches_of_fifty(github_forge, fake_github):
    owners = "".join(f"  - '@user{n}'\n" for n in range(120))
    fake_github.expect("POST", CONFIG_CHECK_RUNS, status=201, body={"id": 7})
    fake_github.expect("PATCH", f"{CONFIG_CHECK_RUNS}/7", body={"id": 7}, times=2)

    await github_forge.report_config(PROJECT, SHA, problems_of(f"owners:\n{owners}"))

    assert [(call.method, call.path) for call in fake_github.calls] == [
        ("POST", CONFIG_CHECK_RUNS),
        ("PATCH", f"{CONFIG_CHECK_RUNS}/7"),
        ("PATCH", f"{CONFIG_CHECK_RUNS}/7"),
    ]
    batches = [call.body["output"]["annotations"] for call in fake_github.calls]
    assert [len(batch) for batch in batches] == [50, 50, 20]
    lines = [annotation["start_line"] for batch in batches for annotation in batch]
    assert lines == list(range(2, 122))
    for call in fake_github.calls:
        assert call.body["output"]["title"] == "Invalid .conjunction.yml: 120 problems"
    assert batches[2][-1]["message"] == (
        "owners.119: '@user119': write users and teams without '@', like alice or acme/team"
    )


async def test_valid_config_passes_the_check(github_forge, fake_github):
    fake_github.expect("POST", CONFIG_CHECK_RUNS, status=201, body={"id": 8})
    await github_forge.report_config(PROJECT, SHA, None)
    [call] = fake_github.calls
    assert call.body == {
        "name": "Conjunction: .conjunction.yml",
        "head_sha": SHA,
        "status": "completed",
        "conclusion": "success",
        "output": {
            "title": "Valid .conjunction.yml",
            "summary": "Conjunction follows this `.conjunction.yml` from this commit on.",
        },
    }


async def test_find_issue_by_its_hidden_marker(github_forge, fake_github):
    marker = "<!-- conjunction:breakage github.com/acme/lib -> github.com/acme/app -->"
    fake_github.expect(
        "GET",
        "/repos/acme/app/issues?labels=conjunction&state=open",
        body=[
            {"number": 3, "body": f"{marker}\nbut a pull request", "pull_request": {}},
            {"number": 4, "body": "another breakage <!-- conjunction:breakage x -> y -->"},
            {"number": 5, "body": f"{marker}\nthe one", "html_url": "https://github.com/i/5"},
        ],
    )
    found = await github_forge.find_issue(PROJECT, marker)
    assert found is not None
    assert (found.number, found.url) == (5, "https://github.com/i/5")


async def test_find_started_looks_for_the_event_in_dispatched_runs(github_forge, fake_github):
    fake_github.expect(
        "GET",
        "/repos/acme/app/actions/runs?event=workflow_dispatch&per_page=50",
        body={
            "workflow_runs": [
                {"id": 1, "display_title": "Conjunction ev0"},
                {"id": 2, "display_title": "Conjunction ev1", "html_url": "https://r/2"},
            ]
        },
    )
    found = await github_forge.find_started(request(workflow="conjunction.yml"))
    assert found is not None
    assert (found.run_id, found.url) == ("2", "https://r/2")


def dispatched_run(run_id: int, created: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": run_id,
        "display_title": "Downstream tests",  # a run-name without the event id
        "path": ".github/workflows/conjunction.yml",
        "head_branch": "trunk",
        "created_at": created,
        "html_url": f"https://r/{run_id}",
        **fields,
    }


@pytest.mark.parametrize(
    ("runs", "found"),
    [
        ([dispatched_run(3, "2026-05-01T12:00:01Z")], "3"),
        ([dispatched_run(3, "2026-05-01T11:59:00Z")], None),  # before the dispatch was sent
        ([dispatched_run(3, "2026-05-01T12:00:01Z", head_branch="main")], None),  # another ref
        ([dispatched_run(3, "2026-05-01T12:00:01Z", path=".github/workflows/ci.yml")], None),
        (  # two could be it: a guess, so neither
            [dispatched_run(3, "2026-05-01T12:00:01Z"), dispatched_run(4, "2026-05-01T12:00:02Z")],
            None,
        ),
    ],
)
async def test_find_started_ties_a_run_that_names_no_event_only_when_it_alone_fits(
    github_forge, fake_github, runs, found
):
    fake_github.expect(
        "GET",
        "/repos/acme/app/actions/runs?event=workflow_dispatch&per_page=50",
        body={"workflow_runs": runs},
    )
    sent = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    asked = replace(request(workflow="conjunction.yml"), sent_at=sent)
    started = await github_forge.find_started(asked)
    assert (started.run_id if started else None) == found


@pytest.mark.parametrize(
    ("answer", "may"),
    [
        ({"permission": "admin", "role_name": "admin"}, True),
        ({"permission": "write", "role_name": "maintain"}, True),
        ({"permission": "write", "role_name": "write"}, True),
        ({"permission": "read", "role_name": "triage"}, False),
        ({"permission": "read", "role_name": "read"}, False),
        ({"permission": "none", "role_name": "none"}, False),
    ],
)
async def test_who_may_write_is_the_collaborator_permission(
    fake_github: FakeGitHub, github_forge: GitHubForge, answer: dict[str, str], may: bool
) -> None:
    fake_github.expect("GET", "/repos/acme/app/collaborators/someone/permission", body=answer)
    assert await github_forge.can_write(PROJECT, "someone") is may


async def test_someone_github_does_not_know_here_may_not_write(
    fake_github: FakeGitHub, github_forge: GitHubForge
) -> None:
    fake_github.expect(
        "GET",
        "/repos/acme/app/collaborators/ghost/permission",
        status=404,
        body={"message": "Not Found"},
    )
    assert await github_forge.can_write(PROJECT, "ghost") is False


async def test_a_pull_request_from_a_fork_merged_since_as_a_change(
    fake_github: FakeGitHub, github_forge: GitHubForge
) -> None:
    pull: dict[str, Any] = fixture("github/pull_request.opened.json")["pull_request"]
    pull["head"]["repo"]["full_name"] = "someone/app"
    pull["base"]["repo"]["full_name"] = "acme/app"
    pull["merged_at"], pull["state"] = "2024-01-02T03:04:05Z", "closed"
    fake_github.expect("GET", "/repos/acme/app/pulls/2", body=pull)
    fake_github.expect("GET", "/repos/acme/app/pulls/3", status=404, body={"message": "Not Found"})

    change = await github_forge.get_change(PROJECT, 2)
    assert change is not None
    assert (change.fork, change.state, change.author) == (True, "merged", "Codertocat")
    assert (change.head_sha, change.base_sha) == (pull["head"]["sha"], pull["base"]["sha"])
    assert change.ref == "refs/pull/2/head"
    assert await github_forge.get_change(PROJECT, 3) is None
