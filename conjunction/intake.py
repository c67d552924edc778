"""Storing webhook deliveries with group commit: many deliveries share one transaction.

A request hands its checked delivery to the process's one `Intake` and waits. The deliveries
that arrive while a commit is under way gather, and the next commit stores all of them and
queues their jobs in one transaction (one fsync); each request is answered only once that
commit is durable (`conjunction.batching`).

A delivery id already stored, or given twice in one batch, is left out by the insert itself
(ON CONFLICT DO NOTHING) without failing the others, and answered "duplicate". When the
database is unavailable, every request of the batch gets the error (answered 503 with
Retry-After) and none of the batch is stored; any other error of a batch is retried one delivery
at a time, so a delivery the database refuses fails only itself.

With a spool (`conjunction.spool`), a delivery the database cannot take for now (locked,
unreachable) is written to disk instead and answered as stored; while the spool holds deliveries,
new ones go there at once rather than wait for the database. A background task moves them into the
database once it answers, idempotently by delivery id (a delivery both spooled and stored is
processed once), and the spool is emptied before anything else when the server starts. Only a
delivery that neither the database nor the disk takes is answered 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Container, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction import db, metrics
from conjunction.batching import GroupCommit
from conjunction.forges.driver import job_kind
from conjunction.models import Delivery, Job, utcnow
from conjunction.spool import Spool

log = logging.getLogger(__name__)

# Deliveries in one transaction at most: well under the bound parameters both databases take
# in one statement (7 a delivery; SQLite takes 32,766, PostgreSQL 32,767).
MAX_BATCH = 500
# Intake counts as busy this long after the last delivery arrived (see `Intake.busy`).
QUIET_SECONDS = 0.2
# Waits between tries to move spooled deliveries into a database that does not answer.
DRAIN_FIRST_WAIT, DRAIN_LONGEST_WAIT = 0.5, 5.0

# The batch's two statements, built once: Core inserts into the tables, which SQLAlchemy
# compiles once and caches, where the ORM's bulk insert of the same rows costs about half as
# much again a delivery. Both dialects' inserts take ON CONFLICT; SQLAlchemy's generic one does
# not. Given many rows, SQLAlchemy sends each as multi-row VALUES.
_DELIVERIES = cast(Table, Delivery.__table__)
_NEW_DELIVERIES = {
    name: dialect_insert(_DELIVERIES)
    .on_conflict_do_nothing(index_elements=["forge", "delivery_id"])
    .returning(_DELIVERIES.c.id, _DELIVERIES.c.forge, _DELIVERIES.c.delivery_id)
    for name, dialect_insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}
_NEW_JOBS = insert(cast(Table, Job.__table__))


@dataclass(frozen=True)
class Incoming:
    """A delivery that passed every check and is to be stored."""

    forge: str
    delivery_id: str
    event: str
    headers: dict[str, str]
    body: str
    owner: str | None = None  # whose turn its job takes in the queue (`conjunction.delivery_owner`)

    @property
    def key(self) -> tuple[str, str]:
        return self.forge, self.delivery_id

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Incoming:
        """A delivery as the spool kept it; ValueError when the record is not one."""
        text = ("forge", "delivery_id", "event", "body")
        if not all(isinstance(record.get(name), str) for name in text):
            raise ValueError(f"a spooled delivery needs the texts {', '.join(text)}")
        headers, owner = record.get("headers"), record.get("owner")
        if not isinstance(headers, dict) or not all(
            isinstance(value, str) for value in headers.values()
        ):
            raise ValueError("a spooled delivery's headers must be texts")
        if owner is not None and not isinstance(owner, str):
            raise ValueError("a spooled delivery's owner must be a text")
        return cls(**{name: record[name] for name in text}, headers=headers, owner=owner)


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
        spool: Spool | None = None,
    ) -> None:
        self.sessions = sessions
        self.job_kinds = job_kinds
        self.on_stored = on_stored
        self.quiet = quiet
        self.clock = clock
        self.spool = spool
        self._batches = GroupCommit(self._store_batch, max_batch=MAX_BATCH, name="intake")
        self._last_arrival = -math.inf
        self._spooling = False  # the spool holds deliveries: new ones join them there
        self._spooled = asyncio.Event()
        self._draining: asyncio.Task[None] | None = None

    async def store(self, delivery: Incoming) -> bool:
        """Store the delivery and queue its job; True once both are committed (or, the database
        unavailable, the delivery is spooled), False when its id was stored before. Raises the
        database's error when neither the database nor the spool took it."""
        self._last_arrival = self.clock()
        if self.spool is None:
            return await self._batches.submit(delivery)
        if not self._spooling:
            try:
                return await self._batches.submit(delivery)
            except Exception as exc:
                if not db.unavailable(exc):
                    raise
                if not self._spooling:  # once for the deliveries of a batch
                    log.warning("database unavailable: deliveries go to the spool: %r", exc)
                self._spooling = True
                return await self._to_spool(self.spool, delivery, exc)
        return await self._to_spool(self.spool, delivery, None)

    async def _to_spool(self, spool: Spool, delivery: Incoming, refused: Exception | None) -> bool:
        """Write the delivery to the spool; when the disk fails too, try the database (again)."""
        try:
            await asyncio.to_thread(spool.put, "\n".join(delivery.key), asdict(delivery))
        except OSError:
            log.exception(
                "delivery neither stored nor spooled",
                extra={"forge": delivery.forge, "delivery_id": delivery.delivery_id},
            )
            if refused is not None:
                raise refused from None
            return await self._batches.submit(delivery)
        metrics.DELIVERIES.labels(delivery.forge, "spooled").inc()
        self._spooled.set()
        return True

    async def start(self) -> None:
        """Move what the spool holds into the database (when it answers), then keep moving
        what arrives there in the background until `close`."""
        if self.spool is None:
            return
        await asyncio.to_thread(self.spool.clean)
        try:
            await self.drain()
        except Exception as exc:
            if not db.unavailable(exc):
                raise
            log.warning("spooled deliveries wait for the database: %r", exc)
            self._spooled.set()
        self._draining = asyncio.create_task(self._drain_forever(), name="spool drainer")

    async def drain(self) -> int:
        """Move every spooled delivery into the database and queue its job (one already stored
        is left out), removing each file once it is committed; how many were stored. Raises the
        database's error when it is unavailable; the files left wait for the next drain."""
        spool = self.spool
        if spool is None:
            return 0
        moved = 0
        while paths := await asyncio.to_thread(spool.waiting, MAX_BATCH):
            batch: list[tuple[Path, Incoming]] = []
            for path in paths:
                try:
                    record = await asyncio.to_thread(spool.read, path)
                    batch.append((path, Incoming.from_record(record)))
                except FileNotFoundError:  # another process drained it
                    continue
                except ValueError as exc:
                    await asyncio.to_thread(spool.reject, path, f"not a delivery: {exc}")
            if not batch:
                continue
            answers = await self._store_spooled([delivery for _, delivery in batch])
            for (path, _), answer in zip(batch, answers, strict=True):
                if isinstance(answer, BaseException):
                    if db.unavailable(answer):
                        raise answer
                    reason = f"the database refused it: {answer!r}"
                    await asyncio.to_thread(spool.reject, path, reason)
                    continue
                moved += answer
                await asyncio.to_thread(spool.remove, path)
        self._spooling = False
        if moved:
            log.info("spooled deliveries stored: %d", moved)
        return moved

    async def _store_spooled(self, batch: list[Incoming]) -> Sequence[bool | BaseException]:
        """`_store_batch`, with the error of a lone delivery the database refuses as its answer."""
        try:
            return await self._store_batch(batch)
        except Exception as exc:
            if db.unavailable(exc):
                raise
            return [exc]

    async def _drain_forever(self) -> None:
        wait = DRAIN_FIRST_WAIT
        while True:
            await self._spooled.wait()
            self._spooled.clear()
            try:
                await self.drain()
                wait = DRAIN_FIRST_WAIT
            except Exception as exc:
                if not db.unavailable(exc):
                    log.exception("spooled deliveries not stored; trying again")
                elif wait == DRAIN_FIRST_WAIT:  # once for each outage
                    log.warning("spooled deliveries wait for the database: %r", exc)
                self._spooled.set()
                await asyncio.sleep(wait)
                wait = min(wait * 2, DRAIN_LONGEST_WAIT)

    @property
    def waiting(self) -> int:
        """Deliveries handed over and not answered yet."""
        return self._batches.waiting

    def busy(self) -> bool:
        """Whether deliveries are arriving: some wait for a commit, or the last one came less
        than `quiet` seconds ago. The worker leaves the database and the loop to intake then."""
        return self.waiting > 0 or self.clock() - self._last_arrival < self.quiet

    async def close(self) -> None:
        """Wait until every delivery handed over is committed, spooled or answered with its
        error; stop moving spooled deliveries (the next start moves what is left)."""
        await self._batches.close()
        if self._draining is not None:
            self._draining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._draining

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
        owners: dict[tuple[str, str], str | None] = {}
        now = utcnow()
        for delivery in deliveries:
            owners.setdefault(delivery.key, delivery.owner)
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
            new = await session.execute(
                _NEW_DELIVERIES[session.get_bind().dialect.name], list(rows.values())
            )
            stored, jobs = set(), []
            for row_id, forge, delivery_id in new:
                stored.add((forge, delivery_id))
                kind = job_kind(forge)
                if kind in self.job_kinds:
                    owner = owners[forge, delivery_id]
                    jobs.append(_job(kind, {"delivery": row_id}, owner, now))
            if jobs:
                await session.execute(_NEW_JOBS, jobs)
        for job in jobs:
            metrics.JOBS_ENQUEUED.labels(job["kind"]).inc()
        metrics.INTAKE_BATCH.observe(len(rows))
        return stored


def _job(kind: str, payload: dict[str, Any], owner: str | None, now: Any) -> dict[str, Any]:
    """A delivery's job as a row of `jobs`, inserted with the batch's others in one statement
    (`JobQueue.enqueue` adds one object at a time)."""
    return {
        "kind": kind,
        "payload": payload,
        "state": "queued",
        "attempts": 0,
        "run_at": now,
        "concurrency_key": owner,
        "created_at": now,
    }
