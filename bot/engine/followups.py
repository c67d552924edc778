"""The follow-ups of a result, each its own deduplicated job, safe to run twice.

Each job names the owner whose forge it acts on (`bot.names.owner_of`), so that a worker runs
only so many jobs of one installation at once.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.names import owner_of
from bot.queue import JobQueue


async def report(session: AsyncSession, source_id: str, project: str) -> None:
    """Post the aggregate of the source event's downstreams on its commit (bursts coalesce);
    `project` is the source event's project, where the report is posted."""
    await JobQueue.enqueue(
        session,
        "report",
        {"event_id": source_id},
        dedupe_key=f"report:{source_id}",
        concurrency_key=owner_of(project),
    )


async def issues(session: AsyncSession, event_id: str, project: str) -> None:
    """Open, comment on or close the breakage issue this result concerns."""
    await JobQueue.enqueue(
        session,
        "issues",
        {"event_id": event_id},
        dedupe_key=f"issues:{event_id}",
        concurrency_key=owner_of(project),
    )


async def chain(session: AsyncSession, event_id: str, project: str) -> None:
    """Start the downstreams of a downstream that passed."""
    await JobQueue.enqueue(
        session,
        "chain",
        {"event_id": event_id},
        dedupe_key=f"chain:{event_id}",
        concurrency_key=owner_of(project),
    )
