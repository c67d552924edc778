"""A change's page: an unmerged pull or merge request run against its downstreams (CONTRACT
§8), linked from its pre-merge check run, status and comment."""

from __future__ import annotations

from aiohttp import web

from conjunction import premerge_view
from conjunction.web.admin import is_admin
from conjunction.web.context import RUNTIME, json_error
from conjunction.web.templating import render

routes = web.RouteTableDef()


@routes.get(r"/changes/{project:.+}/{number:\d+}")
async def change_page(request: web.Request) -> web.Response:
    name, number = request.match_info["project"], int(request.match_info["number"])
    change = await premerge_view.change_page(
        request.app[RUNTIME].sessions, name, number, admin=is_admin(request)
    )
    if change is None:
        return json_error(404, f"no change {number} of {name}")
    return render(
        request,
        "change.html",
        title=f"{change.project.name} #{number}: before it merges",
        change=change,
    )
