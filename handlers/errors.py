"""Every error answer is JSON with a message for a person; nothing a user sends gives a 500."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from handlers.context import MAX_BODY, json_error

log = logging.getLogger(__name__)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[MAX_BODY]
        return json_error(413, f"request body too large: the limit is {limit} bytes")
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        return json_error(
            exc.status,
            exc.reason,
            **{key: value for key, value in exc.headers.items() if key in {"Allow", "Location"}},
        )
    except Exception:
        log.exception("unhandled error answering %s %s", request.method, request.path)
        return json_error(500, "internal error; it has been logged")
