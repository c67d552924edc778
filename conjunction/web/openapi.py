"""`GET /api/v1/openapi.json`: the OpenAPI 3.1 description of the HTTP endpoints.

The description is written by hand in `openapi.yaml` beside this module and served as JSON;
`tests/test_openapi.py` checks it against the app's routes and drives every route from it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

DESCRIPTION = Path(__file__).with_name("openapi.yaml")
routes = web.RouteTableDef()


@cache
def description() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(DESCRIPTION.read_text())
    return document


@cache
def _body() -> bytes:
    return json.dumps(description(), indent=1).encode()


@routes.get("/api/v1/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=_body(), content_type="application/json")
