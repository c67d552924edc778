"""What the running service takes from GitLab: its webhook, its code host (the bot account's,
when GITLAB_TOKEN is set) and the processing of its deliveries."""

from __future__ import annotations

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.config.settings import Settings
from conjunction.engine_api import EngineAPI
from conjunction.forges.deliveries import StoredDeliveries
from conjunction.forges.driver import Running, Server
from conjunction.forges.gitlab.events import HANDLERS
from conjunction.forges.gitlab.host import GitLabHost
from conjunction.forges.gitlab.settings import GitLabSettings
from conjunction.forges.gitlab.webhook import webhook
from conjunction.queue import JobHandler


def start(
    settings: Settings, _http: aiohttp.ClientSession, _sessions: async_sessionmaker[AsyncSession]
) -> Running:
    gitlab = settings.forge(GitLabSettings)
    if not gitlab.enabled:
        return Running()
    host = GitLabHost.from_settings(gitlab)

    async def close() -> None:
        host.client.close()

    return Running(host=host, close=close)


def deliveries(engine: EngineAPI, settings: Settings, _running: Running | None) -> JobHandler:
    return StoredDeliveries(engine, settings.forge(GitLabSettings).host, HANDLERS)


SERVER = Server(webhook=webhook, start=start, deliveries=deliveries)
