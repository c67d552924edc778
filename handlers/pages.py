"""Pages for people: an event's trace, linked from every status and check run."""

from __future__ import annotations

from html import escape
from typing import Any

from aiohttp import web

from bot import views
from bot.engine.reports import label
from handlers.api import event_trace
from handlers.context import RUNTIME, json_error

routes = web.RouteTableDef()
RECENT_EVENTS = 500

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font:15px system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.4rem;
text-align:left}}code{{font-size:90%}}</style></head>
<body><h1>{title}</h1>{body}
{footer}</body></html>
"""


def _name(item: dict[str, Any]) -> str:
    return escape(item["project"]) if item.get("project") else "<em>a private project</em>"


def _result(item: dict[str, Any]) -> str:
    text = label(item.get("result"))
    if item.get("reason"):
        text += f": {item['reason']}"
    return escape(text)


def _link(url: str | None, text: str) -> str:
    return f'<a href="{escape(url)}">{escape(text)}</a>' if url else ""


def _row(item: dict[str, Any]) -> str:
    return (
        f'<tr><td><a href="/events/{escape(item["id"])}">{_name(item)}</a></td>'
        f"<td>{_result(item)}</td><td><code>{escape((item.get('sha') or '')[:7])}</code></td>"
        f"<td>{_link(item.get('url'), 'run')}</td></tr>"
    )


def render(trace: dict[str, Any]) -> str:
    chain = " → ".join(
        f'<a href="/events/{escape(item["id"])}">{_name(item)}</a>' for item in trace["chain"]
    )
    body = [
        f"<p>{_result(trace)} at <code>{escape((trace.get('sha') or '')[:12])}</code> "
        f"on {escape(trace.get('ref') or '')} {_link(trace.get('url'), '(pipeline)')}</p>",
    ]
    if chain:
        body.append(f"<p>Chain from the origin: {chain} → {_name(trace)}</p>")
    if trace["children"]:
        body.append("<h2>Downstream</h2><table><tr><th>Project</th><th>Result</th>")
        body.append("<th>Commit</th><th>Run</th></tr>")
        body.extend(_row(child) for child in trace["children"])
        body.append("</table>")
    footer = f'<p><a href="/api/v1/events/{escape(trace["id"])}">This trace as JSON</a></p>'
    return PAGE.format(title=_name(trace), body="\n".join(body), footer=footer)


@routes.get("/events/{event_id}")
async def event_page(request: web.Request) -> web.Response:
    event_id = request.match_info["event_id"]
    trace = await event_trace(request, event_id)
    if trace is None:
        return json_error(404, f"no event {event_id}")
    return web.Response(text=render(trace), content_type="text/html")


async def dashboard(request: web.Request) -> web.Response:
    """`/` once the app is set up: the public projects, their links and latest results."""
    listed = await views.dashboard(request.app[RUNTIME].sessions)
    rows = []
    for row in listed:
        project, newest = row.project, row.latest
        last = (
            f'<a href="/events/{escape(newest.id)}">{escape(label(newest.result))}</a>'
            if newest
            else ""
        )
        problem = " ⚠ invalid .conjunction.yml" if project.config_error else ""
        rows.append(
            f"<tr><td>{escape(project.name)}{problem}</td><td>{row.upstreams}</td>"
            f"<td>{row.downstreams}</td><td>{last}</td></tr>"
        )
    body = (
        f"<p>{len(listed)} public projects.</p><table><tr><th>Project</th><th>Upstreams</th>"
        "<th>Downstreams</th><th>Latest</th></tr>" + "".join(rows) + "</table>"
    )
    footer = '<p><a href="/schema/conjunction.json">.conjunction.yml schema</a></p>'
    return web.Response(
        text=PAGE.format(title="Conjunction", body=body, footer=footer), content_type="text/html"
    )
