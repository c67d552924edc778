"""Database engine, sessions and migrations (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy import event, exc, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS = Path(__file__).with_name("migrations")
# A write waits this long for SQLite's lock before the request is answered 503: well within the
# 10 s GitHub waits for an answer, long enough for the queue's short transactions to finish.
SQLITE_BUSY_SECONDS = 5.0
MIGRATION_LOCK = 0x636F6E6A  # PostgreSQL advisory lock key ("conj") of `migrate`
CONNECT_SECONDS = 5.0  # a PostgreSQL that does not answer a connection attempt
POOL_WAIT_SECONDS = 5.0  # every pooled connection busy

# asyncpg's errors while connecting (refused, unreachable, timed out, starting up, too many
# clients) reach the caller without SQLAlchemy's wrapping; OSError covers TimeoutError.
_UNAVAILABLE = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.TimeoutError,
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


def async_url(url: str) -> str:
    """Give a plain database URL the async driver SQLAlchemy needs."""
    scheme, rest = url.split("://", 1)
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    if base in {"postgresql", "postgres"}:
        return f"postgresql+asyncpg://{rest}"
    raise ValueError(f"unsupported database URL scheme {scheme!r}")


def create_engine(url: str, pool_size: int = 5) -> AsyncEngine:
    """An engine; on PostgreSQL it keeps `pool_size` connections open, as many as the process
    uses at once, or every connection past them is closed after use and opened again for the
    next (a new server process each). SQLite keeps the default 5: one writer at a time, and a
    connection to a file costs little to open but a page cache to keep.

    No pre-ping at each checkout (a round trip every transaction): a connection the server
    dropped fails its first statement as unavailable — the caller's answer is a retry, a spooled
    delivery or a 503 — and SQLAlchemy then replaces every pooled connection opened before."""
    full_url = async_url(url)
    postgres = full_url.startswith("postgresql")
    engine = create_async_engine(
        full_url,
        pool_size=pool_size if postgres else 5,
        pool_timeout=POOL_WAIT_SECONDS,
        connect_args={"timeout": CONNECT_SECONDS} if postgres else {},
    )
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
            cursor.close()

    return engine


def unavailable(error: BaseException) -> bool:
    """Whether an error means the database cannot be reached or written for now (down,
    restarting, locked, out of connections) rather than a fault of the request or the code."""
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, _UNAVAILABLE)


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _upgrade(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply every Alembic migration not yet applied (up to `revision`).

    On PostgreSQL one process at a time does, under an advisory lock held until its transaction
    ends, so replicas started together on one database do not race: the first applies the
    migrations, the others wait and find nothing left to do."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
            )
        await connection.run_sync(_upgrade, revision)
