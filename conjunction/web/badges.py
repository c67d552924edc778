"""`/badges/{project}.svg` and `/badges/{project}.json`: for READMEs and shields.io."""

from __future__ import annotations

import hashlib
import json

from aiohttp import web

from conjunction.badges import badge_of, svg
from conjunction.views.sources import latest_counts
from conjunction.web.admin import is_admin
from conjunction.web.context import RUNTIME, json_error

routes = web.RouteTableDef()
MAX_AGE = 60  # seconds: a badge follows results within a minute
KINDS = {"svg": "image/svg+xml", "json": "application/json"}


@routes.get("/badges/{name:.+}")
async def badge(request: web.Request) -> web.StreamResponse:
    name, _, kind = request.match_info["name"].rpartition(".")
    if kind not in KINDS:
        return json_error(404, "badges are /badges/{project}.svg or /badges/{project}.json")
    counts = await latest_counts(request.app[RUNTIME].sessions, name, admin=is_admin(request))
    if counts is None:
        return json_error(404, f"no project {name}")
    shown = badge_of(counts[0] if counts else None)
    body = svg(shown) if kind == "svg" else json.dumps(shown.shields_json())
    etag = f'"{hashlib.sha256(body.encode()).hexdigest()[:32]}"'
    headers = {"Cache-Control": f"max-age={MAX_AGE}", "ETag": etag}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(text=body, content_type=KINDS[kind], headers=headers)
