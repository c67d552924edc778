"""What changed since a failing downstream last passed: the culprit range as a pure function,
and the commit lists in the issue, the check summary and the event JSON."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from conjunction.codehost import Commit
from conjunction.engine.changes import Span, culprit
from conjunction.results import Verdict
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs
from tests.test_flow import APP, LIB, index, report_status, upstream_of
from tests.test_pages import BROWSER, Page

NR, AB = Verdict.NEW_REGRESSION, Verdict.ALREADY_BROKEN


def up(base: str | None, head: str | None, total: int | None = 3) -> Span:
    return Span(LIB, base, head, total)


def down(base: str | None, head: str | None, total: int | None = 2) -> Span:
    return Span(APP, base, head, total)


@pytest.mark.parametrize(
    ("upstream", "downstream", "verdict", "confirmed", "sentence"),
    [
        (
            up("a" * 40, "b" * 40),
            down("d" * 40, "d" * 40),
            NR,
            False,
            f"{APP} did not change since it last passed: the culprit is most likely among "
            "the 3 upstream commits `aaaaaaa`…`bbbbbbb`.",
        ),
        (
            up("a" * 40, "b" * 40, total=1),
            down("d" * 40, "e" * 40),
            NR,
            False,
            "Most likely culprit: the 1 upstream commit `aaaaaaa`…`bbbbbbb`, or "
            f"{APP}'s own 2 commits `ddddddd`…`eeeeeee` (both changed since it last passed).",
        ),
        (
            up("a" * 40, "b" * 40, total=None),
            down(None, "e" * 40),
            NR,
            False,
            "Most likely culprit: the upstream commits `aaaaaaa`…`bbbbbbb`.",
        ),
        (
            up("a" * 40, "b" * 40),
            down("d" * 40, "e" * 40),
            NR,
            True,
            f"Confirmed by re-running: {APP} passes against upstream `aaaaaaa` and fails "
            "against `bbbbbbb`, so the culprit is among the 3 upstream commits "
            "`aaaaaaa`…`bbbbbbb`.",
        ),
        (
            up("a" * 40, "a" * 40),
            down("d" * 40, "e" * 40),
            None,
            False,
            f"The upstream did not change since {APP} last passed: the culprit is among "
            f"{APP}'s own 2 commits `ddddddd`…`eeeeeee`.",
        ),
        (
            up("a" * 40, "b" * 40),
            down("d" * 40, "e" * 40),
            AB,
            True,
            f"{APP} fails against the upstream commit it last passed with too, so the upstream "
            f"is not to blame: the culprit is among {APP}'s own 2 commits `ddddddd`…`eeeeeee`.",
        ),
        (up(None, "b" * 40), down(None, None), None, False, None),
        (up("a" * 40, "a" * 40), down("d" * 40, "d" * 40), None, False, None),
    ],
)
def test_the_likely_culprit(
    upstream: Span,
    downstream: Span,
    verdict: Verdict | None,
    confirmed: bool,
    sentence: str | None,
) -> None:
    assert culprit(upstream, downstream, verdict, confirmed=confirmed) == sentence


def history(project: str, prefix: str, count: int) -> list[Commit]:
    return [
        Commit(
            f"{prefix}{n:02x}" * 13 + prefix,
            f"Change {n} | of {project}",
            f"dev{n}",
            f"https://c/{n}",
        )
        for n in range(count)
    ]


async def test_a_failing_downstream_shows_what_changed_since_it_last_passed(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    lib, app = history(LIB, "1", 25), history(APP, "2", 3)
    forge.history = {LIB: lib, APP: app}
    await index(client, LIB, "report:\n  issues: true\n")
    await index(client, APP, upstream_of(LIB))

    for run_id, (lib_commit, app_commit, result) in enumerate(
        [(lib[0], app[0], "success"), (lib[24], app[2], "failure")], start=1
    ):
        await post_github(
            client, "workflow_run", workflow_run("acme/lib", lib_commit.sha, run_id=run_id)
        )
        await run_jobs(client)
        _, request = forge.of("start_pipeline")[-1]
        await report_status(client, request.event_id, result, metadata={"sha": app_commit.sha})
        await run_jobs(client)

    assert [details for _, details in forge.of("commits_between")] == [
        (lib[0].sha, lib[24].sha),
        (app[0].sha, app[2].sha),
    ]
    culprit_line = (
        f"Most likely culprit: the 24 upstream commits `{lib[0].sha[:7]}`…`{lib[24].sha[:7]}`, "
        f"or {APP}'s own 2 commits `{app[0].sha[:7]}`…`{app[2].sha[:7]}` "
        "(both changed since it last passed)."
    )
    [issue] = [issue for issue in forge.issues.values() if issue["project"] == APP]
    body = issue["body"]
    assert culprit_line in body
    assert f"- [`{lib[1].sha[:7]}`](https://c/1) Change 1 \\| of {LIB} — dev1\n" in body
    assert f"- [`{lib[20].sha[:7]}`](https://c/20) Change 20" in body
    assert "Change 21" not in body
    assert f"- and 4 more ([compare](https://{LIB}/compare/{lib[0].sha}...{lib[24].sha}))" in body
    assert f"- [`{app[2].sha[:7]}`](https://c/2) Change 2 \\| of {APP} — dev2\n" in body

    _, (_, check) = forge.of("check")[-1]
    assert "**What changed since they last passed**" in check.summary
    assert f"{LIB}, since {APP} last passed (24 commits, `{lib[0].sha[:7]}`…" in check.summary
    assert f"{APP}: {culprit_line} Its own commits:" in check.summary
    assert "- and 4 more" in check.summary

    _, request = forge.of("start_pipeline")[-1]
    trace = await (await client.get(f"/api/v1/events/{request.event_id}")).json()
    changes = trace["changes"]
    assert changes["culprit"] == culprit_line
    assert (changes["upstream"]["total"], changes["upstream"]["more"]) == (24, 4)
    assert changes["upstream"]["commits"][0] == {
        "sha": lib[1].sha,
        "title": f"Change 1 | of {LIB}",
        "author": "dev1",
        "url": "https://c/1",
    }
    assert [c["sha"] for c in changes["downstream"]["commits"]] == [app[1].sha, app[2].sha]

    for shown in (request.event_id, request.parent_id):  # the run's page and its origin's
        response = await client.get(f"/events/{shown}", headers=BROWSER)
        html = Page(await response.text())
        text = " ".join("".join(html.text).split())
        assert culprit_line.replace("`", "") in text
        span = f"(24 commits, {lib[0].sha[:7]}…{lib[24].sha[:7]})"
        assert f"Upstream {LIB}, since it last passed {span}:" in text
        assert f"{lib[1].sha[:7]} Change 1 | of {LIB} — dev1" in text
        assert "Change 20" in text and "Change 21" not in text
        assert "and 4 more (compare)" in text
        assert f"https://{LIB}/compare/{lib[0].sha}...{lib[24].sha}" in html.links
        assert "https://c/1" in html.links
        assert f"Its own commits (2 commits, {app[0].sha[:7]}…{app[2].sha[:7]}):" in text
        assert f"{app[2].sha[:7]} Change 2 | of {APP} — dev2" in text


async def test_a_private_upstreams_commits_stay_out_of_a_public_downstreams_issue(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    lib = history(LIB, "1", 3)
    forge.history = {LIB: lib}
    await index(client, LIB, "report:\n  issues: true\n", private=True)
    await index(client, APP, upstream_of(LIB))
    for run_id, (lib_commit, result) in enumerate([(lib[0], "success"), (lib[2], "failure")], 1):
        await post_github(
            client, "workflow_run", workflow_run("acme/lib", lib_commit.sha, run_id=run_id)
        )
        await run_jobs(client)
        _, request = forge.of("start_pipeline")[-1]
        await report_status(client, request.event_id, result, metadata={"sha": "d" * 40})
        await run_jobs(client)
    issues = {issue["project"]: issue["body"] for issue in forge.issues.values()}
    assert "Change 1" in issues[LIB]
    assert "Change 1" not in issues[APP]
    trace = await (await client.get(f"/api/v1/events/{request.event_id}")).json()
    assert trace["changes"]["upstream"] is None
    shown = await (await client.get(f"/events/{request.event_id}", headers=BROWSER)).text()
    assert "Change 1" not in shown
    assert "https://c/1" not in shown
