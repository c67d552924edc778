"""Badges as a README and shields.io see them."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

from aiohttp.test_utils import TestClient

from conjunction.badges import Badge, badge_of, svg, text_width
from conjunction.tally import Count, Tally
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs
from tests.test_flow import APP, LIB, index, report_status, upstream_of

TOOL = "github.com/acme/tool"
SVG = "{http://www.w3.org/2000/svg}"


async def lib_run(
    client: TestClient[Any, Any], forge: MemoryHost, sha: str, **results: str
) -> None:
    """One upstream success of LIB at sha, and the results of its downstreams."""
    await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=int(sha[0])))
    await run_jobs(client)
    started = {project: request for project, request in forge.of("start_pipeline")}
    for project, result in results.items():
        await report_status(client, started[project].event_id, result)
    await run_jobs(client)


async def test_svg_and_json_show_the_latest_pass_rate(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    await index(client, TOOL, upstream_of(LIB))
    await lib_run(client, forge, "1" * 40, **{APP: "success", TOOL: "success"})
    await lib_run(client, forge, "2" * 40, **{APP: "success", TOOL: "failure"})

    shields = await client.get(f"/badges/{LIB}.json")
    assert shields.status == 200
    assert await shields.json() == {
        "schemaVersion": 1,
        "label": "downstream",
        "message": "1 of 2 passed",
        "color": "yellow",
    }
    picture = await client.get(f"/badges/{LIB}.svg")
    assert picture.content_type == "image/svg+xml"
    assert picture.headers["Cache-Control"] == "max-age=60"
    root = ElementTree.fromstring(await picture.text())
    assert root.find(f"{SVG}title").text == "downstream: 1 of 2 passed"  # type: ignore[union-attr]
    assert "#dfb317" in {rect.get("fill") for rect in root.iter(f"{SVG}rect")}

    project = await (await client.get(f"/api/v1/projects/{LIB}")).json()
    flat = {"passed": 1, "total": 2, "running": 0, "confirming": 0}
    assert project["latest_downstream_results"] == {
        **flat,
        "tree": flat,
        "words": "1 of 2 passed",
        "change": "broke",
    }


async def test_etag_answers_not_modified(client: TestClient[Any, Any]) -> None:
    await index(client, LIB, None)
    first = await client.get(f"/badges/{LIB}.svg")
    again = await client.get(f"/badges/{LIB}.svg", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    assert "no downstream runs" in await first.text()


async def test_private_and_unknown_projects_have_no_badge(client: TestClient[Any, Any]) -> None:
    await index(client, APP, None, private=True)
    for path in (f"/badges/{APP}.svg", "/badges/github.com/acme/none.json", f"/badges/{APP}.png"):
        answer = await client.get(path)
        assert answer.status == 404
        assert "error" in await answer.json()
    admin = {"Authorization": "Bearer admin-token"}
    assert (await client.get(f"/badges/{APP}.svg", headers=admin)).status == 200


def flat(tally: Tally) -> Count:
    """Direct downstreams only: the tree is the same."""
    return Count(direct=tally, tree=tally)


def test_colours_follow_the_ratio_and_running_is_said() -> None:
    assert badge_of(flat(Tally(4, 4))) == Badge("4 of 4 passed", "brightgreen")
    assert badge_of(flat(Tally(3, 4))) == Badge("3 of 4 passed", "yellowgreen")
    assert badge_of(flat(Tally(1, 4))) == Badge("1 of 4 passed", "orange")
    assert badge_of(flat(Tally(0, 4))) == Badge("0 of 4 passed", "red")
    assert badge_of(flat(Tally(1, 4, running=2))) == Badge("1 of 4 passed, 2 running", "blue")
    assert badge_of(flat(Tally(3, 4, confirming=1))) == Badge("3 of 4 passed, 1 confirming", "blue")


def test_the_tree_follows_in_brackets_and_colours_the_badge() -> None:
    count = Count(direct=Tally(5, 5), tree=Tally(5, 7))
    assert badge_of(count) == Badge("5 of 5 passed (5 of 7 in the tree)", "yellow")


def test_text_widths_grow_with_the_text_and_the_badge_fits_them() -> None:
    assert text_width("1 of 4") < text_width("10 of 40") < text_width("10 of 40, 3 running")
    assert text_width("iiii") < text_width("mmmm")
    root = ElementTree.fromstring(svg(Badge("10 of 40, 3 running", "blue")))
    width = int(root.get("width") or 0)
    assert width == text_width("downstream") + text_width("10 of 40, 3 running") + 20
