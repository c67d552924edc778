"""The GitHub adapter as a code host: project info, the config check run, finding issues."""

from __future__ import annotations

import pytest

from bot.forges.github.forge import GitHubForge
from config.repo_config import ConfigError, parse_config
from tests.fakegithub import FakeGitHub

PROJECT = "github.com/Codertocat/Hello-World"
SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
CHECK_RUNS = "/repos/Codertocat/Hello-World/check-runs"
INVALID = "owners: [alice]\nupstreams:\n  - project: not-a-project\n    branch: [main]\n"


@pytest.fixture
def github(fake_github: FakeGitHub) -> GitHubForge:
    async def clients(project: str) -> FakeGitHub:
        return fake_github

    return GitHubForge(clients)


def problems_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        parse_config(text)
    return raised.value


async def test_project_info(github: GitHubForge, fake_github: FakeGitHub) -> None:
    fake_github.expect(
        "GET", "/repos/Codertocat/Hello-World", body={"default_branch": "trunk", "private": True}
    )
    info = await github.project_info(PROJECT)
    assert (info.default_branch, info.private) == ("trunk", True)


async def test_invalid_config_fails_a_check_run_with_annotations(
    github: GitHubForge, fake_github: FakeGitHub
) -> None:
    fake_github.expect("POST", CHECK_RUNS, status=201, body={"id": 7})
    await github.report_config(PROJECT, SHA, problems_of(INVALID))
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


async def test_problem_without_a_line_is_annotated_on_line_one(
    github: GitHubForge, fake_github: FakeGitHub
) -> None:
    fake_github.expect("POST", CHECK_RUNS, status=201, body={"id": 7})
    await github.report_config(PROJECT, SHA, problems_of("x" * (64 * 1024 + 1)))
    output = fake_github.calls[0].body["output"]
    assert output["summary"].startswith("- file is 65537 bytes, the limit is 65536\n")
    [annotation] = output["annotations"]
    assert (annotation["start_line"], annotation["end_line"]) == (1, 1)
    assert annotation["message"] == "file is 65537 bytes, the limit is 65536"


async def test_annotations_go_in_batches_of_fifty(
    github: GitHubForge, fake_github: FakeGitHub
) -> None:
    owners = "".join(f"  - '@user{n}'\n" for n in range(120))
    fake_github.expect("POST", CHECK_RUNS, status=201, body={"id": 7})
    fake_github.expect("PATCH", f"{CHECK_RUNS}/7", body={"id": 7}, times=2)

    await github.report_config(PROJECT, SHA, problems_of(f"owners:\n{owners}"))

    assert [(call.method, call.path) for call in fake_github.calls] == [
        ("POST", CHECK_RUNS),
        ("PATCH", f"{CHECK_RUNS}/7"),
        ("PATCH", f"{CHECK_RUNS}/7"),
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


async def test_valid_config_passes_the_check(github: GitHubForge, fake_github: FakeGitHub) -> None:
    fake_github.expect("POST", CHECK_RUNS, status=201, body={"id": 8})
    await github.report_config(PROJECT, SHA, None)
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


async def test_find_issue_by_its_hidden_marker(
    github: GitHubForge, fake_github: FakeGitHub
) -> None:
    marker = "<!-- conjunction:breakage github.com/acme/lib -> github.com/acme/app -->"
    fake_github.expect(
        "GET",
        "/repos/Codertocat/Hello-World/issues?labels=conjunction&state=open",
        body=[
            {"number": 3, "body": f"{marker}\nbut a pull request", "pull_request": {}},
            {"number": 4, "body": "another breakage <!-- conjunction:breakage x -> y -->"},
            {"number": 5, "body": f"{marker}\nthe one", "html_url": "https://github.com/i/5"},
        ],
    )
    found = await github.find_issue(PROJECT, marker)
    assert found is not None
    assert (found.number, found.url) == (5, "https://github.com/i/5")


async def test_find_started_looks_for_the_event_in_dispatched_runs(
    github: GitHubForge, fake_github: FakeGitHub
) -> None:
    from bot.runner import TriggerRequest
    from config.repo_config import Trigger

    event_id = "e" * 32
    fake_github.expect(
        "GET",
        "/repos/Codertocat/Hello-World/actions/runs?event=workflow_dispatch&per_page=50",
        body={
            "workflow_runs": [
                {"id": 1, "display_title": "Conjunction " + "f" * 32},
                {"id": 2, "display_title": f"Conjunction {event_id}", "html_url": "https://r/2"},
            ]
        },
    )
    request = TriggerRequest(
        event_id=event_id,
        project=PROJECT,
        upstream="github.com/acme/lib",
        upstream_sha=SHA,
        upstream_ref="main",
        upstream_url=None,
        callback_url="https://conjunction.test/cb",
        callback_token="t",
        trigger=Trigger(workflow="conjunction.yml"),
        default_branch="main",
    )
    found = await github.find_started(request)
    assert found is not None
    assert (found.run_id, found.url) == ("2", "https://r/2")
