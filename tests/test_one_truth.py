"""No page contradicts another: for one upstream commit, the commit status, the check run, the
home page (its table and its recent events), the event page, the project page, the badge and the
API say the same count in the same words; and a failure being confirmed by a re-run is
`confirming` on each of them, never broken or failed."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from conjunction.codehost import CommitReport
from conjunction.runner import TriggerRequest
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs
from tests.test_dashboard import page
from tests.test_flow import APP, LIB, TOOL, index, report_status, upstream_of
from tests.test_pages import Tree

CALM = "A failure that may be a flake or older breakage is run again before anyone is blamed."
DEEP = "github.com/acme/deep"  # APP's own downstream: deeper in LIB's tree
SHA = "1" * 40


def posted(forge: MemoryHost, kind: str, sha: str) -> CommitReport:
    reports = [report for _, (found, report) in forge.of(kind) if found == sha]
    return reports[-1]


def aggregate_text(html: str) -> str:
    [found] = [el for el in Tree(html).root.iter() if "aggregate" in el.classes]
    return " ".join(found.text().split())


async def lib_succeeds(client: TestClient[Any, Any], forge: MemoryHost) -> dict[str, str]:
    """LIB with downstreams APP and TOOL, and APP with its own downstream DEEP; LIB's commit
    succeeds; returns the trigger event ids by project."""
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    await index(client, TOOL, upstream_of(LIB))
    await index(client, DEEP, upstream_of(APP))
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA))
    await run_jobs(client)
    return {project: request.event_id for project, request in forge.of("start_pipeline")}


async def test_every_page_the_badge_the_api_and_the_report_say_the_same_count(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    started = await lib_succeeds(client, forge)
    await report_status(client, started[APP], "success")
    await report_status(client, started[TOOL], "success")
    await run_jobs(client)
    deep = {project: request.event_id for project, request in forge.of("start_pipeline")}[DEEP]
    await report_status(client, deep, "failure")
    await run_jobs(client)

    status, check = posted(forge, "status", SHA), posted(forge, "check", SHA)
    words = "2 of 2 downstream projects passed (2 of 3 in the tree)"
    assert status.description == f"{words}, 1 failed; none blamed on this commit"
    assert (status.state, check.conclusion) == ("success", "neutral")
    assert check.title == status.description, "the status and the check say the same"

    home = await page(client, "/")
    assert " ".join(home.text).count(status.description) == 2, "the table and recent events"
    origin = status.target_url.rsplit("/", 1)[1]
    event = await client.get(f"/events/{origin}")
    assert aggregate_text(await event.text()) == status.description

    short = "2 of 2 passed (2 of 3 in the tree)"
    project = await page(client, f"/projects/{LIB}")
    assert short in " ".join(project.text), "the matrix"
    badge = await (await client.get(f"/badges/{LIB}.json")).json()
    assert badge["message"] == short
    api = await (await client.get(f"/api/v1/projects/{LIB}")).json()
    assert api["latest_downstream_results"]["words"] == short
    assert api["latest_downstream_results"]["tree"]["total"] == 3


async def a_failure_run_again(
    client: TestClient[Any, Any], forge: MemoryHost
) -> tuple[TriggerRequest, TriggerRequest]:
    """APP, which confirms failures, passes against LIB's first commit and fails against its
    second: the failure's run and its re-run, just started."""
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB).replace(LIB, f"{LIB}\n    confirm: true"))
    for sha, result in (("1" * 40, "success"), ("2" * 40, "failure")):
        await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=int(sha[0])))
        await run_jobs(client)
        [failure] = [r.event_id for p, r in forge.of("start_pipeline") if r.upstream_sha == sha]
        await report_status(client, failure, result)
        await run_jobs(client)
    [first, rerun] = [r for _, r in forge.of("start_pipeline") if r.upstream_sha == "2" * 40]
    return first, rerun


async def test_a_failure_being_confirmed_is_confirming_on_every_page_and_in_the_api(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    first, rerun = await a_failure_run_again(client, forge)
    assert rerun.step == "confirm", "the failure is being run again"

    status = posted(forge, "status", "2" * 40)
    assert (status.state, status.description) == (
        "pending",
        "0 of 1 downstream projects passed, confirming 1 failure",
    )
    html = await (await client.get("/", headers={"Accept": "text/html"})).text()
    text = " ".join(Tree(html).root.text().split())
    assert "Current breakages" not in text
    assert "broken" not in text
    assert "fails against" not in text
    assert f"Being confirmed {CALM} {APP} against {LIB} — confirming" in text
    assert re.search(rf"{re.escape(APP)} confirming", text), "its tag in the table"
    assert status.description in text

    trail = await (await client.get(f"/events/{first.event_id}")).text()
    assert "confirming" in aggregate_text(trail)
    assert "failed" not in aggregate_text(trail)
    project = await page(client, f"/projects/{LIB}")
    assert "0 of 1 passed, 1 confirming" in " ".join(project.text)
    badge = await (await client.get(f"/badges/{LIB}.json")).json()
    assert (badge["message"], badge["color"]) == ("0 of 1 passed, 1 confirming", "blue")
    event = await (await client.get(f"/api/v1/events/{first.event_id}")).json()
    assert (event["result"], event["shown_as"]) == ("failure", "confirming")
    api = await (await client.get(f"/api/v1/projects/{LIB}")).json()
    assert api["latest_downstream_results"]["confirming"] == 1


async def test_a_failure_that_passed_when_run_again_is_flaky_in_the_matrix_as_on_its_page(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    first, rerun = await a_failure_run_again(client, forge)
    await report_status(client, rerun.event_id, "success")
    await run_jobs(client)

    trail = await (await client.get(f"/events/{first.event_id}")).text()
    assert "flaky" in aggregate_text(trail)
    project = Tree(await (await client.get(f"/projects/{LIB}")).text())
    [matrix] = [el for el in project.root.iter() if "matrix" in el.classes]
    cells = [" ".join(cell.text().split()) for cell in matrix.find("td")]
    assert "failed flaky" in cells, cells
