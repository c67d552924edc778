"""What the running service takes from Acme: a webhook that echoes, an in-memory code host, a
job handler that keeps what it is handed."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.config.settings import Settings
from conjunction.engine_api import EngineAPI
from conjunction.forges.driver import Running, Server
from conjunction.queue import JobHandler
from testkit.memoryhost import MemoryHost
from tests.acme.settings import AcmeSettings

DELIVERED: list[dict[str, Any]] = []


async def webhook(request: web.Request) -> web.Response:
    return web.json_response({"forge": "acme", "body": await request.text()}, status=202)


def start(
    settings: Settings, _http: aiohttp.ClientSession, _sessions: async_sessionmaker[AsyncSession]
) -> Running:
    return Running(host=MemoryHost(host=settings.forge(AcmeSettings).host))


def deliveries(
    _engine: EngineAPI, _settings: Settings, _running: Running | None
) -> JobHandler | None:
    async def handle(payload: dict[str, Any]) -> None:
        DELIVERED.append(payload)

    return handle


SERVER = Server(webhook=webhook, start=start, deliveries=deliveries)
