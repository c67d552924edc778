"""The running service's shared parts, built once at start-up and handed to every handler."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.engine import Engine
from bot.intake import Intake
from bot.queue import JobQueue, Worker
from config.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    database: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    queue: JobQueue
    engine: Engine
    worker: Worker
    intake: Intake
