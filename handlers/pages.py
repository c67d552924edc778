"""Pages for people: the dashboard, and an event's trace linked from every status and check
run (templates in `handlers/templates/`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot import views
from bot.engine.reports import label, words
from handlers.api import event_trace
from handlers.context import RUNTIME, json_error
from handlers.templating import render

routes = web.RouteTableDef()


def shown(item: dict[str, Any]) -> dict[str, Any]:
    """What the event page shows of one event of a trace; a private one has no name, link or id."""
    result = words(item.get("result"), item.get("verdict"), item.get("hint"))
    if item.get("reason"):
        result += f": {item['reason']}"
    if item.get("confirms"):
        result += f" (confirming re-run, {item['confirms']['step']})"
    visible = bool(item.get("project"))
    return {
        "id": item["id"] if visible else None,
        "project": item.get("project"),
        "result": result,
        "sha": item.get("sha") or "",
        "ref": item.get("ref") or "",
        "url": item.get("url"),
    }


@routes.get("/events/{event_id}")
async def event_page(request: web.Request) -> web.Response:
    event_id = request.match_info["event_id"]
    trace = await event_trace(request, event_id)
    if trace is None:
        return json_error(404, f"no event {event_id}")
    return render(
        request,
        "event.html",
        event=shown(trace),
        chain=[shown(item) for item in trace["chain"]],
        children=[shown(item) for item in trace["children"]],
    )


async def dashboard(request: web.Request) -> web.Response:
    """`/` once the app is set up: the public projects, their links and latest results."""
    listed = await views.dashboard(request.app[RUNTIME].sessions)
    rows = []
    for row in listed:
        rows.append(
            {
                "name": row.project.name,
                "config_error": bool(row.project.config_error),
                "upstreams": row.upstreams,
                "downstreams": row.downstreams,
                "latest": row.latest and {"id": row.latest.id, "result": label(row.latest.result)},
            }
        )
    return render(request, "dashboard.html", title="Conjunction", projects=rows)
