"""The subscription graph a process keeps (`conjunction.engine.graph`): read again as soon as it
changed, whoever changed it, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from conjunction import db
from conjunction.adapters import Adapters
from conjunction.config.settings import Settings
from conjunction.engine import Engine, UpstreamSuccess, graph
from conjunction.engine.graph import GraphCache
from conjunction.engine.indexing import drop_project
from conjunction.tokens import CallbackSigner
from testkit.memoryhost import MemoryHost

A, B, C, D = (f"github.com/acme/{name}" for name in "abcd")


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(database_url)
    await db.migrate(engine)
    yield engine
    await engine.dispose()


def replica(database: AsyncEngine, database_url: str, forge: MemoryHost) -> Engine:
    """An engine of its own, as each replica has: its own kept graph, the shared database."""
    settings = Settings(database_url=database_url, public_url="https://conjunction.test")
    return Engine(db.sessionmaker(database), Adapters.of(forge), settings, CallbackSigner("k" * 20))


async def index(engine: Engine, name: str, *upstreams: str) -> None:
    config = "upstreams:" + "".join(f"\n  - project: {up}" for up in upstreams) + "\n"
    error = await engine.index_project(
        name, private=False, default_branch="main", config_text=config if upstreams else None
    )
    assert error is None


async def planned(engine: Engine, sha: str) -> list[str]:
    """The downstreams a success of A at `sha` got a trigger event for."""
    event = await engine.upstream_success(UpstreamSuccess(A, sha=sha, ref="main"))
    async with engine.sessions() as session:
        rows = await session.execute(
            text("SELECT project FROM events WHERE kind = 'trigger' AND parent_id = :parent"),
            {"parent": event.id},
        )
        return sorted(project for (project,) in rows)


async def test_a_change_made_by_another_replica_is_planned_with_at_once(
    database: AsyncEngine, database_url: str
) -> None:
    forge = MemoryHost()
    one, two = replica(database, database_url, forge), replica(database, database_url, forge)
    await index(one, B, A)
    assert await planned(one, "1" * 40) == [B]
    assert await planned(one, "2" * 40) == [B], "kept: the same answer"

    await index(two, C, A)  # a new downstream, indexed by the other replica
    assert await planned(one, "3" * 40) == [B, C]
    await index(two, B)  # B no longer declares A
    assert await planned(one, "4" * 40) == [C]
    await drop_project(two, C)  # C uninstalled
    assert await planned(one, "5" * 40) == []


async def test_a_diamond_planned_from_the_kept_graph_waits_as_when_read(
    database: AsyncEngine, database_url: str
) -> None:
    """A -> B -> D and A -> D: D waits for B, the second time (graph kept) as the first; and
    once D also follows C, the kept graph is read again."""
    engine = replica(database, database_url, MemoryHost())
    await index(engine, B, A)
    await index(engine, D, A, B)
    for sha in ("1" * 40, "2" * 40):
        assert await planned(engine, sha) == [B], "D waits for B"
    await index(engine, C, A)
    await index(engine, D, A, B, C)
    assert await planned(engine, "3" * 40) == [B, C]


async def version(database: AsyncEngine) -> int:
    async with database.connect() as connection:
        return int(await connection.scalar(text("SELECT version FROM graph_version")) or 0)


async def run(database: AsyncEngine, sql: str, **params: Any) -> None:
    async with database.begin() as connection:
        await connection.execute(text(sql), params)


async def subscribe(database: AsyncEngine, *edges: tuple[str, str]) -> None:
    async with database.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO subscriptions (upstream, downstream, spec) VALUES (:up, :down, '{}')"
            ),
            [{"up": up, "down": down} for up, down in edges],
        )


async def test_the_version_moves_with_the_graph_and_only_with_it(
    database: AsyncEngine, database_url: str
) -> None:
    """Every writer counts, the CLI's and a restore's too: database triggers move it."""
    await run(
        database,
        "INSERT INTO projects (key, name, private, default_branch, owners, active, updated_at)"
        " VALUES ('b', 'B', false, 'main', '[]', true, CURRENT_TIMESTAMP)",
    )
    start = await version(database)
    await subscribe(database, ("a", "b"))
    assert await version(database) == start + 1
    await run(database, "UPDATE projects SET config_sha = 'x', default_branch = 'dev'")
    assert await version(database) == start + 1, "not the graph"
    await run(database, "UPDATE projects SET active = false")
    assert await version(database) == start + 2
    await run(database, "UPDATE projects SET name = 'B2'")
    assert await version(database) == start + 3
    await run(database, "DELETE FROM subscriptions WHERE downstream = 'nothing'")
    assert await version(database) == start + 3, "no row changed"
    await run(database, "DELETE FROM subscriptions")
    assert await version(database) == start + 4


async def test_a_loop_in_the_kept_graph_is_seen_and_no_loop_is_checked_once(
    database: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks: list[int] = []
    real = graph.has_cycle

    def counted(downstreams: Any) -> bool:
        checks.append(len(downstreams))
        return real(downstreams)

    monkeypatch.setattr(graph, "has_cycle", counted)
    await subscribe(database, ("a", "b"), ("b", "c"))
    cache = GraphCache()
    sessions = db.sessionmaker(database)
    for _ in range(2):
        async with sessions() as session:
            view = await cache.view(session)
            kept = await view.downstreams(["a", "b", "c"])
            assert kept == {"a": ("b",), "b": ("c",), "c": ()}
            assert await view.acyclic(kept)
    assert checks == [3], "checked when it grew, then known"

    await subscribe(database, ("c", "a"))
    for _ in range(2):
        async with sessions() as session:
            view = await cache.view(session)
            kept = await view.downstreams(["a", "b", "c"])
            assert kept["c"] == ("a",), "read again: the version moved"
            assert not await view.acyclic(kept)
    assert checks == [3, 3, 3]


async def test_a_full_cache_starts_over(database: AsyncEngine) -> None:
    await subscribe(database, ("a", "b"), ("b", "c"), ("c", "d"))
    cache = GraphCache(projects=2)
    async with db.sessionmaker(database)() as session:
        view = await cache.view(session)
        assert await view.downstreams(["a", "b"]) == {"a": ("b",), "b": ("c",)}
        assert await view.downstreams(["c"]) == {"c": ("d",)}
        assert cache.downstreams.entries == {"c": ("d",)}
        assert not await view.acyclic(["a", "b", "c"]), "a and b are no longer kept: unknown"


async def test_without_its_version_row_the_graph_is_read_every_time(database: AsyncEngine) -> None:
    """An operator deleted the row by hand: planning goes on, keeping nothing."""
    await subscribe(database, ("a", "b"))
    await run(database, "DELETE FROM graph_version")
    cache = GraphCache()
    for expected in [{"b"}, {"b", "c"}]:
        async with db.sessionmaker(database)() as session:
            view = await cache.view(session)
            assert set((await view.downstreams(["a"]))["a"]) == expected
            assert await view.subscribers("a") == []  # no project b: no active subscriber
        assert (cache.downstreams.entries, cache.subscribers.entries) == ({}, {})
        await subscribe(database, ("a", "c"))
