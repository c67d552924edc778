"""The running service's shared parts, built once at start-up and handed to every handler."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from conjunction.config.settings import Settings
from conjunction.engine import Engine
from conjunction.intake import Intake
from conjunction.queue import JobQueue, Worker


@dataclass
class Runtime:
    settings: Settings
    database: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    queue: JobQueue
    engine: Engine
    worker: Worker
    intake: Intake
