"""Keys for what handlers find on the aiohttp application, and JSON answers."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from conjunction.runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)
CLIENT_SESSION = web.AppKey("client_session", aiohttp.ClientSession)
MAX_BODY = web.AppKey("max_body", int)


def json_error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def json_answer(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)
