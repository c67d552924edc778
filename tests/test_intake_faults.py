"""The database unavailable: intake and health answer 503 with Retry-After, then recover.

SQLite: another connection holds the write lock. PostgreSQL: a TCP proxy in front of the real
server is cut (open connections reset, new ones refused) and restored.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import make_url

from app import create_app
from bot import db
from bot.adapters import Adapters
from bot.tokens import create_project_token
from config.settings import Settings
from tests.conftest import _postgres_or_skip, fixture, post_github, reset_postgres, runtime
from tests.tcpproxy import TcpProxy

UNAVAILABLE = (503, "10", {"error": "the database is unavailable; retry later"})
NO_WRITES = (503, "10", {"error": "the database does not take writes"})


async def answer_of(response: Any) -> tuple[int, str | None, Any]:
    return response.status, response.headers.get("Retry-After"), await response.json()


async def start(aiohttp_client: Any, settings: Settings, url: str) -> TestClient[Any, Any]:
    settings = settings.model_copy(update={"database_url": url})
    app = create_app(settings, adapters=Adapters(), run_workers=False)
    return await aiohttp_client(app)


async def intake_answers(client: TestClient[Any, Any], token: str) -> list[Any]:
    """A GitHub delivery, a build through the API and the health check."""
    build = {"project": "github.com/acme/lib", "sha": "d" * 40, "ref": "main", "result": "failure"}
    return [
        await answer_of(await post_github(client, "ping", fixture("github/ping.json"))),
        await answer_of(
            await client.post(
                "/api/v1/builds", json=build, headers={"Authorization": f"Bearer {token}"}
            )
        ),
        await answer_of(await client.get("/healthz")),
    ]


async def project_token(client: TestClient[Any, Any]) -> str:
    async with runtime(client).sessions.begin() as session:
        return await create_project_token(session, "github.com/acme/lib")


async def test_sqlite_write_lock_held_elsewhere(
    aiohttp_client: Any, settings: Settings, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "SQLITE_BUSY_SECONDS", 0.1)
    path = tmp_path / "locked.db"
    client = await start(aiohttp_client, settings, f"sqlite:///{path}")
    token = await project_token(client)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock, as a long job would
    try:
        assert await intake_answers(client, token) == [UNAVAILABLE, UNAVAILABLE, NO_WRITES]
    finally:
        other.execute("ROLLBACK")
        other.close()
    recovered = await intake_answers(client, token)
    assert [status for status, _, _ in recovered] == [202, 202, 200]


@pytest.fixture
async def postgres_proxy() -> AsyncIterator[tuple[TcpProxy, str]]:
    """A proxy to the test PostgreSQL, and the database URL through it."""
    url = _postgres_or_skip()
    await reset_postgres(url)
    target = make_url(url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    yield proxy, target.set(port=proxy.port).render_as_string(hide_password=False)
    await proxy.close()


@pytest.mark.postgres
async def test_postgres_down_and_back(
    aiohttp_client: Any, settings: Settings, postgres_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, url = postgres_proxy
    client = await start(aiohttp_client, settings, url)
    token = await project_token(client)
    await proxy.cut()
    assert await intake_answers(client, token) == [UNAVAILABLE, UNAVAILABLE, NO_WRITES]
    await proxy.restore()
    recovered = await intake_answers(client, token)
    assert [status for status, _, _ in recovered] == [202, 202, 200]
