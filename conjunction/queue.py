"""A durable job queue in the application's own database.

Jobs are rows. A worker claims them in batches by moving them to `running` with a lease and
extends each job's lease while it runs. A running worker also says every few seconds that it is
alive (a row in `workers`): the jobs of a worker that has not said so for WORKER_TIMEOUT — a
process killed or crashed — are claimed again at once, well before their leases run out, so a
server that starts again resumes them within half a minute. A worker that is stopped returns its
jobs at once. On PostgreSQL the claim uses `FOR UPDATE SKIP LOCKED`, so several processes share the
queue without taking a job twice.

A worker runs up to `concurrency` jobs at once, and at most `per_key` of those that share a
concurrency key (the owner whose forge budget they spend): one busy installation or slow CI
leaves the other slots to everyone else. Webhook deliveries' jobs, short and queued by owner at
intake, are never held back so. The keys take turns: a key's next job waits behind the first
job of every key that runs less, so one owner's burst of a thousand deliveries never holds
another owner's first. A job postponed by pacing (`RetryLater`) goes back to the queue and holds
no slot while it waits. While webhooks are arriving (`yield_to`), a worker starts new jobs only
up to a quarter of its slots: answering them comes first, as they share the event loop and the
database, and the jobs keep moving meanwhile.

The jobs that finish together are marked done in one transaction (`conjunction.batching`): under
load a job costs its own commits and a share of one claim and one completion.

Done jobs, and the webhook deliveries no job needs any more, are deleted after a retention
period; dead jobs wait for an operator to retry or purge them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Container, Iterable, Mapping
from datetime import datetime, timedelta
from functools import cache
from typing import Any, NamedTuple, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    bindparam,
    delete,
    func,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased
from sqlalchemy.sql.dml import ReturningUpdate

from conjunction import db, metrics
from conjunction.batching import GroupCommit
from conjunction.models import Delivery, Job, WorkerBeat, utcnow

log = logging.getLogger(__name__)

JobHandler = Callable[[dict[str, Any]], Awaitable[None]]
T = TypeVar("T")
Candidates = Select[int, str | None, datetime, str]  # id, concurrency key, run_at, kind
# the jobs' table: the queue's statements are Core, its jobs built from their rows
JOBS = cast(Table, Job.__table__)

FINISHED = ("done", "dead")
DELIVERY = "_delivery"  # the kinds of webhook deliveries' jobs end so: `github_delivery`, ...
BUSY_SHARE = 4  # while intake is busy, a worker runs at most 1/BUSY_SHARE of its slots
PURGE_BATCH = 1000
COMPLETE_BATCH = 500  # jobs marked done in one statement at most (3 parameters each)
HEADS_TTL = 0.25  # seconds a worker reuses the first due job of every owner it read
# A running worker says it is alive every HEARTBEAT seconds; one silent for WORKER_TIMEOUT is
# dead and its jobs are taken again. Its event loop would have to be blocked that long for a
# living worker to lose its jobs (the same holds for the leases, whose heartbeat is a third).
HEARTBEAT, WORKER_TIMEOUT = 5.0, 20.0
GONE_WORKERS = timedelta(hours=1)  # rows of workers silent this long are deleted
# Waits between tries to record a job's outcome while the database is unavailable.
RECORD_FIRST_WAIT, RECORD_LONGEST_WAIT = 0.5, 5.0

# Raised by a handler, these come from the job's own data (a payload of the wrong shape, a
# missing key, text that does not parse) or from a bug, never from the moment: a retry fails
# the same way. pydantic's ValidationError and json's JSONDecodeError are ValueErrors.
# Network and database errors (OSError, aiohttp's and SQLAlchemy's) are not among them.
DETERMINISTIC_ERRORS = (KeyError, IndexError, TypeError, AttributeError, ValueError)


class PermanentError(Exception):
    """A job failure that retrying cannot fix: the job goes straight to the dead letters."""


class LeaseLost(Exception):
    """The job's lease ran out and another worker may hold the job now."""


class RetryLater(Exception):
    """Run the job again after `delay` seconds without counting it as a failure."""

    def __init__(self, delay: float, reason: str = "") -> None:
        super().__init__(reason or f"retry in {delay:.0f}s")
        self.delay = delay


def backoff(attempts: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: between base/2 and base * 2**(attempts-1), at most cap."""
    exponent = min(max(attempts - 1, 0), 64)  # 2.0 * 2**5000 would overflow a float
    ceiling = min(cap, base * 2**exponent)
    return random.uniform(min(base / 2, ceiling), ceiling)


class JobQueue:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        max_attempts: int = 8,
        base_delay: float = 2.0,
        max_delay: float = 900.0,
        lease: float = 60.0,
    ) -> None:
        self.sessions = sessions
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lease = lease
        self._completions = GroupCommit(
            self._complete_batch, max_batch=COMPLETE_BATCH, name="job completions"
        )
        self._heads: tuple[float, list[int]] | None = None  # when read, and what

    @staticmethod
    async def enqueue(
        session: AsyncSession,
        kind: str,
        payload: dict[str, Any],
        *,
        dedupe_key: str | None = None,
        delay: float = 0.0,
        concurrency_key: str | None = None,
        interval: float = 0.0,
    ) -> None:
        """Add a job inside the caller's transaction.

        With a dedupe_key, a job with the same key still waiting to run absorbs this one:
        a burst of requests for the same work becomes one run; with an `interval` too, runs of
        that key are at least that many seconds apart (the first of a burst runs at once).
        A concurrency_key names whose budget the job spends (`github.com/acme`); a worker runs
        only so many of one key at once.
        """
        run_at = utcnow() + timedelta(seconds=delay)
        if dedupe_key is not None:
            waiting = await session.scalar(
                select(Job.id).where(Job.dedupe_key == dedupe_key, Job.state == "queued").limit(1)
            )
            if waiting is not None:
                return
            if interval:
                last = await session.scalar(
                    select(func.max(Job.run_at)).where(Job.dedupe_key == dedupe_key)
                )
                if last is not None:
                    run_at = max(run_at, last + timedelta(seconds=interval))
        session.add(
            Job(
                kind=kind,
                payload=payload,
                dedupe_key=dedupe_key,
                concurrency_key=concurrency_key,
                run_at=run_at,
            )
        )
        metrics.JOBS_ENQUEUED.labels(kind).inc()

    @staticmethod
    async def next_run_at(
        session: AsyncSession, kind: str, concurrency_keys: Iterable[str]
    ) -> datetime | None:
        """When the first queued job of `kind` for those keys that waits for a later time (a
        postponed or retried one) is due; None when none waits."""
        return await session.scalar(
            select(func.min(Job.run_at)).where(
                Job.state == "queued",
                Job.run_at > utcnow(),
                Job.kind == kind,
                Job.concurrency_key.in_(set(concurrency_keys)),
            )
        )

    async def claim(self, worker_id: str) -> Job | None:
        """Take the next due job, or one whose worker's lease ran out."""
        jobs = await self.claim_batch(worker_id, 1)
        return jobs[0] if jobs else None

    async def claim_batch(
        self,
        worker_id: str,
        limit: int,
        *,
        per_key: int | None = None,
        busy: Mapping[str, int] | None = None,
        in_flight: Mapping[str | None, int] | None = None,
    ) -> list[Job]:
        """Take up to `limit` due jobs (or jobs whose worker's lease ran out) in one transaction,
        the concurrency keys taking turns (`fair_order`), each key's oldest first; with
        `per_key`, at most that many of one key counting the `busy` ones the worker runs
        (webhook deliveries' jobs, short and their owner's only way in, are never held back).
        `in_flight` counts the worker's jobs running by key, of every kind, for the turns."""
        now = utcnow()
        busy = busy or {}
        full = sorted(key for key, count in busy.items() if per_key and count >= per_key)
        statements = _claim_statements(bool(full))
        params: dict[str, Any] = {
            "now": now,
            "silent_before": now - timedelta(seconds=WORKER_TIMEOUT),
            "worker_id": worker_id,
            "until": now + timedelta(seconds=self.lease),
            "read": limit * 4,
            **({"full": full} if full else {}),
        }
        async with self.sessions.begin() as session:
            connection = await session.connection()  # the reads as Core: no ORM entity in them
            # Another worker may take every chosen job between the read and the update (SQLite,
            # which has no row locks): then look again.
            for _ in range(5):
                rows = list(await connection.execute(statements.due, params))
                if len(rows) == limit * 4:  # more are due: some key may wait behind a burst
                    # (two statements: planned as one, with a burst not yet in the planner's
                    # statistics, PostgreSQL ran the grouping once for every due job)
                    firsts = await self._first_of_each_owner(connection, statements.heads, params)
                    rows += await connection.execute(statements.more, {**params, "ids": firsts})
                rows += await connection.execute(statements.lapsed, params)
                chosen = self._choose(fair_order(rows, in_flight or {}), limit, per_key, dict(busy))
                if not chosen:
                    return []
                # Checking the state again in the update makes the claim safe where row locks
                # don't exist (SQLite): a job another worker took meanwhile is left out.
                claimed = await connection.execute(statements.claim, {**params, "ids": chosen})
                jobs = sorted(
                    (Job(**row._mapping) for row in claimed), key=lambda job: (job.run_at, job.id)
                )
                if jobs:
                    return jobs
            return []

    async def _first_of_each_owner(
        self, connection: AsyncConnection, heads: Select[int], params: dict[str, Any]
    ) -> list[int]:
        """The first due job of every owner, read at most once a `HEADS_TTL`: the read goes
        through every due job (thousands behind a burst, milliseconds of the database's CPU a
        claim). A head taken since is left out by the claim's own condition; an owner whose
        first job came since is seen at the next read, or sooner among the oldest due jobs."""
        now = time.monotonic()
        if self._heads is None or now - self._heads[0] > HEADS_TTL:
            self._heads = (now, list(await connection.scalars(heads, params)))
        return self._heads[1]

    @staticmethod
    def _choose(
        rows: Iterable[tuple[int, str | None, str]],
        limit: int,
        per_key: int | None,
        busy: dict[str, int],
    ) -> list[int]:
        """The ids of the first `limit` rows (id, key, kind) whose key has room for one more job
        (a delivery's job always has)."""
        chosen = []
        for job_id, key, kind in rows:
            if key is not None and per_key is not None and not kind.endswith(DELIVERY):
                if busy.get(key, 0) >= per_key:
                    continue
                busy[key] = busy.get(key, 0) + 1
            chosen.append(job_id)
            if len(chosen) == limit:
                break
        return chosen

    async def _settle(self, job: Job, **values: Any) -> bool:
        """Update a job this worker still holds; False when its lease was lost meanwhile.

        The attempt count fences off a worker whose lease ran out and whose job was claimed
        again, even by a worker with the same id (a restarted process on the same host).
        """
        async with self.sessions.begin() as session:
            connection = await session.connection()
            result = await connection.execute(
                update(JOBS)
                .where(
                    JOBS.c.id == job.id,
                    JOBS.c.state == "running",
                    JOBS.c.locked_by == job.locked_by,
                    JOBS.c.attempts == job.attempts,
                )
                .values(**values)
            )
        held = result.rowcount == 1
        if not held:
            _lease_lost(job)
        return held

    async def extend(self, job: Job) -> bool:
        """Push the lease of a job this worker holds one lease further; False when it was lost."""
        return await self._settle(job, locked_until=utcnow() + timedelta(seconds=self.lease))

    async def complete(self, job: Job) -> None:
        """Mark a job this worker holds done, with the others finishing meanwhile."""
        await self._completions.submit(job)

    async def _complete_batch(self, jobs: list[Job]) -> list[None]:
        """Mark the jobs done in one statement, each fenced as `_settle` fences one."""
        held = tuple_(JOBS.c.id, JOBS.c.locked_by, JOBS.c.attempts).in_(
            [(job.id, job.locked_by, job.attempts) for job in jobs]
        )
        async with self.sessions.begin() as session:
            connection = await session.connection()
            done = set(
                await connection.scalars(
                    update(JOBS)
                    .where(JOBS.c.state == "running", held)
                    .values(state="done", finished_at=utcnow(), locked_until=None, last_error=None)
                    .returning(JOBS.c.id)
                )
            )
        for job in jobs:
            if job.id not in done:
                _lease_lost(job)
        return [None] * len(jobs)

    async def fail(self, job: Job, error: str, *, permanent: bool = False) -> str:
        """Schedule a retry with backoff, or move the job to the dead letters; returns the state."""
        dead = permanent or job.attempts >= self.max_attempts
        values: dict[str, Any] = {"last_error": error[-4000:], "locked_until": None}
        if dead:
            values.update(state="dead", finished_at=utcnow())
        else:
            delay = backoff(job.attempts, self.base_delay, self.max_delay)
            values.update(state="queued", run_at=utcnow() + timedelta(seconds=delay))
        await self._settle(job, **values)
        return str(values["state"])

    async def postpone(self, job: Job, delay: float, reason: str) -> None:
        await self._settle(
            job,
            state="queued",
            attempts=Job.attempts - 1,
            run_at=utcnow() + timedelta(seconds=delay),
            locked_until=None,
            last_error=reason,
        )

    async def release(self, job: Job) -> None:
        """Return a job to the queue at once, its attempt not counted: the worker is stopping."""
        await self._settle(
            job,
            state="queued",
            attempts=Job.attempts - 1,
            run_at=utcnow(),
            locked_by=None,
            locked_until=None,
        )

    async def beat(self, worker_id: str) -> None:
        """Say that this worker is alive; forget workers silent for a long time."""
        now = utcnow()
        async with self.sessions.begin() as session:
            await session.merge(WorkerBeat(id=worker_id, seen_at=now))
            await session.execute(delete(WorkerBeat).where(WorkerBeat.seen_at < now - GONE_WORKERS))

    async def gone(self, worker_id: str) -> None:
        """A worker that stopped: it holds nothing any more."""
        async with self.sessions.begin() as session:
            await session.execute(delete(WorkerBeat).where(WorkerBeat.id == worker_id))

    async def counts(self) -> list[tuple[str, str, int]]:
        """(state, kind, number of jobs) for every state and kind present."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(Job.state, Job.kind, func.count())
                .group_by(Job.state, Job.kind)
                .order_by(Job.state, Job.kind)
            )
            return [(state, kind, count) for state, kind, count in rows]

    async def dead(self) -> list[Job]:
        async with self.sessions() as session:
            return list(
                await session.scalars(select(Job).where(Job.state == "dead").order_by(Job.id))
            )

    async def retry(self, ids: Iterable[int] | None) -> list[int]:
        """Queue the dead jobs with these ids (every dead job for None) again, with a fresh count
        of attempts; returns the ids queued. An id that is not a dead job is left alone."""
        query = update(Job).where(Job.state == "dead")
        if ids is not None:
            query = query.where(Job.id.in_(list(ids)))
        async with self.sessions.begin() as session:
            result = await session.execute(
                query.values(
                    state="queued",
                    attempts=0,
                    run_at=utcnow(),
                    finished_at=None,
                    locked_by=None,
                    locked_until=None,
                ).returning(Job.id)
            )
            return sorted(result.scalars())

    async def purge(self, before: datetime, states: Iterable[str] = FINISHED) -> tuple[int, int]:
        """Delete the jobs in `states` finished before `before`, and the deliveries received
        before it that no remaining job needs; returns how many jobs and deliveries went."""
        finished = Job.state.in_(list(states)) & (Job.finished_at < before)
        jobs = await self._delete_old(Job, finished)
        async with self.sessions() as session:
            # A delivery job names its delivery as {"delivery": id}; a retry needs the row.
            payloads = await session.scalars(
                select(Job.payload).where(
                    Job.kind.endswith(DELIVERY, autoescape=True), Job.state != "done"
                )
            )
            needed = {payload.get("delivery") for payload in payloads}
        deliveries = await self._delete_old(Delivery, Delivery.received_at < before, keep=needed)
        return jobs, deliveries

    async def _delete_old(
        self, table: type[Job] | type[Delivery], condition: Any, keep: Container[Any] = ()
    ) -> int:
        """Delete matching rows in batches, each its own transaction, so that purging a long
        history never holds SQLite's write lock for long."""
        deleted, after = 0, 0
        while True:
            async with self.sessions.begin() as session:
                ids = list(
                    await session.scalars(
                        select(table.id)
                        .where(condition, table.id > after)
                        .order_by(table.id)
                        .limit(PURGE_BATCH)
                    )
                )
                doomed = [row_id for row_id in ids if row_id not in keep]
                if doomed:
                    result = await session.execute(
                        delete(table)
                        .where(table.id.in_(doomed), condition)
                        .execution_options(synchronize_session=False)
                    )
                    deleted += int(result.rowcount)  # type: ignore[attr-defined]
            if len(ids) < PURGE_BATCH:
                return deleted
            after = ids[-1]


class Worker:
    """Runs jobs from the queue with the handler registered for their kind: one at a time with
    `run_once` and `run_until_idle`, up to `concurrency` at once with `run_forever`."""

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, JobHandler],
        worker_id: str,
        *,
        poll_interval: float = 0.5,
        concurrency: int = 16,
        per_key: int = 4,
        yield_to: Callable[[], bool] = lambda: False,
    ) -> None:
        self.queue = queue
        self.handlers = handlers
        self.worker_id = worker_id
        self.poll_interval = poll_interval
        self.concurrency = concurrency
        self.per_key = per_key
        self.yield_to = yield_to
        self.wakeup = asyncio.Event()
        self.stopping = False
        self.in_flight: dict[asyncio.Task[None], Job] = {}

    async def run_once(self) -> bool:
        """Run one due job; False when there was none.

        Cancelled while a job runs (the server is stopping), it returns the job to the queue.
        """
        job = await self.queue.claim(self.worker_id)
        if job is None:
            return False
        await self.run(job)
        return True

    async def run(self, job: Job) -> None:
        """Run a claimed job and settle it: done, retried later, postponed or dead."""
        started = time.perf_counter()
        extra = {"job_id": job.id, "job_kind": job.kind, "attempt": job.attempts}
        handler = self.handlers.get(job.kind)
        try:
            if handler is None:
                raise PermanentError(f"no handler for job kind {job.kind!r}")
            await self._run_holding_lease(job, handler)
        except asyncio.CancelledError:
            log.info("job returned to the queue: the worker is stopping", extra=extra)
            try:
                await self.queue.release(job)
            except Exception:
                log.exception("job not returned; it is taken again when its lease runs out")
            raise
        except LeaseLost:
            log.warning("job stopped: its lease ran out and it may run elsewhere", extra=extra)
        except RetryLater as exc:
            log.info("job postponed: %s", exc, extra=extra)
            delay, reason = exc.delay, str(exc)
            await self._record(job, lambda: self.queue.postpone(job, delay, reason))
        except Exception as exc:
            permanent = isinstance(exc, (PermanentError, *DETERMINISTIC_ERRORS))
            error = _describe(exc)
            state = await self._record(
                job, lambda: self.queue.fail(job, error, permanent=permanent)
            )
            metrics.JOBS_FAILED.labels(job.kind, state).inc()
            log.warning("job failed (%s): %s", state, exc, extra=extra, exc_info=state == "dead")
        else:
            await self._record(job, lambda: self.queue.complete(job))
            metrics.JOBS_DONE.labels(job.kind).inc()
        metrics.JOB_SECONDS.labels(job.kind).observe(time.perf_counter() - started)

    async def _record(self, job: Job, outcome: Callable[[], Awaitable[T]]) -> T:
        """Record a job's outcome (done, retry, postponed), trying again while the database is
        unavailable, for up to one lease: a job whose outcome is not recorded keeps its lease
        and runs again only once the lease runs out. Every update is fenced by the job's worker
        and attempt count, so recording it late is safe."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.queue.lease
        wait = RECORD_FIRST_WAIT
        while True:
            try:
                return await outcome()
            except Exception as exc:
                if not db.unavailable(exc) or loop.time() + wait > deadline:
                    raise
                log.warning(
                    "job outcome not recorded, the database is unavailable; trying again: %r",
                    exc,
                    extra={"job_id": job.id, "job_kind": job.kind},
                )
            await asyncio.sleep(wait)
            wait = min(wait * 2, RECORD_LONGEST_WAIT)

    async def _run_holding_lease(self, job: Job, handler: JobHandler) -> None:
        """Run the handler, extending the job's lease every third of it (a heartbeat), so that
        a long job is never taken by another worker while this one is alive."""
        work = asyncio.ensure_future(handler(job.payload))
        try:
            while not (await asyncio.wait({work}, timeout=self.queue.lease / 3))[0]:
                try:
                    held = await self.queue.extend(job)
                except Exception:
                    log.warning("lease not extended, trying again", exc_info=True)
                    continue
                if not held:
                    raise LeaseLost(f"job {job.id}")
            work.result()
        finally:
            if not work.done():
                work.cancel()
                await asyncio.wait({work})

    async def run_until_idle(self, limit: int = 10_000) -> int:
        """Run due jobs one at a time until none is left (tests and one-shot commands); returns
        how many ran."""
        count = 0
        while count < limit and await self.run_once():
            count += 1
        return count

    async def run_forever(self) -> None:
        """Run jobs as they come due, up to `concurrency` at once, until stop(); then wait for
        the jobs in flight. Cancelled, it cancels them, which returns each to the queue.
        Meanwhile it says every HEARTBEAT seconds that it is alive."""
        beating = asyncio.create_task(self._beat(), name="heartbeat")
        try:
            while not self.stopping:
                self.wakeup.clear()
                try:
                    claimed = await self._start_due_jobs()
                except Exception:
                    log.exception("job queue unavailable, retrying")
                    claimed = 0
                if not claimed and not self.stopping:
                    # A job that ends frees a slot and sets wakeup, as does a new delivery.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wakeup.wait(), self.poll_interval)
            if self.in_flight:
                await asyncio.wait(set(self.in_flight))
        finally:
            for task in self.in_flight:
                # A second cancel would interrupt a job already returning itself to the queue
                # (at exit asyncio cancels every task, these too).
                if not task.cancelling():
                    task.cancel()
            if self.in_flight:
                await asyncio.wait(set(self.in_flight))
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
            with contextlib.suppress(Exception):  # the database may be gone: the row ages
                await self.queue.gone(self.worker_id)

    async def _beat(self) -> None:
        while True:
            try:
                await self.queue.beat(self.worker_id)
            except Exception:
                log.warning("heartbeat not recorded, trying again", exc_info=True)
            await asyncio.sleep(HEARTBEAT)

    async def _start_due_jobs(self) -> int:
        """Claim as many due jobs as there are free slots and start them; how many started."""
        slots = self.concurrency
        if self.yield_to():
            slots = max(1, self.concurrency // BUSY_SHARE)
        free = slots - len(self.in_flight)
        if free <= 0:
            return 0
        running = Counter(job.concurrency_key for job in self.in_flight.values())
        busy = Counter(
            job.concurrency_key
            for job in self.in_flight.values()
            if job.concurrency_key and not job.kind.endswith(DELIVERY)
        )
        jobs = await self.queue.claim_batch(
            self.worker_id, free, per_key=self.per_key, busy=busy, in_flight=running
        )
        for job in jobs:
            task = asyncio.create_task(self.run(job), name=f"job-{job.id}")
            self.in_flight[task] = job
            task.add_done_callback(self._finished)
        return len(jobs)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.in_flight.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("job runner failed", exc_info=task.exception())
        self.wakeup.set()

    async def shutdown(self, running: asyncio.Task[None], grace: float) -> None:
        """Stop claiming jobs; give the jobs in flight `grace` seconds to finish, then cancel
        them, which returns each to the queue for another worker at once."""
        self.stopping = True
        self.wakeup.set()
        await asyncio.wait({running}, timeout=grace)
        running.cancel()
        await asyncio.wait({running})


class ClaimStatements(NamedTuple):
    due: Candidates  # queued jobs that are due, oldest first, `read` of them
    lapsed: Candidates  # running jobs whose lease ran out or whose worker went silent
    heads: Select[int]  # the first due job of every key
    more: Candidates  # those of `due` among `ids`
    claim: ReturningUpdate[Any]  # take the jobs `ids` that are still claimable: their rows


@cache
def _claim_statements(some_keys_full: bool) -> ClaimStatements:
    """The claim's statements, built once (a statement built anew for every claim cost more of
    the worker's CPU than running it). Due jobs and lapsed ones are read apart: read together,
    no index gave their order, and every queued job was read and sorted at every claim (tens
    of milliseconds behind a burst); apart, the due ones are read in the order of
    `ix_jobs_claim` until `read` are found. Parameters: now, silent_before, worker_id, until,
    read, ids and, when `some_keys_full`, full (the keys holding `per_key` jobs of the worker)."""
    now = bindparam("now", type_=Job.run_at.type)
    running = aliased(Job)
    # one run at a time of the same work: a burst of reports on one commit is never two
    # report jobs racing to create its check run
    same_work_running = (
        select(running.id)
        .where(
            running.dedupe_key == Job.dedupe_key,
            running.state == "running",
            running.locked_until >= now,
            ~_silent(running),
        )
        .exists()
    )
    due = (Job.state == "queued") & (Job.run_at <= now) & ~same_work_running
    # A worker never takes back a job of its own: it is still running it, or still saving
    # its outcome after the database was away for longer than a lease or a heartbeat.
    lapsed = (
        (Job.state == "running")
        & ((Job.locked_until < now) | _silent(Job))
        & (Job.locked_by != bindparam("worker_id"))
    )
    room: ColumnElement[bool] = true()
    if some_keys_full:
        room = or_(
            Job.concurrency_key.is_(None),
            Job.concurrency_key.not_in(bindparam("full", expanding=True)),
            Job.kind.endswith(DELIVERY, autoescape=True),
        )

    def oldest(claimable: ColumnElement[bool]) -> Candidates:
        # Read past the first `limit`: some of them may belong to a key that fills up.
        return (
            select(Job.id, Job.concurrency_key, Job.run_at, Job.kind)
            .where(claimable, room)
            .order_by(Job.run_at, Job.id)
            .limit(bindparam("read"))
            .with_for_update(skip_locked=True)
        )

    # and, when more are due than that, the first due job of every key: a key whose jobs
    # came after another's burst is seen too
    heads = (
        select(func.min(Job.id))
        .where(Job.state == "queued", Job.run_at <= now)
        .group_by(Job.concurrency_key)
        .order_by(func.min(Job.run_at))
        .limit(bindparam("read"))
    )
    claim = (
        update(JOBS)
        .where(JOBS.c.id.in_(bindparam("ids", expanding=True)), or_(due, lapsed))
        .values(
            state="running",
            attempts=JOBS.c.attempts + 1,
            locked_by=bindparam("worker_id"),
            locked_until=bindparam("until", type_=Job.locked_until.type),
        )
        .returning(*JOBS.c)
    )
    return ClaimStatements(
        due=oldest(due),
        lapsed=oldest(lapsed),
        heads=heads,
        more=oldest(due).where(Job.id.in_(bindparam("ids", expanding=True))),
        claim=claim,
    )


def fair_order(
    rows: Iterable[Any], running: Mapping[str | None, int]
) -> list[tuple[int, str | None, str]]:
    """(id, key, kind) of the candidate jobs (id, key, run_at, kind), in the order they are
    taken: the concurrency keys take turns, each key's oldest first — a job's place is its
    number in its key's lane, counting the key's jobs `running` — then the oldest first. A key
    that holds slots yields the next one to a key that holds none."""
    unique = sorted({row[0]: tuple(row) for row in rows}.values(), key=lambda row: (row[2], row[0]))
    places: Counter[str | None] = Counter(running)
    ranked = []
    for job_id, key, run_at, kind in unique:
        places[key] += 1
        ranked.append((places[key], run_at, job_id, key, kind))
    return [
        (job_id, key, kind) for _, _, job_id, key, kind in sorted(ranked, key=lambda row: row[:3])
    ]


def _silent(job: Any) -> Any:
    """The job's worker has not said it is alive for WORKER_TIMEOUT (since the parameter
    `silent_before`): it is dead."""
    return (
        select(WorkerBeat.id)
        .where(
            WorkerBeat.id == job.locked_by,
            WorkerBeat.seen_at < bindparam("silent_before", type_=WorkerBeat.seen_at.type),
        )
        .exists()
    )


def _lease_lost(job: Job) -> None:
    log.warning("job %s: lease lost to another worker", job.id, extra={"job_id": job.id})


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()
