"""Gitea and Forgejo pull requests (CONTRACT §8, §11) and commands in their comments (§9), end
to end through HTTP: Gitea's `pull_request` and `issue_comment` payloads in, the calls the fake
Gitea receives and what the downstream on GitHub (in memory) is started with out."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from conjunction.runs import Change
from testkit.memoryhost import MemoryHost
from tests.conftest import run_jobs, runtime
from tests.fakegitea import FakeGitea, fixture, post_gitea, repo_path
from tests.test_commands import HELP_HEADER, recording
from tests.test_flow import report_status

LIB, APP = "acme/lib", "github.com/acme/app"
REPO = repo_path(LIB)
BASE, HEAD = "b" * 40, "c" * 40
PR_URL = f"https://codeberg.org/{LIB}/pulls/7"
NOT_ALLOWED = (
    "Only people who may write to this repository may command Conjunction here (the `write`, "
    "`admin` or `owner` permission): nothing was run."
)


def pull_request(action: str = "opened", *, head: str = HEAD, fork: bool = False) -> dict[str, Any]:
    """The `pull_request` fixture, pointed at acme/lib's pull request 7 by libby."""
    payload = copy.deepcopy(fixture("pull_request.json"))
    payload.update(action=action, number=7)
    payload["repository"]["full_name"] = LIB
    pull = payload["pull_request"]
    pull.update(number=7, html_url=PR_URL, title="Faster <parsing>")
    pull["user"]["login"] = "libby"
    pull["head"]["sha"], pull["base"]["sha"] = head, BASE
    pull["base"]["repo"]["full_name"] = LIB
    pull["head"]["repo"]["full_name"] = "stranger/lib" if fork else LIB
    return payload


def issue_comment(
    body: str, *, number: int = 7, on_pull: bool = True, action: str = "created"
) -> dict[str, Any]:
    """The `issue_comment` fixture: comment 3 by `gitea` on acme/lib's issue or pull request."""
    payload = copy.deepcopy(fixture("issue_comment.json"))
    payload.update(action=action, is_pull=on_pull)
    payload["repository"]["full_name"] = LIB
    payload["issue"].update(number=number, html_url=f"https://codeberg.org/{LIB}/issues/{number}")
    if not on_pull:
        payload["issue"]["pull_request"] = None  # as Gitea sends an issue's
    payload["comment"]["body"] = body
    return payload


def expect_permission(fake: FakeGitea, user: str, permission: str) -> None:
    fake.expect(
        "GET",
        f"{REPO}/collaborators/{user}/permission",
        body={"permission": permission, "role_name": permission},
    )


def expect_reaction(fake: FakeGitea, comment_id: int = 3) -> None:
    fake.expect(
        "POST",
        f"{REPO}/issues/comments/{comment_id}/reactions",
        status=201,
        body={"content": "eyes"},
    )


async def joined(client: TestClient[Any, Any], fake: FakeGitea, github: MemoryHost) -> None:
    """acme/lib on codeberg.org runs its pull requests of members against app on GitHub."""
    fake.expect_index(
        LIB,
        "owners: [libby]\npremerge: {when: members}\nreport: {required: ['github.com/acme/*']}\n",
    )
    github.files[(APP, ".conjunction.yml")] = (
        "upstreams:\n  - project: codeberg.org/acme/lib\n    premerge: true\n"
    )
    for name in (f"codeberg.org/{LIB}", APP):
        assert await runtime(client).engine.refresh_project(name) is None


async def test_a_gitea_pull_request_is_run_against_its_downstreams(
    gitea_both: tuple[TestClient[Any, Any], MemoryHost], fake_gitea: FakeGitea
) -> None:
    client, github = gitea_both
    await joined(client, fake_gitea, github)
    expect_permission(fake_gitea, "libby", "write")
    fake_gitea.expect_status(LIB, HEAD)

    assert (await post_gitea(client, "pull_request", pull_request())).status == 202
    await run_jobs(client)

    head, baseline = (request for _, request in github.of("start_pipeline"))
    assert (head.upstream, head.upstream_sha, head.upstream_ref) == (
        f"codeberg.org/{LIB}",
        HEAD,
        "refs/pull/7/head",
    )
    assert (head.change, head.kind) == (PR_URL, "premerge")
    assert (baseline.upstream_sha, baseline.step) == (BASE, "baseline")
    running = fake_gitea.statuses(LIB, HEAD)[-1]
    assert (running["context"], running["state"]) == ("conjunction/premerge", "pending")

    # the head's run fails, the base's passes: the pull request breaks app; its comment goes
    # to the open pull request whose head the commit is (Gitea's commit-to-pull route knows only
    # merged ones)
    fake_gitea.expect("GET", f"{REPO}/commits/{HEAD}/pull", status=404, body={"message": "no"})
    fake_gitea.expect(
        "GET",
        f"{REPO}/pulls",
        query={"state": "open"},
        body=[{"number": 6, "head": {"sha": "d" * 40}}, {"number": 7, "head": {"sha": HEAD}}],
    )
    fake_gitea.expect("GET", f"{REPO}/issues/7/comments", body=[])
    fake_gitea.expect("POST", f"{REPO}/issues/7/comments", status=201, body={"id": 11})
    assert (await report_status(client, head.event_id, "failure")).status == 202
    assert (await report_status(client, baseline.event_id, "success")).status == 202
    await run_jobs(client)

    final = fake_gitea.statuses(LIB, HEAD)[-1]
    assert (final["context"], final["state"]) == ("conjunction/premerge", "failure")
    assert final["target_url"] == "https://conjunction.test/changes/codeberg.org/acme/lib/7"
    [comment] = fake_gitea.calls_to("POST", f"{REPO}/issues/7/comments")
    assert "| github.com/acme/app | ❌ breaks |" in comment.body["body"]

    # an edit of its title or a new label is no push: nothing more runs
    for action in ("edited", "label_updated"):
        assert (await post_gitea(client, "pull_request", pull_request(action))).status == 202
    await run_jobs(client)
    assert len(github.of("start_pipeline")) == 2


async def test_a_fork_s_pull_request_starts_nothing_by_itself(
    gitea_both: tuple[TestClient[Any, Any], MemoryHost], fake_gitea: FakeGitea
) -> None:
    client, github = gitea_both
    await joined(client, fake_gitea, github)

    assert (await post_gitea(client, "pull_request", pull_request(fork=True))).status == 202
    await run_jobs(client)

    assert github.of("start_pipeline") == []
    assert fake_gitea.statuses(LIB, HEAD) == []


async def test_a_merged_pull_request_starts_nothing(
    gitea_both: tuple[TestClient[Any, Any], MemoryHost], fake_gitea: FakeGitea
) -> None:
    client, github = gitea_both
    await joined(client, fake_gitea, github)
    merged = pull_request("closed")
    merged["pull_request"].update(state="closed", merged=True)

    assert (await post_gitea(client, "pull_request", merged)).status == 202
    await run_jobs(client)

    assert github.of("start_pipeline") == []


async def test_a_gitea_writer_tests_a_pull_request(
    gitea_both: tuple[TestClient[Any, Any], MemoryHost],
    fake_gitea: FakeGitea,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, _ = gitea_both
    premerge = recording(client, monkeypatch)
    expect_reaction(fake_gitea)
    expect_permission(fake_gitea, "gitea", "write")
    fake_gitea.expect("GET", f"{REPO}/pulls/7", body=pull_request(fork=True)["pull_request"])

    payload = issue_comment("Looks good.\n/conjunction test app")
    assert (await post_gitea(client, "issue_comment", payload, forgejo=True)).status == 202
    # Gitea delivers it again under another id: the comment is acted on once
    assert (await post_gitea(client, "issue_comment", payload)).status == 202
    await run_jobs(client)

    [(change, only, retry, commanded)] = premerge.calls
    assert change == Change(
        project=f"codeberg.org/{LIB}",
        number=7,
        url=PR_URL,
        head_sha=HEAD,
        base_sha=BASE,
        author="libby",
        fork=True,
        state="open",
        title="Faster <parsing>",
    )
    assert (only, retry, commanded) == (["app"], False, True)
    [reaction] = fake_gitea.calls_to("POST", f"{REPO}/issues/comments/3/reactions")
    assert reaction.body == {"content": "eyes"}


async def test_a_gitea_reader_is_refused_and_an_edited_comment_is_no_command(
    gitea_both: tuple[TestClient[Any, Any], MemoryHost],
    fake_gitea: FakeGitea,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, _ = gitea_both
    premerge = recording(client, monkeypatch)
    expect_reaction(fake_gitea)
    expect_permission(fake_gitea, "gitea", "read")
    fake_gitea.expect("POST", f"{REPO}/issues/7/comments", status=201, body={"id": 12})

    await post_gitea(client, "issue_comment", issue_comment("/conjunction test"))
    edited = issue_comment("/conjunction test", action="edited")
    edited["comment"]["id"] = 4
    await post_gitea(client, "issue_comment", edited)
    await run_jobs(client)

    [reply] = fake_gitea.calls_to("POST", f"{REPO}/issues/7/comments")
    assert reply.body == {"body": NOT_ALLOWED}
    assert premerge.calls == []


async def test_help_on_a_gitea_issue(
    gitea_both: tuple[TestClient[Any, Any], MemoryHost], fake_gitea: FakeGitea
) -> None:
    client, _ = gitea_both
    expect_reaction(fake_gitea)
    expect_permission(fake_gitea, "gitea", "admin")
    fake_gitea.expect("POST", f"{REPO}/issues/17/comments", status=201, body={"id": 13})

    payload = issue_comment("/conjunction help\n/conjunction test", number=17, on_pull=False)
    assert (await post_gitea(client, "issue_comment", payload)).status == 202
    await run_jobs(client)

    [reply] = fake_gitea.calls_to("POST", f"{REPO}/issues/17/comments")
    assert HELP_HEADER in reply.body["body"]
    assert "`/conjunction test` works only on a pull or merge request" in reply.body["body"]
