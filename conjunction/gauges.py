"""The gauges of /metrics that the database knows: the queue, pending triggers, and the
durations of downstream pipelines that finished since the last read.

`Gauges.refresh` runs when /metrics is read, in three aggregate SELECTs on indexed columns:
the jobs by state and kind (`ix_jobs_claim`), the trigger events without a result and the
results recorded since the last read (both `ix_events_pending`). A trigger's result comes at
the latest a sweep after its deadline, so one finished since the last read has a deadline
after it, less that margin: only recent triggers are read.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction import metrics
from conjunction.models import Event, Job, utcnow

# a result recorded this long after its trigger's deadline is still seen (the sweep's period
# and then some)
LATE_RESULT = timedelta(minutes=10)
FINAL = ("success", "failure", "error", "cancelled", "timed_out", "skipped")


class Gauges:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.since = utcnow()  # durations are counted from results recorded after this
        self._lock = asyncio.Lock()

    async def refresh(self, now: datetime | None = None) -> None:
        async with self._lock:
            now = now or utcnow()
            async with self.sessions() as session:
                await self._jobs(session, now)
                pending = await session.scalar(
                    select(func.count())
                    .select_from(Event)
                    .where(Event.result.is_(None), Event.kind == "trigger")
                )
                metrics.PENDING_TRIGGERS.set(pending or 0)
                await self._durations(session, now)

    async def _jobs(self, session: AsyncSession, now: datetime) -> None:
        due = case((Job.run_at <= now, Job.run_at))
        rows = await session.execute(
            select(Job.state, Job.kind, func.count(), func.min(due))
            .where(Job.state.in_(("queued", "dead")))
            .group_by(Job.state, Job.kind)
        )
        queued: dict[str, int] = {}
        dead = 0
        oldest: datetime | None = None
        for state, kind, count, earliest in rows:
            if state == "dead":
                dead += count
                continue
            queued[kind] = count
            if earliest is not None and (oldest is None or earliest < oldest):
                oldest = earliest
        metrics.QUEUED_JOBS.clear()
        for kind, count in queued.items():
            metrics.QUEUED_JOBS.labels(kind).set(count)
        metrics.DEAD_JOBS.set(dead)
        metrics.OLDEST_QUEUED_SECONDS.set(
            max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
        )

    async def _durations(self, session: AsyncSession, now: datetime) -> None:
        since = self.since
        rows = await session.execute(
            select(Event.result, Event.started_at, Event.finished_at).where(
                Event.result.in_(FINAL),
                Event.deadline_at > since - LATE_RESULT,
                Event.kind == "trigger",
                Event.finished_at > since,
                Event.finished_at <= now,
                Event.started_at.is_not(None),
            )
        )
        for result, started_at, finished_at in rows:
            if started_at is None or finished_at is None:
                continue
            seconds = (finished_at - started_at).total_seconds()
            metrics.DOWNSTREAM_SECONDS.labels(result).observe(max(seconds, 0.0))
        self.since = now
