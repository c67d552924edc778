"""The follow-ups of a result, each its own deduplicated job, safe to run twice."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.queue import JobQueue


async def report(session: AsyncSession, source_id: str) -> None:
    """Post the aggregate of the source event's downstreams on its commit (bursts coalesce)."""
    await JobQueue.enqueue(
        session, "report", {"event_id": source_id}, dedupe_key=f"report:{source_id}"
    )


async def issues(session: AsyncSession, event_id: str) -> None:
    """Open, comment on or close the breakage issue this result concerns."""
    await JobQueue.enqueue(
        session, "issues", {"event_id": event_id}, dedupe_key=f"issues:{event_id}"
    )


async def chain(session: AsyncSession, event_id: str) -> None:
    """Start the downstreams of a downstream that passed."""
    await JobQueue.enqueue(session, "chain", {"event_id": event_id}, dedupe_key=f"chain:{event_id}")
