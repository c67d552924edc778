"""The dashboard as people see it: home, project pages, the graph, event audit trails, and the
admin's login — with private projects only for the admin, everywhere."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import update

from conjunction.models import Event
from conjunction.views import pages
from conjunction.web.admin import COOKIE
from conjunction.web.graph import layout, neighbourhood
from conjunction.web.pages import EDGE_WORDS, edge_state
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.test_flow import APP, LIB, SHA, TOOL, index, report_status, upstream_of
from tests.test_pages import BROWSER, Element, Page, Tree, assert_secure_page, icons

SECRET = "github.com/acme/secret"
ADMIN = {"Authorization": "Bearer admin-token"}


async def ecosystem(client: TestClient[Any, Any], forge: MemoryHost) -> dict[str, str]:
    """LIB with downstreams APP (passes), TOOL (fails after passing) and SECRET (private);
    returns the event ids of the second upstream success's runs, by project."""
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    await index(client, TOOL, upstream_of(LIB))
    await index(client, SECRET, upstream_of(LIB), private=True)
    for sha, tool_result in (("1" * 40, "success"), ("2" * 40, "failure")):
        await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=int(sha[0])))
        await run_jobs(client)
        started = {
            project: request.event_id
            for project, request in forge.of("start_pipeline")
            if request.upstream_sha == sha
        }
        await report_status(client, started[APP], "success")
        await report_status(client, started[TOOL], tool_result)
        await report_status(client, started[SECRET], "success")
        await run_jobs(client)
    return started


async def page(client: TestClient[Any, Any], path: str, **headers: str) -> Page:
    response = await client.get(path, headers={**BROWSER, **headers})
    assert response.status == 200, path
    return assert_secure_page(response, await response.text())


async def login(client: TestClient[Any, Any]) -> str:
    """Log in through the form; returns the session cookie's value."""
    answer = await client.post(
        "/login", data={"token": "admin-token", "next": "/graph"}, allow_redirects=False
    )
    assert answer.status == 303
    assert answer.headers["Location"] == "/graph"
    cookie = answer.cookies[COOKIE]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["secure"], "the public URL is https"
    return cookie.value


async def test_home_puts_breakages_first_and_hides_private_projects(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await ecosystem(client, forge)
    home = await page(client, "/")
    text = " ".join(home.text)

    assert "Current breakages" in text
    assert text.index(TOOL) < text.index(APP), "a broken project is listed first"
    assert "2 of 3 downstream projects passed" in text, "LIB's latest upstream success"
    assert SECRET not in text
    assert f"/projects/{SECRET}" not in home.links

    admin = " ".join((await page(client, "/", **ADMIN)).text)
    assert SECRET in admin

    searched = await page(client, "/?q=secret")
    assert f"/projects/{SECRET}" not in searched.links, "search finds no private project"
    assert "0 match" in " ".join(searched.text)
    assert f"/projects/{SECRET}" in (await page(client, "/?q=secret", **ADMIN)).links


async def test_search_finds_projects_by_name_and_owner(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, "owners: [lib-team]\n")
    await index(client, APP, upstream_of(LIB))
    found = await page(client, "/?q=LIB-TEAM")
    assert f"/projects/{LIB}" in found.links
    assert f"/projects/{APP}" not in found.links
    assert "1 match" in " ".join(found.text)
    assert f"/projects/{APP}" in (await page(client, "/?q=acme/app")).links


async def test_an_empty_instance_says_what_to_do(client: TestClient[Any, Any]) -> None:
    text = " ".join((await page(client, "/")).text)
    assert "No projects yet" in text
    assert "python app.py gitlab add" in text
    assert "upstreams:" in text, "an example .conjunction.yml"


async def test_project_page_shows_matrix_config_badge_and_issues(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    runs = await ecosystem(client, forge)
    lib = await page(client, f"/projects/{LIB}")
    text = " ".join(lib.text)

    assert f"/events/{runs[TOOL]}" in lib.links, "a matrix cell leads to its event"
    assert f"/events/{runs[APP]}" in lib.links
    assert f"/events/{runs[SECRET]}" not in lib.links
    assert "a private project" in text
    assert SECRET not in text
    assert f"[![downstream](https://conjunction.test/badges/{LIB}.svg)]" in text
    assert "Downstream pass rate of each upstream success" in text
    assert "Time until all downstreams answered" in text
    assert "All downstreams answered" in text, "the build-time table"

    tool = " ".join((await page(client, f"/projects/{TOOL}")).text)
    assert "Open breakage issues" in tool
    assert "#1" in tool, "the issue opened for the new regression"
    assert f"project: {LIB}" in tool, "the configuration in force"


async def test_matrix_headers_are_short_with_the_full_name_on_hover_and_in_a_legend(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await ecosystem(client, forge)
    await index(client, "gitlab.com/other/app", upstream_of(LIB))
    await post_github(client, "workflow_run", workflow_run("acme/lib", "3" * 40, run_id=3))
    await run_jobs(client)
    root = Tree(await (await client.get(f"/projects/{LIB}", headers=BROWSER)).text()).root
    [matrix] = root.find("table", "matrix")
    headers = matrix.find("thead")[0].find("th")[2:]
    shown = [
        (link.text(), link.attrs["title"])
        if (link := next(iter(th.find("a")), None))
        else th.text()
        for th in headers
    ]
    assert sorted(shown, key=str) == sorted(
        [
            ("acme/app", APP),
            ("other/app", "gitlab.com/other/app"),
            ("tool", TOOL),
            "a private project",
        ],
        key=str,
    ), "the repository's name, its owner where two collide"
    [names] = root.find("dl", "names")
    legend = [(div.find("dt")[0].text(), div.find("dd")[0].text()) for div in names.find("div")]
    assert sorted(legend) == [
        ("acme/app", APP),
        ("other/app", "gitlab.com/other/app"),
        ("tool", TOOL),
    ], "the private one is in no legend"
    assert matrix.attrs == {"class": "matrix"}
    [box] = [div for div in root.find("div", "matrix-box")]
    assert box.attrs["role"] == "region" and box.attrs["tabindex"] == "0", "keyboard-scrollable"


async def test_a_downstream_runs_title_leads_with_the_upstream_commit(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    runs = await ecosystem(client, forge)
    trail = Tree(await (await client.get(f"/events/{runs[TOOL]}", headers=BROWSER)).text()).root
    assert trail.find("h1")[0].text() == f"{LIB} {'2' * 12} in {TOOL}"
    build = (await runtime(client).engine.get_event(runs[TOOL])).parent_id  # type: ignore[union-attr]
    upstream = Tree(await (await client.get(f"/events/{build}", headers=BROWSER)).text()).root
    assert upstream.find("h1")[0].text() == f"{LIB}: upstream success at {'2' * 12}"


async def test_a_run_against_a_private_upstream_does_not_name_it_in_its_title(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, SECRET, None, private=True)
    await index(client, APP, upstream_of(SECRET))
    await post_github(client, "workflow_run", workflow_run("acme/secret", SHA))
    await run_jobs(client)
    [(_, request)] = forge.of("start_pipeline")
    path = f"/events/{request.event_id}"
    shown = Tree(await (await client.get(path, headers=BROWSER)).text()).root
    assert shown.find("h1")[0].text() == f"{APP}: downstream run"
    admin = Tree(await (await client.get(path, headers={**BROWSER, **ADMIN})).text()).root
    assert admin.find("h1")[0].text() == f"{SECRET} {SHA[:12]} in {APP}"


async def test_project_page_shows_a_config_error(client: TestClient[Any, Any]) -> None:
    await index(client, APP, upstream_of(LIB))
    error = await runtime(client).engine.index_project(
        APP, private=False, default_branch="main", config_text="upstreams: 3\n"
    )
    assert error is not None
    text = " ".join((await page(client, f"/projects/{APP}")).text)
    assert "Invalid .conjunction.yml" in text
    assert "line 1" in text
    assert f"project: {LIB}" in text, "the last valid one stays in force"


async def test_private_and_unknown_projects_are_html_404s(client: TestClient[Any, Any]) -> None:
    await index(client, SECRET, None, private=True)
    for path in (f"/projects/{SECRET}", "/projects/github.com/acme/none"):
        response = await client.get(path, headers=BROWSER)
        assert response.status == 404
        assert "404 Not Found" in Page(await response.text()).text
    assert (await client.get(f"/projects/{SECRET}", headers=ADMIN)).status == 200


async def test_the_graph_draws_visible_projects_coloured_by_result(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await ecosystem(client, forge)
    graph = await client.get("/graph", headers=BROWSER)
    html = await graph.text()
    assert f'data-project="{LIB}"' in html
    assert f'class="node st-failed" data-project="{TOOL}"' in html
    assert f'class="node st-passed" data-project="{APP}"' in html
    assert SECRET not in html
    assert f'data-project="{SECRET}"' in await (await client.get("/graph", headers=ADMIN)).text()

    focused = await (await client.get(f"/graph?focus={TOOL}&depth=1")).text()
    assert f'data-project="{APP}"' not in focused, "only TOOL's neighbours"
    assert f'data-project="{LIB}"' in focused
    assert (await client.get(f"/graph?focus={SECRET}")).status == 404


def icon_drawing(icon: Element) -> tuple[str, ...]:
    """What an icon looks like: its state class and the strokes of its mark."""
    return (icon.attrs["class"], *(path.attrs["d"] for path in icon.find("path")))


async def test_a_graph_node_says_its_result_by_icon_and_word_not_only_colour(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await ecosystem(client, forge)
    home = Tree(await (await client.get("/", headers=BROWSER)).text()).root
    [breakage] = home.find("section", "bad")
    [failure_icon] = [icon for span in breakage.find("span", "result") for icon in icons(span)]
    assert "st-failed" in failure_icon.classes, "the icon the other pages give a failure"

    for path in ("/graph", f"/projects/{LIB}", f"/graph?focus={TOOL}&depth=1"):
        graph = Tree(await (await client.get(path, headers=BROWSER)).text()).root
        nodes = {node.attrs["data-project"]: node for node in graph.find("a", "node")}
        assert {LIB, TOOL} <= set(nodes), path
        tool = nodes[TOOL]
        assert "st-failed" in tool.classes
        assert tool.attrs["aria-label"] == f"{TOOL}: failed", "the word in its accessible name"
        assert [title.text() for title in tool.find("title")] == [f"{TOOL}: failed"]
        assert [text.text() for text in tool.find("text")] == ["tool"], "its label"
        [tool_icon] = tool.find("svg", "icon")
        assert icon_drawing(tool_icon) == icon_drawing(failure_icon), path
        assert tool_icon.attrs["aria-hidden"] == "true", "the accessible name says it"
        for name, node in nodes.items():
            state = next(cls for cls in node.classes if cls.startswith("st-"))
            [node_icon] = node.find("svg", "icon")
            assert state in node_icon.classes, f"{name}: the icon of its own result"
            assert node.attrs["aria-label"] == node.find("title")[0].text()

    graph = Tree(await (await client.get("/graph", headers=BROWSER)).text()).root
    [app] = [node for node in graph.find("a", "node") if node.attrs["data-project"] == APP]
    assert app.attrs["aria-label"] == f"{APP}: passed"
    [app_icon] = app.find("svg", "icon")
    assert "st-passed" in app_icon.classes
    assert icon_drawing(app_icon) != icon_drawing(failure_icon), "a passing one looks otherwise"


async def test_each_edge_says_its_pairs_latest_result_by_colour_and_dash(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await ecosystem(client, forge)
    await index(client, "github.com/acme/idle", upstream_of(LIB))
    for path, headers in (("/graph", {}), (f"/projects/{LIB}", {}), ("/graph", ADMIN)):
        graph = Tree(await (await client.get(path, headers={**BROWSER, **headers})).text()).root
        [drawn] = [svg for svg in graph.find("svg", "graph") if svg.attrs.get("id") == "graph"]
        edges = {edge.attrs["data-edge"]: edge for edge in drawn.find("path", "edge")}
        assert {name: edge.classes for name, edge in edges.items() if SECRET not in name} == {
            f"{LIB} {APP}": {"edge", "e-passed"},
            f"{LIB} {TOOL}": {"edge", "e-failed"},
            f"{LIB} github.com/acme/idle": {"edge", "e-none"},
        }, path
        assert edges[f"{LIB} {TOOL}"].find("title")[0].text() == (
            f"{TOOL} builds against {LIB}: latest failed"
        )
        assert edges[f"{LIB} {TOOL}"].attrs["marker-end"] == "url(#arrow-failed)"
        assert (f"{LIB} {SECRET}" in edges) == bool(headers), "a private pair is the admin's"
        legend = " ".join(p.text() for p in graph.find("p", "legend"))
        for words in ("passed last", "failed last", "being confirmed", "under way", "never run"):
            assert words in legend, words


async def test_a_project_whose_config_is_invalid_says_so_in_the_graph(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await ecosystem(client, forge)
    error = await runtime(client).engine.index_project(
        TOOL, private=False, default_branch="main", config_text="upstreams: [{project: 3}]\n"
    )
    assert error is not None
    graph = Tree(await (await client.get("/graph", headers=BROWSER)).text()).root
    nodes = {node.attrs["data-project"]: node for node in graph.find("a", "node")}
    tool = nodes[TOOL]
    assert "invalid" in tool.classes and "invalid" not in nodes[APP].classes
    assert tool.attrs["aria-label"] == f"{TOOL}: invalid .conjunction.yml; latest run: failed"
    assert [icon.attrs["class"] for icon in tool.find("svg", "icon")] == [
        "icon st-failed",
        "icon st-invalid",
    ]


def test_the_layout_goes_left_to_right_without_overlaps() -> None:
    names = [f"h.test/o/p{n}" for n in range(40)]
    edges = [(names[n // 3], names[n]) for n in range(1, 40)] + [(names[5], names[1])]
    drawing = layout(names, edges)
    assert {node.name for node in drawing.nodes} == set(names)
    place = {node.name: node for node in drawing.nodes}
    assert place[names[0]].x < place[names[1]].x < place[names[4]].x
    boxes = sorted((node.x, node.y, node.width, node.height) for node in drawing.nodes)
    for at, (x, y, w, h) in enumerate(boxes):
        for x2, y2, w2, h2 in boxes[at + 1 :]:
            assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y, "overlap"

    kept, kept_edges = neighbourhood(names[1], edges, 1)
    assert kept == {names[0], names[1], names[3], names[4], names[5]}
    assert all(up in kept and down in kept for up, down in kept_edges)


def test_a_layer_of_hundreds_is_set_in_columns() -> None:
    libraries = [f"h.test/lib/l{n}" for n in range(10)]
    apps = [f"h.test/app/a{n}" for n in range(290)]
    edges = [(libraries[n % 10], app) for n, app in enumerate(apps)]
    edges += [(libraries[0], library) for library in libraries[1:]]
    drawing = layout(libraries + apps, edges)
    assert len(drawing.nodes) == 300 and len(drawing.edges) == 299
    assert drawing.height < 1200 and drawing.width < 3 * drawing.height, "not one tall column"
    place = {node.name: node for node in drawing.nodes}
    assert place[libraries[0]].x < min(place[name].x for name in [*libraries[1:], *apps])
    boxes = sorted((node.x, node.y, node.width, node.height) for node in drawing.nodes)
    for at, (x, y, w, h) in enumerate(boxes):
        for x2, y2, _, h2 in boxes[at + 1 :]:
            if x2 >= x + w:
                break
            assert y + h <= y2 or y2 + h2 <= y, "overlap"


async def test_event_page_is_an_audit_trail_from_the_origin(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, upstream_of(APP))
    await index(client, APP, upstream_of(LIB))
    await index(client, TOOL, upstream_of(LIB))
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA))
    await run_jobs(client)
    started = {project: request for project, request in forge.of("start_pipeline")}
    await report_status(client, started[APP].event_id, "success", url="https://ci.test/app/1")
    await run_jobs(client)

    origin = started[APP].parent_id
    trail = await page(client, f"/events/{started[APP].event_id}")
    text = " ".join(trail.text)
    assert "1 of 2 downstream projects passed, 1 skipped, 1 running" not in text, "APP's own view"
    assert "loop: github.com/acme/lib is already in this chain" in text, "why LIB was skipped"
    assert f"/events/{origin}" in trail.links, "the origin"
    assert "https://ci.test/app/1" in trail.links, "the run"

    whole = " ".join((await page(client, f"/events/{origin}")).text)
    _, (_, status) = forge.of("status")[-1]  # on LIB's commit, for the whole chain
    assert status.description == "1 of 2 downstream projects passed, 1 skipped, 1 running"
    assert whole.index(status.description) < whole.index(TOOL), "the page says it first"
    assert "/static/live.js" in (await page(client, f"/events/{origin}")).scripts


async def test_a_running_downstream_has_an_estimate_and_a_live_view(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    await post_github(client, "workflow_run", workflow_run("acme/lib", "1" * 40, run_id=1))
    await run_jobs(client)
    first = forge.of("start_pipeline")[0][1]
    await report_status(client, first.event_id, "success")
    async with runtime(client).sessions.begin() as session:  # that run took 12 minutes
        stored = await session.get(Event, first.event_id)
        assert stored is not None and stored.finished_at is not None
        await session.execute(
            update(Event)
            .where(Event.id == first.event_id)
            .values(started_at=stored.finished_at - timedelta(minutes=12))
        )
    await post_github(client, "workflow_run", workflow_run("acme/lib", "2" * 40, run_id=2))
    await run_jobs(client)
    second = forge.of("start_pipeline")[1][1]

    text = " ".join((await page(client, f"/events/{second.parent_id}")).text)
    assert "about 12 min left" in text
    assert "usually 12m 00s" in text

    live = await client.get(f"/events/{second.parent_id}/live")
    assert (await live.json())["running"] == 1
    await report_status(client, second.event_id, "failure")
    done = await (await client.get(f"/events/{second.parent_id}/live")).json()
    assert done["running"] == 0
    assert "0 of 1 downstream projects passed" in done["html"]


async def test_private_events_are_only_the_admins(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    runs = await ecosystem(client, forge)
    for path in (f"/events/{runs[SECRET]}", f"/events/{runs[SECRET]}/live"):
        assert (await client.get(path)).status == 404
        assert (await client.get(path, headers=ADMIN)).status == 200


async def test_the_admin_logs_in_with_the_token_and_out_again(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, SECRET, None, private=True)
    wrong = await client.post("/login", data={"token": "guess"}, allow_redirects=False)
    assert wrong.status == 401
    assert "That is not the admin token." in await wrong.text()

    session = {"Cookie": f"{COOKIE}={await login(client)}"}
    assert (await client.get(f"/projects/{SECRET}", headers=session)).status == 200
    assert (await client.get(f"/api/v1/projects/{SECRET}", headers=session)).status == 200
    forged = {"Cookie": f"{COOKIE}=admin"}
    assert (await client.get(f"/projects/{SECRET}", headers=forged)).status == 404

    out = await client.post("/logout", allow_redirects=False)
    assert out.status == 303
    assert out.cookies[COOKIE].value == ""


async def test_login_goes_back_only_to_this_server(client: TestClient[Any, Any]) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        answer = await client.post(
            "/login", data={"token": "admin-token", "next": target}, allow_redirects=False
        )
        assert answer.headers["Location"] == "/"


async def test_a_run_that_ends_while_the_home_page_is_read_shows_its_result(
    client: TestClient[Any, Any], forge: MemoryHost, monkeypatch: Any
) -> None:
    await index(client, LIB, None)
    await index(client, TOOL, upstream_of(LIB))
    await post_github(client, "workflow_run", workflow_run("acme/lib", "1" * 40, run_id=1))
    await run_jobs(client)
    running = forge.of("start_pipeline")[0][1].event_id
    sources = pages.recent_sources

    async def sources_then_the_run_fails(session: Any) -> Any:
        found = await sources(session)  # has loaded the run while it was running
        async with runtime(client).sessions.begin() as other:
            await other.execute(update(Event).where(Event.id == running).values(result="failure"))
        return found

    monkeypatch.setattr(pages, "recent_sources", sources_then_the_run_fails)
    text = " ".join((await page(client, "/")).text)
    assert "Current breakages" in text
    assert TOOL in text


async def test_a_private_upstream_leaves_no_trace_on_its_public_downstreams_pages(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, SECRET, "report:\n  issues: true\n", private=True)
    await index(client, APP, upstream_of(SECRET))
    for run_id, (sha, result) in enumerate([("1" * 40, "success"), ("2" * 40, "failure")], 1):
        await post_github(client, "workflow_run", workflow_run("acme/secret", sha, run_id=run_id))
        await run_jobs(client)
        _, request = forge.of("start_pipeline")[-1]
        await report_status(client, request.event_id, result)
        await run_jobs(client)
    assert {issue["project"] for issue in forge.issues.values()} == {SECRET, APP}

    for path in (
        f"/projects/{APP}",
        f"/events/{request.event_id}",
        f"/events/{request.event_id}/live",
        f"/api/v1/events/{request.event_id}",
        f"/api/v1/projects/{APP}",
        "/",
        "/graph",
        f"/graph?focus={APP}",
        f"/badges/{APP}.svg",
    ):
        response = await client.get(path, headers=BROWSER)
        assert response.status == 200, path
        assert "secret" not in (await response.text()).lower(), path
    admin = await client.get(f"/events/{request.event_id}", headers=ADMIN)
    assert SECRET in await admin.text()


def test_an_edge_is_drawn_by_its_pairs_latest_run() -> None:
    def run(**fields: Any) -> Event:
        return Event(kind="trigger", project=APP, upstream=LIB, **fields)

    assert [
        edge_state(None),
        edge_state(run(result=None)),
        edge_state(run(result="success")),
        edge_state(run(result="failure", change="new regression")),
        edge_state(run(result="timed_out")),
        edge_state(run(result="failure", change="flaky")),
        edge_state(run(result="failure", confirming="again")),
    ] == ["none", "running", "passed", "failed", "failed", "flaky", "confirming"]
    assert set(EDGE_WORDS) == {"none", "running", "passed", "failed", "flaky", "confirming"}


def test_a_diamonds_bottom_colours_every_link_into_it() -> None:
    """web builds against http and json and runs once for core's success, its event naming
    http: the json → web link is drawn by that run too, not as never run."""

    def run(id: str, project: str, upstream: str | None, root: str = "o1") -> Event:
        kind = "trigger" if upstream else "build"
        step = "first" if upstream else None
        return Event(id=id, kind=kind, project=project, upstream=upstream, root_id=root, step=step)

    core, http, json, web, other = (
        f"h.test/acme/{n}" for n in ("core", "http", "json", "web", "x")
    )
    links = [(core, http), (core, json), (http, web), (json, web), (other, web)]
    newest_first = [
        run("w1", web, http),
        run("j1", json, core),
        run("h1", http, core),
        run("o1", core, None),
        run("w0", web, other, root="o0"),
        run("x0", other, None, root="o0"),
    ]
    found = {pair: event.id for pair, event in pages.latest_pair_runs(newest_first, links).items()}
    assert found == {
        (core, http): "h1",
        (core, json): "j1",
        (http, web): "w1",
        (json, web): "w1",
        (other, web): "w0",
    }
