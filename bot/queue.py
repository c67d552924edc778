"""A durable job queue in the application's own database.

Jobs are rows. A worker claims one by moving it to `running` with a lease; a worker that dies
leaves a lease that runs out, and the job is claimed again. On PostgreSQL the claim uses
`FOR UPDATE SKIP LOCKED`, so several processes share the queue without taking a job twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import metrics
from bot.models import Job, utcnow

log = logging.getLogger(__name__)

JobHandler = Callable[[dict[str, Any]], Awaitable[None]]


class PermanentError(Exception):
    """A job failure that retrying cannot fix: the job goes straight to the dead letters."""


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
        lease: float = 300.0,
    ) -> None:
        self.sessions = sessions
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lease = lease

    @staticmethod
    async def enqueue(
        session: AsyncSession,
        kind: str,
        payload: dict[str, Any],
        *,
        dedupe_key: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Add a job inside the caller's transaction.

        With a dedupe_key, a job with the same key still waiting to run absorbs this one:
        a burst of requests for the same work becomes one run.
        """
        if dedupe_key is not None:
            waiting = await session.scalar(
                select(Job.id).where(Job.dedupe_key == dedupe_key, Job.state == "queued").limit(1)
            )
            if waiting is not None:
                return
        session.add(
            Job(
                kind=kind,
                payload=payload,
                dedupe_key=dedupe_key,
                run_at=utcnow() + timedelta(seconds=delay),
            )
        )
        metrics.JOBS_ENQUEUED.labels(kind).inc()

    async def claim(self, worker_id: str) -> Job | None:
        """Take the next due job, or one whose worker's lease ran out."""
        now = utcnow()
        async with self.sessions.begin() as session:
            for _ in range(5):
                job = await session.scalar(
                    select(Job)
                    .where(
                        or_(
                            (Job.state == "queued") & (Job.run_at <= now),
                            (Job.state == "running") & (Job.locked_until < now),
                        )
                    )
                    .order_by(Job.run_at, Job.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
                if job is None:
                    return None
                # The state check makes the claim safe where row locks don't exist (SQLite).
                claimed = await session.execute(
                    update(Job)
                    .where(Job.id == job.id, Job.state == job.state, Job.attempts == job.attempts)
                    .values(
                        state="running",
                        attempts=Job.attempts + 1,
                        locked_by=worker_id,
                        locked_until=now + timedelta(seconds=self.lease),
                    )
                    .execution_options(synchronize_session=False)
                )
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    await session.refresh(job)
                    return job
            return None

    async def _settle(self, job: Job, **values: Any) -> bool:
        """Update a job this worker still holds; False when its lease was lost meanwhile.

        The attempt count fences off a worker whose lease ran out and whose job was claimed
        again, even by a worker with the same id (a restarted process on the same host).
        """
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(Job)
                .where(
                    Job.id == job.id,
                    Job.state == "running",
                    Job.locked_by == job.locked_by,
                    Job.attempts == job.attempts,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
        held = bool(result.rowcount == 1)  # type: ignore[attr-defined]
        if not held:
            log.warning(
                "job %s: lease lost, its outcome is dropped", job.id, extra={"job_id": job.id}
            )
        return held

    async def complete(self, job: Job) -> None:
        await self._settle(
            job, state="done", finished_at=utcnow(), locked_until=None, last_error=None
        )

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


class Worker:
    """Runs jobs from the queue with the handler registered for their kind."""

    def __init__(
        self,
        queue: JobQueue,
        handlers: Mapping[str, JobHandler],
        worker_id: str,
        *,
        poll_interval: float = 0.5,
    ) -> None:
        self.queue = queue
        self.handlers = handlers
        self.worker_id = worker_id
        self.poll_interval = poll_interval
        self.wakeup = asyncio.Event()

    async def run_once(self) -> bool:
        """Run one due job; False when there was none."""
        job = await self.queue.claim(self.worker_id)
        if job is None:
            return False
        started = time.perf_counter()
        extra = {"job_id": job.id, "job_kind": job.kind, "attempt": job.attempts}
        handler = self.handlers.get(job.kind)
        try:
            if handler is None:
                raise PermanentError(f"no handler for job kind {job.kind!r}")
            await handler(job.payload)
        except RetryLater as exc:
            log.info("job postponed: %s", exc, extra=extra)
            await self.queue.postpone(job, exc.delay, str(exc))
        except Exception as exc:
            permanent = isinstance(exc, PermanentError)
            state = await self.queue.fail(job, _describe(exc), permanent=permanent)
            metrics.JOBS_FAILED.labels(job.kind, state).inc()
            log.warning("job failed (%s): %s", state, exc, extra=extra)
        else:
            await self.queue.complete(job)
            metrics.JOBS_DONE.labels(job.kind).inc()
        metrics.JOB_SECONDS.labels(job.kind).observe(time.perf_counter() - started)
        return True

    async def run_until_idle(self, limit: int = 10_000) -> int:
        """Run due jobs until none is left (tests and one-shot commands); returns how many ran."""
        count = 0
        while count < limit and await self.run_once():
            count += 1
        return count

    async def run_forever(self) -> None:
        while True:
            try:
                busy = await self.run_once()
            except Exception:
                log.exception("job queue unavailable, retrying")
                busy = False
            if not busy:
                self.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), self.poll_interval)


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()
