"""Pages for people: home, a project, the dependency graph, and an event's audit trail — the
page every status and check run links to (templates in `conjunction/web/templates/`).

What each page may show comes from `conjunction.views.pages` and `conjunction.views.event_tree`, as
this viewer (the admin or anyone) may see it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from conjunction import premerge_view
from conjunction.adapters import Adapters
from conjunction.durations import duration as run_seconds
from conjunction.models import Event
from conjunction.results import Result, Verdict
from conjunction.tally import shown_as
from conjunction.views import pages
from conjunction.views.event_tree import EventTree, event_tree
from conjunction.web import charts
from conjunction.web.admin import is_admin
from conjunction.web.context import RUNTIME, json_answer, json_error
from conjunction.web.graph import layout, neighbourhood
from conjunction.web.templating import STATES, duration, render

routes = web.RouteTableDef()
EXAMPLE_CONFIG = """\
owners: [alice]
upstreams:
  - project: github.com/acme/lib
"""
GRAPH_DEPTHS = (1, 2, 3, 5)


def page_context(request: web.Request) -> dict[str, Any]:
    """What the layout of every dashboard page needs: whether the viewer is the admin."""
    return {
        "dashboard": True,
        "admin": is_admin(request),
        "admin_enabled": bool(request.app[RUNTIME].settings.admin_token),
    }


async def dashboard(request: web.Request) -> web.Response:
    """`/` once the app is set up: projects (current breakages first), a search, recent events."""
    query = request.query.get("q", "")[:200]
    home = await pages.home(request.app[RUNTIME].sessions, admin=is_admin(request), query=query)
    return render(
        request, "home.html", title="Conjunction", home=home, query=query, example=EXAMPLE_CONFIG
    )


@routes.get("/projects/{project:.+}")
async def project_page(request: web.Request) -> web.Response:
    name = request.match_info["project"]
    runtime = request.app[RUNTIME]
    admin = is_admin(request)
    page = await pages.project_page(runtime.sessions, name, admin=admin)
    if page is None:
        return json_error(404, f"no project {name}")
    graph = await pages.graph(runtime.sessions, admin=admin)
    kept, edges = neighbourhood(page.project.name, graph.edges, 1)
    drawing = await asyncio.to_thread(layout, sorted(kept), edges)
    return render(
        request,
        "project.html",
        title=page.project.name,
        page=page,
        public_url=runtime.settings.public_url,
        charts=_project_charts(page),
        drawing=drawing,
        **_graph_looks(graph),
        focus=page.project.name,
        changes=await premerge_view.open_changes(runtime.sessions, page.project, admin=admin),
    )


def _project_charts(page: pages.ProjectPage) -> list[charts.Chart]:
    sources = list(reversed(page.sources))
    found = []
    if sources:
        found.append(
            charts.bar_chart(
                "Downstream pass rate of each upstream success, oldest first",
                [_rate_point(source) for source in sources],
                ceiling=1.0,
                text=lambda value: f"{value:.0%}",
            )
        )
        found.append(
            charts.bar_chart(
                "Time until all downstreams answered, for each upstream success, oldest first",
                [
                    charts.Point(
                        source.all_answered,
                        _rate_kind(source) if source.all_answered is not None else "running",
                        f"{source.event.sha and source.event.sha[:7]}: "
                        + (
                            duration(source.all_answered)
                            if source.all_answered is not None
                            else "still running"
                        ),
                        f"/events/{source.event.id}",
                    )
                    for source in sources
                ],
                text=duration,
                median=True,
            )
        )
    runs = [(run, up) for run, up in reversed(page.own_runs) if run.result != "skipped"]
    if runs:
        found.append(
            charts.bar_chart(
                f"Duration of {page.project.name}'s own runs as a downstream, oldest first",
                [
                    charts.Point(
                        seconds,
                        STATES.get(run.result, ("unknown", ""))[0],
                        f"against {upstream or 'a private project'}: {shown_as(run)}"
                        + (f", {duration(seconds)}" if seconds is not None else ""),
                        f"/events/{run.id}",
                    )
                    for run, upstream in runs
                    for seconds in [run_seconds(run)]
                ],
                text=duration,
                median=True,
            )
        )
    return found


def _rate_kind(source: pages.Source) -> str:
    tally = source.count.direct
    if not tally.settled:
        return "running"
    if tally.passed == tally.total:
        return "passed"
    return "failed" if tally.passed == 0 else "mixed"


def _rate_point(source: pages.Source) -> charts.Point:
    count = source.count
    sha = (source.event.sha or "")[:7]
    return charts.Point(
        count.direct.passed / count.direct.total if count.direct.total else 0.0,
        _rate_kind(source),
        f"{sha}: {count.short()}",
        f"/events/{source.event.id}",
    )


def _states(graph: pages.Graph) -> dict[str, str]:
    """Each project's colour in the graph: the result of its latest run."""
    return {
        name: STATES.get(event.result, ("unknown", ""))[0] if event else "unknown"
        for name, event in graph.latest.items()
    }


# an edge's look by its pair's latest run: its class, and the words its title and legend say
EDGE_WORDS = {
    "passed": "passed",
    "flaky": "flaky (failed, then passed on a re-run)",
    "failed": "failed",
    "confirming": "failed, confirming by re-running",
    "running": "running",
    "none": "not run yet",
}


def edge_state(run: Event | None) -> str:
    """An edge of the graph by its pair's latest run: passed, flaky (a failure that passed
    when re-run), failed (any other final result), confirming (a failure being re-run before
    it counts), running, or none."""
    if run is None:
        return "none"
    if run.confirming:
        return "confirming"
    if run.result is None:
        return "running"
    if run.result == Result.SUCCESS:
        return "passed"
    return "flaky" if run.change == Verdict.FLAKY else "failed"


def _graph_looks(graph: pages.Graph) -> dict[str, Any]:
    """What `graph_svg` draws besides the layout: each project's and each edge's state, and the
    projects whose config is invalid."""
    return {
        "states": _states(graph),
        "edge_states": {edge: edge_state(graph.pairs.get(edge)) for edge in graph.edges},
        "edge_words": EDGE_WORDS,
        "invalid": graph.invalid,
    }


@routes.get("/graph")
async def graph_page(request: web.Request) -> web.Response:
    graph = await pages.graph(request.app[RUNTIME].sessions, admin=is_admin(request))
    focus = request.query.get("focus", "").strip()
    try:
        depth = int(request.query.get("depth", "2"))
    except ValueError:
        depth = 2
    depth = min(max(depth, 1), max(GRAPH_DEPTHS))
    names: set[str] = set(graph.latest)
    edges = graph.edges
    if focus:
        if focus not in graph.latest:
            return json_error(404, f"no project {focus}")
        names, edges = neighbourhood(focus, edges, depth)
    drawing = await asyncio.to_thread(layout, sorted(names), edges)
    return render(
        request,
        "graph.html",
        title=f"Around {focus}" if focus else "Dependency graph",
        drawing=drawing,
        **_graph_looks(graph),
        focus=focus,
        depth=depth,
        depths=GRAPH_DEPTHS,
        projects=sorted(graph.latest),
    )


def _compare(adapters: Adapters) -> Any:
    def compare(project: str, base: str, head: str) -> str | None:
        host = adapters.host(project)
        return host.compare_url(project, base, head) if host is not None else None

    return compare


async def _tree(request: web.Request) -> EventTree | None:
    runtime = request.app[RUNTIME]
    return await event_tree(
        runtime.sessions,
        request.match_info["event_id"],
        admin=is_admin(request),
        compare=_compare(runtime.engine.adapters),
    )


@routes.get("/events/{event_id}")
async def event_page(request: web.Request) -> web.Response:
    tree = await _tree(request)
    if tree is None:
        return json_error(404, f"no event {request.match_info['event_id']}")
    return render(request, "event.html", title=tree.title, tree=tree)


@routes.get("/events/{event_id}/live")
async def event_live(request: web.Request) -> web.Response:
    """The audit trail as the event page shows it, for its script to refresh while it runs."""
    tree = await _tree(request)
    if tree is None:
        return json_error(404, f"no event {request.match_info['event_id']}")
    html = aiohttp_jinja2.render_string("event_trail.html", request, {"tree": tree})
    return json_answer({"running": tree.running, "html": html})
