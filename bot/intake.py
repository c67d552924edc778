"""Storing webhook deliveries with group commit: many deliveries share one transaction.

A request hands its checked delivery to the process's one `Intake` and waits. The deliveries
that arrive while a commit is under way gather, and the next commit stores all of them and
queues their jobs in one transaction (one fsync); each request is answered only once that
commit is durable (`bot.batching`).

A delivery id already stored, or given twice in one batch, is left out by the insert itself
(ON CONFLICT DO NOTHING) without failing the others, and answered "duplicate". When the
database is unavailable, every request of the batch gets the error (answered 503 with
Retry-After) and none of the batch is stored; any other error of a batch is retried one delivery
at a time, so a delivery the database refuses fails only itself.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import db, metrics
from bot.batching import GroupCommit
from bot.forges.driver import job_kind
from bot.models import Delivery, utcnow
from bot.queue import JobQueue

# Deliveries in one transaction at most: well under the bound parameters both databases take
# in one statement (7 a delivery; SQLite takes 32,766, PostgreSQL 32,767).
MAX_BATCH = 500
# Intake counts as busy this long after the last delivery arrived (see `Intake.busy`).
QUIET_SECONDS = 0.2

# Both dialects' inserts take ON CONFLICT; SQLAlchemy's generic one does not.
_INSERTS: dict[str, Callable[..., Any]] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


@dataclass(frozen=True)
class Incoming:
    """A delivery that passed every check and is to be stored."""

    forge: str
    delivery_id: str
    event: str
    headers: dict[str, str]
    body: str

    @property
    def key(self) -> tuple[str, str]:
        return self.forge, self.delivery_id


class Intake:
    """The one committer of a process's webhook deliveries.

    `job_kinds` are the job kinds a worker handles (`github_delivery`, ...): a delivery of a
    forge without one is stored with no job, until that forge's adapter is on. `on_stored` is
    called after each commit that stored something (the worker's wake-up).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        job_kinds: Container[str],
        on_stored: Callable[[], object] = lambda: None,
        *,
        quiet: float = QUIET_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.job_kinds = job_kinds
        self.on_stored = on_stored
        self.quiet = quiet
        self.clock = clock
        self._batches = GroupCommit(self._store_batch, max_batch=MAX_BATCH, name="intake")
        self._last_arrival = -math.inf

    async def store(self, delivery: Incoming) -> bool:
        """Store the delivery and queue its job; True once both are committed, False when its
        id was stored before. Raises the database's error when its batch could not be stored."""
        self._last_arrival = self.clock()
        return await self._batches.submit(delivery)

    @property
    def waiting(self) -> int:
        """Deliveries handed over and not answered yet."""
        return self._batches.waiting

    def busy(self) -> bool:
        """Whether deliveries are arriving: some wait for a commit, or the last one came less
        than `quiet` seconds ago. The worker leaves the database and the loop to intake then."""
        return self.waiting > 0 or self.clock() - self._last_arrival < self.quiet

    async def close(self) -> None:
        """Wait until every delivery handed over is committed (or answered with its error)."""
        await self._batches.close()

    async def _store_batch(self, batch: list[Incoming]) -> Sequence[bool | BaseException]:
        try:
            stored = await self._insert(batch)
        except Exception as exc:
            if len(batch) == 1 or db.unavailable(exc):
                raise
            return [await self._store_alone(delivery) for delivery in batch]
        if stored:
            self.on_stored()
        answers = []
        for delivery in batch:
            # the first of the batch with an id answers for it; a repeat is a duplicate
            answers.append(delivery.key in stored)
            stored.discard(delivery.key)
        return answers

    async def _store_alone(self, delivery: Incoming) -> bool | BaseException:
        try:
            [stored] = await self._store_batch([delivery])
        except Exception as exc:
            return exc
        return stored

    async def _insert(self, deliveries: list[Incoming]) -> set[tuple[str, str]]:
        """Store the deliveries whose ids are new and queue a job for each, in one transaction;
        the keys of those stored."""
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        now = utcnow()
        for delivery in deliveries:
            rows.setdefault(
                delivery.key,
                {
                    "forge": delivery.forge,
                    "delivery_id": delivery.delivery_id,
                    "event": delivery.event,
                    "headers": delivery.headers,
                    "body": delivery.body,
                    "received_at": now,
                },
            )
        async with self.sessions.begin() as session:
            insert = _INSERTS[session.get_bind().dialect.name](Delivery)
            # one statement given many rows: SQLAlchemy sends them as multi-row VALUES, and its
            # compiled form is cached (explicit .values() rows would be compiled every time)
            new = await session.execute(
                insert.on_conflict_do_nothing(index_elements=["forge", "delivery_id"]).returning(
                    Delivery.id, Delivery.forge, Delivery.delivery_id
                ),
                list(rows.values()),
            )
            stored = set()
            for row_id, forge, delivery_id in new:
                stored.add((forge, delivery_id))
                kind = job_kind(forge)
                if kind in self.job_kinds:
                    await JobQueue.enqueue(session, kind, {"delivery": row_id})
        metrics.INTAKE_BATCH.observe(len(rows))
        return stored
