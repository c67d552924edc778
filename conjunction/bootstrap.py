"""Start-up shared by the server and every command: the database opened and migrated, and the
engine built on it with the callback signer's key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from conjunction import db
from conjunction.adapters import Adapters
from conjunction.config.settings import Settings
from conjunction.engine import Engine
from conjunction.secrets import SecretStore
from conjunction.tokens import CallbackSigner, ensure_secret_key


@dataclass
class Opened:
    """The database as `opened` leaves it: migrated to the newest schema."""

    settings: Settings
    database: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    async def engine(self, adapters: Adapters, secrets: SecretStore | None = None) -> Engine:
        """The engine over these sessions; the signing key is made and stored on first use."""
        key = await ensure_secret_key(self.sessions, self.settings.secret_key)
        return Engine(
            self.sessions, adapters, self.settings, CallbackSigner(key), secrets or SecretStore()
        )


@asynccontextmanager
async def opened(settings: Settings, *, pool_size: int = 5) -> AsyncIterator[Opened]:
    """The database of CONJUNCTION_DATABASE_URL with every migration applied (migrations run at
    every start, so an upgrade needs no step of its own), disposed of on the way out."""
    database = db.create_engine(settings.database_url, pool_size)
    try:
        await db.migrate(database)
        yield Opened(settings, database, db.sessionmaker(database))
    finally:
        await database.dispose()
