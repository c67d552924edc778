"""What the running service takes from GitHub: its webhook, the GitHub App (its code host and
the clients of its events, when it is configured), the poller of upstreams no installation
covers (with the App or without it), the processing of deliveries, and the App's setup while no
forge is configured."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from gidgethub import sansio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.config.settings import Settings
from conjunction.engine_api import EngineAPI
from conjunction.forges.driver import Running, Server
from conjunction.forges.github.client import PolicyAPI, aiohttp_connect
from conjunction.forges.github.events import ClientFor, GitHubDeliveries
from conjunction.forges.github.poller import UpstreamPoller
from conjunction.forges.github.service import GitHubApp, build_github_app
from conjunction.forges.github.settings import GitHubSettings
from conjunction.forges.github.setup import setup
from conjunction.forges.github.webhook import webhook
from conjunction.queue import JobHandler


async def no_client(_event: sansio.Event) -> None:
    """Without GitHub credentials, events are processed without a GitHub client."""
    return None


@dataclass
class GitHubRunning(Running):
    app: GitHubApp | None = None


def start(
    settings: Settings, http: aiohttp.ClientSession, sessions: async_sessionmaker[AsyncSession]
) -> Running:
    github = settings.forge(GitHubSettings)
    app = build_github_app(github, http, sessions) if github.enabled else None

    def background(engine: EngineAPI) -> Mapping[str, Coroutine[Any, Any, None]]:
        poller = upstream_poller(github, engine, app, http)
        return {"poller": poller.run_forever(settings.poll_interval)}

    return GitHubRunning(host=app.forge if app else None, background=background, app=app)


def upstream_poller(
    settings: GitHubSettings,
    engine: EngineAPI,
    github: GitHubApp | None,
    http: aiohttp.ClientSession,
) -> UpstreamPoller:
    """Polls the GitHub upstreams no installation covers: with the app, through a downstream's
    installation where there is one; without it (a GitLab project downstream of a public GitHub
    repository), anonymously. It asks nothing of GitHub while no project declares one."""
    if github is not None:
        return UpstreamPoller(
            engine,
            engine.sessions,
            github.client_for_upstream,
            host=settings.host,
            anonymous=github.clients.anonymous(),
        )
    anonymous = aiohttp_connect(http, api_url=settings.api_url)()

    async def client_for(_upstream: str) -> PolicyAPI:
        return anonymous

    return UpstreamPoller(
        engine, engine.sessions, client_for, host=settings.host, anonymous=anonymous
    )


def deliveries(engine: EngineAPI, settings: Settings, running: Running | None) -> JobHandler:
    app = running.app if isinstance(running, GitHubRunning) else None
    client_for: ClientFor = app.client_for_event if app is not None else no_client
    return GitHubDeliveries(engine, settings.forge(GitHubSettings).host, client_for)


SERVER = Server(webhook=webhook, start=start, deliveries=deliveries, setup=setup)
