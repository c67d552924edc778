"""The engine's hot reads in one call to the driver (conjunction/engine/rows.py), on SQLite and
PostgreSQL alike."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import column, exc, insert, select, table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.db import create_engine, migrate, sessionmaker
from conjunction.engine.rows import Statement, fetch_all, key_rows, keys_param
from conjunction.models import Subscription

LIB, TOOL, APP, CLI = "github.com/acme/lib", "github.com/acme/tool", "github.com/acme/app", "x/cli"


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    await migrate(engine)
    yield sessionmaker(engine)
    await engine.dispose()


async def test_the_rows_of_every_key_bound_as_one_array(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        edges = [(LIB, APP), (LIB, CLI), (TOOL, APP), (APP, CLI)]
        await session.execute(
            insert(Subscription), [{"upstream": u, "downstream": d, "spec": {}} for u, d in edges]
        )
        dialect = (await session.connection()).dialect.name
        statement = (
            select(Subscription.upstream, Subscription.downstream)
            .where(Subscription.upstream.in_(key_rows(dialect)))
            .order_by(Subscription.id)
        )
        found = await fetch_all(session, statement, {"keys": keys_param({LIB, TOOL, "unknown"})})
        assert [tuple(row) for row in found] == [(LIB, APP), (LIB, CLI), (TOOL, APP)]
        assert await fetch_all(session, statement, {"keys": keys_param([])}) == []


async def test_a_failed_read_is_raised_as_sqlalchemy_raises_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """What `conjunction.db.unavailable` sorts out (a locked database, a dropped connection)
    comes as SQLAlchemy's own errors, never the driver's."""
    missing: Statement = select(column("key")).select_from(table("missing"))
    async with sessions() as session:
        with pytest.raises(exc.DBAPIError, match="missing"):
            await fetch_all(session, missing, {})
