"""What the running service takes from Acme: a webhook that echoes, an in-memory code host, a
job handler that keeps what it is handed, a setup page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.config.settings import Settings
from conjunction.engine_api import EngineAPI
from conjunction.forges.driver import Running, Server, Setup
from conjunction.queue import JobHandler
from conjunction.web.templating import render
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


async def setup_page(request: web.Request) -> web.Response:
    return render(request, "acme/setup.html", title="Set up Acme")


def setup(
    _settings: Settings, _env_path: Path, _session: Callable[[], aiohttp.ClientSession]
) -> Setup:
    return Setup(
        routes=[web.get("/", setup_page)],
        templates=Path(__file__).with_name("templates"),
        form_targets=["https://acme.test"],
        announcement="set ACME_TOKEN and ACME_WEBHOOK_SECRET",
    )


SERVER = Server(webhook=webhook, start=start, deliveries=deliveries, setup=setup)
