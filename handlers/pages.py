"""Pages for people: the dashboard, and an event's trace linked from every status and check
run (templates in `handlers/templates/`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from bot.models import Event, Project, Subscription
from bot.report import ICONS
from handlers.api import event_trace
from handlers.context import RUNTIME, json_error
from handlers.templating import render

routes = web.RouteTableDef()
RECENT_EVENTS = 500


def shown(item: dict[str, Any]) -> dict[str, Any]:
    """What the event page shows of one event of a trace; a private one has no name, link or id."""
    result = ICONS.get(item.get("result"), str(item.get("result")))
    if item.get("reason"):
        result += f": {item['reason']}"
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
    runtime = request.app[RUNTIME]
    async with runtime.sessions() as session:
        projects = list(
            await session.scalars(
                select(Project)
                .where(Project.active.is_(True), Project.private.is_(False))
                .order_by(Project.key)
            )
        )
        upstreams = dict(
            (
                await session.execute(
                    select(Subscription.downstream, func.count()).group_by(Subscription.downstream)
                )
            ).all()
        )
        downstreams = dict(
            (
                await session.execute(
                    select(Subscription.upstream, func.count()).group_by(Subscription.upstream)
                )
            ).all()
        )
        recent = await session.scalars(
            select(Event).order_by(Event.created_at.desc()).limit(RECENT_EVENTS)
        )
        latest: dict[str, Event] = {}
        for event in recent:
            latest.setdefault(event.project.lower(), event)
    rows = []
    for project in projects:
        newest = latest.get(project.key)
        rows.append(
            {
                "name": project.name,
                "config_error": bool(project.config_error),
                "upstreams": upstreams.get(project.key, 0),
                "downstreams": downstreams.get(project.key, 0),
                "latest": newest and {"id": newest.id, "result": ICONS.get(newest.result, "")},
            }
        )
    return render(request, "dashboard.html", title="Conjunction", projects=rows)
