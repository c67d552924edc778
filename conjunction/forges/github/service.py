"""The GitHub App's parts, built from the settings: clients, the forge, event clients.

Every client handed out here is a policy client (`conjunction.forges.github.client`), so the
adapter, the handlers (through `client_for_event`) and the poller (through `client_for_upstream`)
call GitHub with one policy, one pacer and one response cache.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp
from gidgethub import sansio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.forges.github import installations
from conjunction.forges.github.auth import GitHubAppAuth
from conjunction.forges.github.client import Connect, GitHubClients, PolicyAPI, aiohttp_connect
from conjunction.forges.github.forge import GitHubForge
from conjunction.forges.github.settings import GitHubSettings
from conjunction.models import Project, Subscription
from conjunction.names import project_key

log = logging.getLogger(__name__)

GONE = {"deleted", "suspend"}


@dataclass
class GitHubApp:
    host: str
    clients: GitHubClients
    forge: GitHubForge
    sessions: async_sessionmaker[AsyncSession]

    @classmethod
    def build(
        cls, settings: GitHubSettings, connect: Connect, sessions: async_sessionmaker[AsyncSession]
    ) -> GitHubApp:
        """The app's parts, reaching GitHub through connect."""
        assert settings.app_id and settings.private_key

        auth = GitHubAppAuth(settings.app_id, settings.private_key)
        clients = GitHubClients(
            auth, connect, installation_lookup=installations.InstallationLookup(sessions)
        )
        forge = GitHubForge(clients.for_project, host=settings.host, web_url=settings.web_url)
        return cls(settings.host, clients, forge, sessions)

    async def client_for_upstream(self, upstream: str) -> PolicyAPI:
        """For polling an upstream without the app: a downstream's installation (5,000 calls
        an hour) where there is one, else anonymous (60 an hour)."""
        async with self.sessions() as session:
            installation = await session.scalar(
                select(Project.installation_id)
                .join(Subscription, Subscription.downstream == Project.key)
                .where(
                    Subscription.upstream == project_key(upstream),
                    Project.active.is_(True),
                    Project.installation_id.is_not(None),
                )
                .limit(1)
            )
        if installation is None:
            return self.clients.anonymous()
        return await self.clients.for_installation(installation)

    async def client_for_event(self, event: sansio.Event) -> PolicyAPI | None:
        """The installation's client; payloads without `installation` are looked up by repo."""
        installation = (event.data.get("installation") or {}).get("id")
        if event.event == "installation" and event.data.get("action") in GONE:
            return None  # no token is issued for an installation that is gone or suspended
        if installation:
            return await self.clients.for_installation(int(installation))
        repository = (event.data.get("repository") or {}).get("full_name")
        if not repository:
            return None
        try:
            return await self.clients.for_project(f"{self.host}/{repository}")
        except LookupError:
            log.info("app not installed on %s; event read without a client", repository)
            return None


def build_github_app(
    settings: GitHubSettings,
    http: aiohttp.ClientSession,
    sessions: async_sessionmaker[AsyncSession],
) -> GitHubApp:
    return GitHubApp.build(settings, aiohttp_connect(http, api_url=settings.api_url), sessions)
