"""The app as `python app.py` builds it: GitHub parts wired from the settings alone."""

from __future__ import annotations

import asyncio
from typing import Any

from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.forges.github.forge import GitHubForge
from conjunction.web.context import RUNTIME


async def test_github_is_wired_from_settings(aiohttp_client: Any, settings: Settings) -> None:
    client = await aiohttp_client(create_app(settings))
    engine = client.app[RUNTIME].engine
    assert isinstance(engine.adapters.host("github.com/acme/lib"), GitHubForge)
    assert engine.adapters.host("gitlab.com/acme/lib") is None
    tasks = {task.get_name() for task in asyncio.all_tasks()}
    assert {"worker", "sweeper", "poller"} <= tasks
    assert (await client.get("/healthz")).status == 200
    page = await client.get("/")
    assert page.status == 200
    assert "0 public projects." in await page.text(), "the dashboard replaces the setup page"


async def test_without_a_forge_the_setup_is_served(aiohttp_client: Any, tmp_path: Any) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'c.db'}")
    client = await aiohttp_client(create_app(settings, env_path=tmp_path / ".env"))
    page = await client.get("/")
    assert page.status == 200
    assert "/setup?code=" in await page.text(), "/ says where the setup link is"
    assert (await client.get("/setup")).status == 403, "the setup exists, for the code's holder"
    assert client.app[RUNTIME].engine.adapters.host("github.com/acme/lib") is None
