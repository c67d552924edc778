"""Commands in comments (CONTRACT §9), end to end through HTTP from the documented payloads:
GitHub `issue_comment` into the fake GitHub (or the in-memory code host, with the real engine),
GitLab `Note Hook` into the fake GitLab. Pre-merge runs themselves are another part's: here a
recording stand-in says what `/conjunction test` and `retry` asked of them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from conjunction.commands import Command, Place, misplaced, parse
from conjunction.config.settings import Settings
from conjunction.engine import Engine
from conjunction.models import Event, IssueLink
from conjunction.runs import Change, Step
from testkit.memoryhost import MemoryHost
from testkit.payloads import fixture
from tests.conftest import post_github, run_jobs, runtime
from tests.fakegithub import FakeGitHub
from tests.fakegitlab import FakeGitLab, encoded, post_gitlab
from tests.test_flow import APP, events_of
from tests.test_github_e2e import INSTALLATION, started
from tests.test_reruns import app_run, broken_then_rerun

COMMENT_ID = 492700400  # of issue_comment.created.json
HELP_HEADER = "| command | where | what it does |"
NOT_ALLOWED = (
    "Only people who may write to this repository may command Conjunction here (the `write`, "
    "`maintain` or `admin` permission): nothing was run."
)


# the pure part


def test_every_command_line_is_a_command_and_nothing_else_is() -> None:
    body = """Thanks! Let us see what breaks.
/conjunction test app github.com/acme/cli
  /Conjunction RETRY
> /conjunction test quoted-from-someone-else
```
/conjunction test in-a-code-block
```
/conjunctions test not-ours
use /conjunction help for more
/conjunction"""
    assert parse(body) == [
        Command("test", ("app", "github.com/acme/cli")),
        Command("retry"),
        Command(""),
    ]
    assert parse("no commands here") == []


def test_a_command_fits_where_the_table_says() -> None:
    def fits(word: str, place: Place) -> bool:
        return misplaced(Command(word), place) is None

    assert fits("test", Place.CHANGE) and not fits("test", Place.BREAKAGE)
    assert fits("retry", Place.CHANGE) and fits("retry", Place.BREAKAGE)
    assert not fits("retry", Place.ISSUE)
    assert fits("bisect", Place.BREAKAGE) and not fits("bisect", Place.CHANGE)
    assert all(fits("help", place) for place in Place)


# a recording stand-in for pre-merge runs


@dataclass(frozen=True)
class Started:
    downstreams: list[str] = field(default_factory=list)
    reason: str | None = None


@dataclass
class RecordingPremerge:
    answer: Started = field(default_factory=lambda: Started(["github.com/acme/app"]))
    calls: list[tuple[Change, list[str], bool, bool]] = field(default_factory=list)

    async def premerge(
        self,
        change: Change,
        *,
        only: Sequence[str] = (),
        retry: bool = False,
        commanded: bool = False,
    ) -> Started:
        self.calls.append((change, list(only), retry, commanded))
        return self.answer


def recording(client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch) -> RecordingPremerge:
    """The engine's pre-merge runs, recorded instead."""
    fake = RecordingPremerge()
    engine: Engine = runtime(client).engine
    monkeypatch.setattr(engine, "premerge", fake.premerge, raising=False)
    return fake


# GitHub


@pytest.fixture
async def installed(
    aiohttp_client: Any, settings: Settings, app_private_pem: str, fake_github: FakeGitHub
) -> AsyncIterator[tuple[TestClient[Any, Any], FakeGitHub]]:
    """The GitHub App as it runs, installed on acme/lib and acme/app; GitHub is the fake."""
    async with started(aiohttp_client, settings, app_private_pem, fake_github) as client:
        yield client, fake_github


def comment(
    full_name: str,
    number: int,
    body: str,
    *,
    user: str = "Codertocat",
    pull: bool = False,
    action: str = "created",
) -> dict[str, Any]:
    """GitHub's documented issue_comment example, on an issue (or a pull request) of a
    repository, by `user`."""
    payload = fixture(f"github/issue_comment.{action}.json")
    payload["installation"] = {"id": INSTALLATION}
    payload["repository"].update(full_name=full_name, name=full_name.split("/")[1])
    payload["issue"]["number"] = number
    if pull:
        payload["issue"]["pull_request"] = {
            "url": f"https://api.github.com/repos/{full_name}/pulls/{number}",
            "html_url": f"https://github.com/{full_name}/pull/{number}",
        }
    payload["comment"]["body"] = body
    payload["comment"]["user"]["login"] = user
    return payload


def expect_command(gh: FakeGitHub, repo: str, user: str, permission: str, role: str) -> None:
    """The reaction that acknowledges a command, and the question who may write."""
    gh.expect(
        "POST",
        f"/repos/{repo}/issues/comments/{COMMENT_ID}/reactions",
        status=201,
        body={"id": 1, "content": "eyes"},
    )
    gh.expect(
        "GET",
        f"/repos/{repo}/collaborators/{user}/permission",
        body={"permission": permission, "role_name": role, "user": {"login": user}},
    )


def documented_pull(repo: str, number: int) -> dict[str, Any]:
    """GitHub's documented pull request (of pull_request.opened.json) as `GET /pulls/{n}`
    answers it, in repo."""
    pull: dict[str, Any] = fixture("github/pull_request.opened.json")["pull_request"]
    pull.update(number=number, html_url=f"https://github.com/{repo}/pull/{number}")
    for side in ("head", "base"):
        pull[side]["repo"]["full_name"] = repo
    return pull


async def test_a_reader_is_told_who_may_and_nothing_runs(
    installed: tuple[TestClient[Any, Any], FakeGitHub], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, gh = installed
    premerge = recording(client, monkeypatch)
    expect_command(gh, "acme/lib", "reader", "read", "triage")
    gh.expect("POST", "/repos/acme/lib/issues/7/comments", status=201, body={"id": 2})

    payload = comment("acme/lib", 7, "/conjunction test", user="reader", pull=True)
    assert (await post_github(client, "issue_comment", payload)).status == 202
    await run_jobs(client)

    [reaction] = gh.calls_to("POST", "/repos/acme/lib/issues/comments/")
    assert reaction.body == {"content": "eyes"}
    [reply] = gh.calls_to("POST", "/repos/acme/lib/issues/7/comments")
    assert reply.body == {"body": NOT_ALLOWED}
    assert premerge.calls == []
    gh.assert_all_called()


async def test_a_writer_starts_pre_merge_runs_once_however_often_it_is_delivered(
    installed: tuple[TestClient[Any, Any], FakeGitHub], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, gh = installed
    premerge = recording(client, monkeypatch)
    expect_command(gh, "acme/lib", "Codertocat", "write", "maintain")
    pull = documented_pull("acme/lib", 7)
    gh.expect("GET", "/repos/acme/lib/pulls/7", body=pull)

    payload = comment("acme/lib", 7, "LGTM.\n/conjunction test app", pull=True)
    assert (await post_github(client, "issue_comment", payload)).status == 202
    await run_jobs(client)
    # GitHub delivers it again under another delivery id ("Redeliver")
    assert (await post_github(client, "issue_comment", payload)).status == 202
    await run_jobs(client)

    assert premerge.calls == [
        (
            Change(
                project="github.com/acme/lib",
                number=7,
                url="https://github.com/acme/lib/pull/7",
                head_sha=pull["head"]["sha"],
                base_sha=pull["base"]["sha"],
                author="Codertocat",
                fork=False,
                state="open",
                title="Update the README with new information.",
            ),
            ["app"],
            False,
            True,
        )
    ]
    assert len(gh.calls_to("POST", "/repos/acme/lib/issues/comments/")) == 1
    assert gh.calls_to("POST", "/repos/acme/lib/issues/7/comments") == []  # started: no reply
    gh.assert_all_called()


async def test_retry_on_a_pull_request_says_why_nothing_started(
    installed: tuple[TestClient[Any, Any], FakeGitHub], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, gh = installed
    premerge = recording(client, monkeypatch)
    premerge.answer = Started(reason="every row passed or is still running")
    expect_command(gh, "acme/lib", "Codertocat", "admin", "admin")
    gh.expect("GET", "/repos/acme/lib/pulls/7", body=documented_pull("acme/lib", 7))
    gh.expect("POST", "/repos/acme/lib/issues/7/comments", status=201, body={"id": 2})

    await post_github(
        client, "issue_comment", comment("acme/lib", 7, "/conjunction retry", pull=True)
    )
    await run_jobs(client)

    [(_, only, retry, commanded)] = premerge.calls
    assert (only, retry, commanded) == ([], True, True)
    [reply] = gh.calls_to("POST", "/repos/acme/lib/issues/7/comments")
    assert reply.body == {"body": "Nothing was started: every row passed or is still running."}


async def test_an_edited_comment_is_not_a_new_command(
    installed: tuple[TestClient[Any, Any], FakeGitHub], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, gh = installed
    premerge = recording(client, monkeypatch)
    calls = len(gh.calls)
    edited = comment("acme/lib", 7, "/conjunction test", pull=True, action="edited")
    assert (await post_github(client, "issue_comment", edited)).status == 202
    await run_jobs(client)
    assert len(gh.calls) == calls  # no reaction, no question, no reply
    assert premerge.calls == []


async def test_help_and_an_unknown_command_are_answered_in_one_reply(
    installed: tuple[TestClient[Any, Any], FakeGitHub],
) -> None:
    client, gh = installed
    expect_command(gh, "acme/lib", "Codertocat", "write", "write")
    gh.expect("POST", "/repos/acme/lib/issues/7/comments", status=201, body={"id": 2})

    body = "/conjunction help\n/conjunction <b>@everyone</b>"
    await post_github(client, "issue_comment", comment("acme/lib", 7, body, pull=True))
    await run_jobs(client)

    [reply] = gh.calls_to("POST", "/repos/acme/lib/issues/7/comments")
    text = reply.body["body"]
    assert text.startswith("Commands, each on a line of its own in a comment")
    assert HELP_HEADER in text
    assert "| `/conjunction bisect` | a breakage issue |" in text
    # what the comment said is inert where it is shown: no HTML, no mention
    assert text.endswith(
        "**\\<b\\>\\@\u200beveryone\\</b\\>** is not a command of Conjunction: nothing was "
        "run. `/conjunction help` lists the commands."
    )


async def test_bisect_without_a_regression_and_test_on_an_issue_run_nothing(
    installed: tuple[TestClient[Any, Any], FakeGitHub], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, gh = installed
    premerge = recording(client, monkeypatch)
    async with runtime(client).sessions.begin() as session:
        session.add(
            IssueLink(
                upstream="github.com/acme/lib",
                downstream="github.com/acme/app",
                repository="github.com/acme/app",
                number=5,
            )
        )
    expect_command(gh, "acme/app", "Codertocat", "write", "write")
    gh.expect("POST", "/repos/acme/app/issues/5/comments", status=201, body={"id": 2})

    body = "/conjunction bisect\n/conjunction test"
    await post_github(client, "issue_comment", comment("acme/app", 5, body))
    await run_jobs(client)

    [reply] = gh.calls_to("POST", "/repos/acme/app/issues/5/comments")
    assert reply.body["body"] == (
        "This pair has no new regression to find the culprit of: nothing was run.\n\n"
        "`/conjunction test` works only on a pull or merge request of an upstream: nothing was run."
    )
    assert premerge.calls == []
    gh.assert_all_called()


async def test_retry_on_a_breakage_issue_closes_it_when_the_run_passes(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    """APP broke against LIB 2…, a new regression with its issue (#1 in APP). A writer's
    `/conjunction retry` there runs APP again against LIB 2…; its pass replaces the failure
    (a flake), closes the issues and the report on LIB 2… passes."""
    await broken_then_rerun(client, forge)
    forge.writers = {"Codertocat"}
    failure = (await events_of(client, APP))[-1]

    await post_github(client, "issue_comment", comment("acme/app", 1, "/conjunction retry"))
    await run_jobs(client)

    assert forge.of("react") == [(APP, (1, COMMENT_ID, "eyes"))]
    retry = (await events_of(client, APP))[-1]
    assert (retry.step, retry.confirms_id, retry.parent_id) == (
        Step.RETRY,
        failure.id,
        failure.parent_id,
    )
    [(_, (_, said))] = forge.of("reply")
    assert said == (
        "Running github.com/acme/app again against the upstream commit of its latest failure; "
        f"its result replaces the failure's. Trace: https://conjunction.test/events/{retry.id}"
    )
    _, started = forge.of("start_pipeline")[-1]
    assert (started.event_id, started.upstream_sha) == (retry.id, "2" * 40)

    # asked again while it runs: nothing more starts
    again = comment("acme/app", 1, "/conjunction retry")
    again["comment"]["id"] = COMMENT_ID + 1
    await post_github(client, "issue_comment", again)
    await run_jobs(client)
    assert forge.of("reply")[-1][1][1].startswith("github.com/acme/app is already running again")
    assert len(forge.of("start_pipeline")) == 3

    run_id = str(len(forge.of("start_pipeline")))
    await post_github(client, "workflow_run", app_run(run_id, "success", 1))
    await run_jobs(client)

    async with runtime(client).sessions() as session:
        settled = await session.get(Event, failure.id)
    assert settled is not None
    assert (settled.result, settled.change, settled.attempt) == ("success", "flaky", 2)
    assert [issue["state"] for issue in forge.issues.values()] == ["closed", "closed"]
    _, (sha, check) = forge.of("check")[-1]
    assert (sha, check.state, check.description) == (
        "2" * 40,
        "success",
        "1 of 1 downstream projects passed",
    )


async def test_a_breakage_issue_retry_by_a_reader_runs_nothing(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await broken_then_rerun(client, forge)
    starts = len(forge.of("start_pipeline"))
    await post_github(client, "issue_comment", comment("acme/app", 1, "/conjunction retry"))
    await run_jobs(client)
    [(_, (_, said))] = forge.of("reply")
    assert said == NOT_ALLOWED
    assert len(forge.of("start_pipeline")) == starts


# GitLab

LAB = "gitlab-org/gitlab-test"  # the project of the documented Note Hooks


def note_hook(name: str, body: str, *, action: str = "create") -> dict[str, Any]:
    payload = fixture(f"gitlab/{name}")
    payload["object_attributes"].update(note=body, action=action)
    return payload


def expect_gitlab_command(fake: FakeGitLab, noteable: str, note_id: int, level: int) -> None:
    project = f"/projects/{encoded(LAB)}"
    fake.expect(
        "POST",
        f"{project}/{noteable}/notes/{note_id}/award_emoji",
        status=201,
        body={"id": 9, "name": "eyes"},
    )
    # the Note Hook's user id (1): its membership, inherited ones included
    fake.expect(
        "GET",
        f"{project}/members/all/1",
        body={"id": 1, "username": "root", "access_level": level},
    )


async def test_a_gitlab_developer_tests_a_merge_request(
    both: tuple[TestClient[Any, Any], MemoryHost],
    fake_gitlab: FakeGitLab,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, _ = both
    premerge = recording(client, monkeypatch)
    expect_gitlab_command(fake_gitlab, "merge_requests/1", 1244, 30)
    fake_gitlab.expect(
        "GET",
        f"/projects/{encoded(LAB)}/merge_requests/1",
        body={
            "id": 7,
            "iid": 1,
            "title": "Tempora et eos debitis quae laborum et.",
            "state": "opened",
            "sha": "b" * 40,
            "diff_refs": {"base_sha": "a" * 40, "head_sha": "b" * 40, "start_sha": "a" * 40},
            "author": {"id": 8, "username": "user8"},
            "source_project_id": 5,
            "target_project_id": 5,
            "web_url": f"https://gitlab.com/{LAB}/-/merge_requests/1",
        },
    )
    hook = note_hook("note_hook_merge_request.json", "/conjunction test")
    assert (await post_gitlab(client, "Note Hook", hook)).status == 202
    await run_jobs(client)

    [(change, only, retry, commanded)] = premerge.calls
    assert change == Change(
        project=f"gitlab.com/{LAB}",
        number=1,
        url=f"https://gitlab.com/{LAB}/-/merge_requests/1",
        head_sha="b" * 40,
        base_sha="a" * 40,
        author="user8",
        fork=False,
        state="open",
        title="Tempora et eos debitis quae laborum et.",
    )
    assert (only, retry, commanded) == ([], False, True)
    [award] = fake_gitlab.calls_to(
        "POST", f"/projects/{encoded(LAB)}/merge_requests/1/notes/1244/award_emoji"
    )
    assert award.body == {"name": "eyes"}


async def test_a_gitlab_reporter_is_refused_and_an_edited_note_is_no_command(
    both: tuple[TestClient[Any, Any], MemoryHost],
    fake_gitlab: FakeGitLab,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, _ = both
    premerge = recording(client, monkeypatch)
    expect_gitlab_command(fake_gitlab, "merge_requests/1", 1244, 20)
    notes = f"/projects/{encoded(LAB)}/merge_requests/1/notes"
    fake_gitlab.expect("POST", notes, status=201, body={"id": 1300})

    hook = note_hook("note_hook_merge_request.json", "/conjunction test")
    await post_gitlab(client, "Note Hook", hook)
    edited = note_hook("note_hook_merge_request.json", "/conjunction test", action="update")
    edited["object_attributes"]["id"] = 1250
    await post_gitlab(client, "Note Hook", edited)
    await run_jobs(client)

    [reply] = fake_gitlab.calls_to("POST", notes)
    assert reply.body == {
        "body": "Only people who may write to this repository may command Conjunction here "
        "(the Developer role or higher): nothing was run."
    }
    assert premerge.calls == []


async def test_help_on_a_gitlab_issue(
    both: tuple[TestClient[Any, Any], MemoryHost], fake_gitlab: FakeGitLab
) -> None:
    client, _ = both
    expect_gitlab_command(fake_gitlab, "issues/17", 1241, 40)
    notes = f"/projects/{encoded(LAB)}/issues/17/notes"
    fake_gitlab.expect("POST", notes, status=201, body={"id": 1301})

    await post_gitlab(client, "Note Hook", note_hook("note_hook_issue.json", "/conjunction help"))
    await run_jobs(client)

    [reply] = fake_gitlab.calls_to("POST", notes)
    assert HELP_HEADER in reply.body["body"]
