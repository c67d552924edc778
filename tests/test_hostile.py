"""Hostile downstreams and hostile input: what a stranger's CI, commits and requests can make
Conjunction post or hold — each finding as the user meets it (the body posted to the forge, the
HTTP answer, the job's outcome)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from markdown_it import MarkdownIt
from sqlalchemy import select

from conjunction.codehost import Commit, IssueRef
from conjunction.forges.github.forge import GitHubForge
from conjunction.models import Event, Job
from conjunction.queue import JobQueue, Worker
from conjunction.web.admin import LOGIN_BODY_LIMIT
from conjunction.web.api import STATUS_BODY_LIMIT
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.fakegithub import FakeGitHub
from tests.test_flow import APP, LIB, index, report_status, start_one, upstream_of
from tests.test_intake import port_of, raw_answer, request_head
from tests.test_markdown_fuzz import read
from tests.test_queue import Sessions, database

PHISHING_URL = (
    "https://ci.example/9) [Security notice](https://evil.example/login) @acme/security (x"
)
PHISHING_TITLE = "Tidy [Click](https://evil.example/phish) ![](https://evil.example/p.png)"
HEADING_TITLE = "x\r\r# INJECTED"


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    async with database(database_url) as opened:
        yield opened


def history(prefix: str, titles: list[str]) -> list[Commit]:
    return [
        Commit(f"{prefix}{n:02x}" * 13 + prefix, title, f"dev{n}", f"https://c/{prefix}{n}")
        for n, title in enumerate(titles)
    ]


async def pass_then_fail(
    client: TestClient[Any, Any], forge: MemoryHost, *, url: str, titles: list[str]
) -> dict[str, str]:
    """LIB's commits (with `titles`) pass APP, then its last one breaks it, reported with
    `url`: every text posted about it, by where it was posted."""
    lib = history("1", ["Start", *titles])
    forge.history = {LIB: lib}
    await index(client, LIB, "owners: [libby]\nreport:\n  issues: true\n")
    await index(client, APP, upstream_of(LIB, owners="[alice]"))
    for run_id, (commit, result, run_url) in enumerate(
        [(lib[0], "success", "https://ci.example/1"), (lib[-1], "failure", url)], start=1
    ):
        await post_github(
            client, "workflow_run", workflow_run("acme/lib", commit.sha, run_id=run_id)
        )
        await run_jobs(client)
        _, request = forge.of("start_pipeline")[-1]
        answer = await report_status(client, request.event_id, result, url=run_url)
        assert answer.status == 202
        await run_jobs(client)
    _, (_, check) = forge.of("check")[-1]
    [(_, (_, comment))] = forge.of("comment_on_change")[-1:]
    posted = {"check summary": check.summary, "pull request comment": comment}
    for issue in forge.issues.values():
        posted[f"issue in {issue['project']}"] = issue["body"]
    assert set(posted) == {
        "check summary",
        "pull request comment",
        f"issue in {APP}",
        f"issue in {LIB}",
    }
    return posted


def text_of(body: str) -> str:
    """What a reader sees of `body`: its text, markup and zero-width spaces gone."""
    html = MarkdownIt("gfm-like").render(body)
    return re.sub(r"<[^>]+>", "", html).replace("\u200b", "").replace("&amp;", "&")


async def test_a_hostile_pipeline_url_is_text_wherever_it_is_posted(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    posted = await pass_then_fail(client, forge, url=PHISHING_URL, titles=["Fix"])
    for where, body in posted.items():
        seen = read(body)
        assert not [link for link in seen["links"] if "evil" in link or "ci.example/9" in link], (
            where
        )
        assert "acme/security" not in seen["mentions"], where
        assert set(seen["mentions"]) <= {"alice", "libby"}, where
        assert "https://ci.example/9) [Security notice](https://evil.example/login)" in text_of(
            body
        ), f"{where}: shown as text"


async def test_a_hostile_commit_title_is_text_wherever_it_is_posted(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    posted = await pass_then_fail(
        client, forge, url="https://ci.example/2", titles=[PHISHING_TITLE, HEADING_TITLE]
    )
    for where, body in posted.items():
        if where == "pull request comment" or where.startswith("issue in") or "Tidy" in body:
            seen = read(body)
            assert not [link for link in seen["links"] if "evil" in link], where
            assert seen["images"] == 0, where
            assert "INJECTED" not in "".join(seen["headings"]), where
    issue = posted[f"issue in {APP}"]
    assert "Tidy [Click](https://evil.example/phish) ![](https://evil.example/p.png)" in text_of(
        issue
    )
    assert "x  # INJECTED" in text_of(issue)


async def test_an_owner_list_past_githubs_limit_is_cut_with_a_link_to_the_event(
    fake_github: FakeGitHub,
) -> None:
    forge = GitHubForge(_clients(fake_github))
    body = "<!-- marker -->\n" + "".join(f"@owner{n} " * 10 + "\n" for n in range(1_000))
    assert len(body) > 65_536
    fake_github.expect("GET", "/repos/acme/app/labels/conjunction", body={"name": "conjunction"})
    fake_github.expect(
        "POST",
        "/repos/acme/app/issues",
        status=201,
        body={"number": 1, "html_url": "https://github.com/acme/app/issues/1"},
    )
    await forge.open_issue(APP, "t" * 400, body, ["conjunction"])
    [call] = fake_github.calls_to("POST", "/repos/acme/app/issues")
    posted = call.body["body"]
    assert len(posted) <= 65_536 and posted.startswith("<!-- marker -->\n")
    assert posted.endswith(" more lines\n") and "\n\n… and " in posted
    assert len(call.body["title"]) <= 256


async def test_a_body_rendered_past_the_limit_names_what_was_left_out_and_links_the_event() -> None:
    from conjunction import texts
    from conjunction.engine.issues import Owner

    owners = [Owner(f"o{n}" + "x" * 30, True, "github.com") for n in range(200)]
    titles = [{"sha": "a" * 40, "title": "t" * 120, "author": "x", "url": None}] * 20
    body = texts.render(
        "issue_body.md",
        marker="<!-- m -->",
        upstream=LIB,
        upstream_private=False,
        downstream=APP,
        sha="a" * 40,
        hint="h" * 100_000,
        culprit="c" * 100_000,
        run_url=None,
        compare_url=None,
        trace_url="https://conjunction.test/events/1",
        upstream_commits={
            "project": LIB,
            "base": "b",
            "head": "h",
            "total": 20,
            "more": 0,
            "url": None,
            "commits": titles,
        },
        downstream_commits=None,
        downstream_owners=owners,
        upstream_owners=owners,
    )
    assert len(body) <= 65_536
    assert "and 150 more" in body  # owners past the first 50 are counted
    assert body.count("@o") <= 100


async def test_a_write_github_refuses_ends_its_job_at_once_with_the_reason(
    sessions: Sessions, fake_github: FakeGitHub
) -> None:
    forge = GitHubForge(_clients(fake_github))
    fake_github.expect("GET", "/repos/acme/app/labels/conjunction", body={"name": "conjunction"})
    fake_github.expect(
        "POST",
        "/repos/acme/app/issues",
        status=422,
        body={
            "message": "Validation Failed",
            "errors": [
                {
                    "resource": "Issue",
                    "field": "body",
                    "code": "custom",
                    "message": "body is too long (maximum is 65536 characters)",
                }
            ],
        },
    )

    async def open_issue(payload: dict[str, Any]) -> None:
        await forge.open_issue(APP, "title", "body", ["conjunction"])

    worker = Worker(JobQueue(sessions, max_attempts=8, base_delay=0), {"issue": open_issue}, "w1")
    async with sessions.begin() as session:
        await JobQueue.enqueue(session, "issue", {})
    assert await worker.run_until_idle() == 1
    async with sessions() as session:
        [job] = await session.scalars(select(Job))
    assert (job.state, job.attempts) == ("dead", 1)
    assert job.last_error is not None
    assert "GitHub refused POST /repos/{owner}/{repo}/issues: Validation Failed" in job.last_error
    assert "body is too long" in job.last_error


async def test_one_breakage_issue_refused_does_not_stop_the_other(
    client: TestClient[Any, Any], forge: MemoryHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conjunction.forges.github.client import RequestRefused

    opened = forge.open_issue

    async def refuse_in_the_downstream(project: str, *args: Any) -> IssueRef:
        if project == APP:
            raise RequestRefused(422, "GitHub refused POST /repos/{owner}/{repo}/issues")
        return await opened(project, *args)

    monkeypatch.setattr(forge, "open_issue", refuse_in_the_downstream)
    await index(client, LIB, "report:\n  issues: true\n")
    await index(client, APP, upstream_of(LIB))
    for run_id, (sha, result) in enumerate([("1" * 40, "success"), ("2" * 40, "failure")], 1):
        await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=run_id))
        await run_jobs(client)
        _, request = forge.of("start_pipeline")[-1]
        await report_status(client, request.event_id, result)
        await run_jobs(client)
    assert [issue["project"] for issue in forge.issues.values()] == [LIB]


async def test_login_reads_at_most_a_forms_worth_of_body(client: TestClient[Any, Any]) -> None:
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    head = request_head("/login", form_type, 24 * 1024 * 1024)
    status, _, content = await raw_answer(port_of(client), head)
    assert (status, json.loads(content)) == (
        413,
        {"error": f"request body too large: the limit is {LOGIN_BODY_LIMIT} bytes"},
    )
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:  # no length: the size shows only while reading
        nonlocal sent
        for _ in range(24 * 16):
            sent += 64 * 1024
            yield b"x" * (64 * 1024)

    streamed = await client.post("/login", data=chunks(), headers=form_type)
    assert streamed.status == 413
    assert sent < 24 * 1024 * 1024  # refused long before the end
    assert (await streamed.json())["error"] == (
        f"request body too large: the limit is {LOGIN_BODY_LIMIT} bytes"
    )
    form = await client.post("/login", data={"token": "wrong", "next": "/"})
    assert form.status in (401, 404)  # read and answered as a form


async def test_status_metadata_is_bounded_and_typed(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    event_id = (await start_one(client, forge)).event_id
    token = {"Authorization": f"Bearer {runtime(client).engine.signer.token(event_id)}"}
    path = f"/api/v1/events/{event_id}/status"

    huge = json.dumps({"result": "success", "metadata": {"log": "x" * 20_000_000}})
    answer = await client.post(path, data=huge, headers=token)
    assert answer.status == 413
    assert (await answer.json())["error"] == (
        f"request body too large: the limit is {STATUS_BODY_LIMIT} bytes"
    )

    over = await report_status(client, event_id, "success", metadata={"log": "x" * 17_000})
    assert (over.status, await over.json()) == (
        422,
        {"error": "metadata: larger than 16 KB as JSON"},
    )
    wrong = await report_status(client, event_id, "success", metadata={"sha": 12345, "ref": ["x"]})
    assert (wrong.status, await wrong.json()) == (
        422,
        {
            "error": "metadata.sha: Input should be a valid string; "
            "metadata.ref: Input should be a valid string"
        },
    )
    for metadata, error in [
        ({"sha": "not-hex"}, "metadata.sha: not a commit id (7 to 64 hexadecimal digits)"),
        ({"attempt": 0}, "metadata.attempt: an integer of at least 1"),
        ({"attempt": "2"}, "metadata.attempt: an integer of at least 1"),
        ({"summary": 12}, "metadata.summary: Input should be a valid string"),
        ({"summary": ["FAILED"]}, "metadata.summary: Input should be a valid string"),
        ({"log_url": "javascript:alert(1)"}, "metadata.log_url: not an http(s) URL"),
    ]:
        answer = await report_status(client, event_id, "failure", metadata=metadata)
        assert (answer.status, await answer.json()) == (422, {"error": error})
    for url in ["javascript:alert(1)", "ci.example/1", "ftp://ci.example/1"]:
        answer = await report_status(client, event_id, "failure", url=url)
        assert (answer.status, await answer.json()) == (422, {"error": "url: not an http(s) URL"})

    known = {
        "sha": "b" * 40,
        "ref": "refs/heads/main",
        "attempt": 2,
        "summary": "FAILED test_x",
        "log_url": "https://ci.example/log",
    }
    answer = await report_status(
        client, event_id, "failure", metadata={**known, "extra": {"deep": ["x" * 100]}}
    )
    assert answer.status == 202
    async with runtime(client).sessions() as session:
        stored = await session.get(Event, event_id)
    assert stored is not None
    assert stored.ci_metadata == known  # the other field is not kept
    assert (stored.sha, stored.ref) == ("b" * 40, "main")


def _clients(gh: FakeGitHub) -> Any:
    async def clients(project: str) -> FakeGitHub:
        return gh

    return clients
