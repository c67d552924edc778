"""What the running service takes from GitLab: its webhook, its code host (the bot account's,
when GITLAB_TOKEN is set) and the processing of its deliveries."""

from __future__ import annotations

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.engine_api import EngineAPI
from bot.forges.driver import Running, Server
from bot.forges.gitlab.host import GitLabHost
from bot.queue import JobHandler
from config.settings import Settings
from handlers.gitlab import GitLabDeliveries
from handlers.gitlab.webhook import webhook


def start(
    settings: Settings, _http: aiohttp.ClientSession, _sessions: async_sessionmaker[AsyncSession]
) -> Running:
    if not settings.gitlab_enabled:
        return Running()
    host = GitLabHost.from_settings(settings)

    async def close() -> None:
        host.client.close()

    return Running(host=host, close=close)


def deliveries(engine: EngineAPI, settings: Settings, _running: Running | None) -> JobHandler:
    return GitLabDeliveries(engine, settings.gitlab_host)


SERVER = Server(webhook=webhook, start=start, deliveries=deliveries)
