"""Health and metrics for load balancers and Prometheus."""

from __future__ import annotations

import asyncio
import logging
import weakref

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import insert

from conjunction.gauges import Gauges
from conjunction.models import KeyValue
from conjunction.web.context import RUNTIME, json_answer
from conjunction.web.errors import unavailable

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
GAUGES_TIMEOUT = 5.0  # seconds; past it /metrics answers with the gauges as they were
_gauges: weakref.WeakKeyDictionary[object, Gauges] = weakref.WeakKeyDictionary()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """200 when the database takes a write (rolled back), as intake needs; else 503."""
    try:
        database = request.app[RUNTIME].database
        async with database.connect() as connection, connection.begin() as transaction:
            await connection.execute(insert(KeyValue).values(key="healthz", value="probe"))
            await transaction.rollback()
    except Exception as exc:
        log.warning("health check failed: %r", exc)
        raise unavailable("the database does not take writes") from None
    return json_answer({"status": "ok"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """The counters and histograms, and the database's gauges read now (`conjunction.gauges`); when
    the database does not answer in time, the rest is served all the same."""
    sessions = request.app[RUNTIME].sessions
    gauges = _gauges.get(sessions)
    if gauges is None:
        gauges = _gauges[sessions] = Gauges(sessions)
    try:
        async with asyncio.timeout(GAUGES_TIMEOUT):
            await gauges.refresh()
    except Exception as exc:
        log.warning("metrics: the database's gauges could not be read: %r", exc)
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
