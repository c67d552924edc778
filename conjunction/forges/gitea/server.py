"""What the running service takes from Gitea and Forgejo: their webhook, the code host of the
bot account (GITEA_URL, GITEA_TOKEN, GITEA_WEBHOOK_SECRET) and the processing of deliveries."""

from __future__ import annotations

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.config.settings import Settings
from conjunction.engine_api import EngineAPI
from conjunction.forges.deliveries import StoredDeliveries
from conjunction.forges.driver import Running, Server
from conjunction.forges.gitea.events import HANDLERS
from conjunction.forges.gitea.host import GiteaHost
from conjunction.forges.gitea.settings import GiteaSettings
from conjunction.forges.gitea.webhook import webhook
from conjunction.queue import JobHandler


def start(
    settings: Settings, _http: aiohttp.ClientSession, _sessions: async_sessionmaker[AsyncSession]
) -> Running:
    gitea = settings.forge(GiteaSettings)
    if not gitea.enabled:
        return Running()
    host = GiteaHost.from_settings(gitea)
    return Running(host=host, close=host.client.close)


def deliveries(
    engine: EngineAPI, settings: Settings, _running: Running | None
) -> JobHandler | None:
    """Without a Gitea host name, no project can be a Gitea project: nothing to process."""
    host = settings.forge(GiteaSettings).host
    if not host:
        return None
    return StoredDeliveries(engine, host, HANDLERS)


SERVER = Server(webhook=webhook, start=start, deliveries=deliveries)
