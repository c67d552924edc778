"""Time-outs: a triggered pipeline that never reports counts as `timed_out`."""

from __future__ import annotations

from sqlalchemy import select

from conjunction.engine.context import Context
from conjunction.engine.results import record_result
from conjunction.models import Event, utcnow
from conjunction.results import Result


async def expire_overdue(ctx: Context) -> int:
    """Mark triggered pipelines past their deadline as timed_out; returns how many."""
    async with ctx.sessions() as session:
        overdue = list(
            await session.scalars(
                select(Event.id).where(
                    Event.kind == "trigger",
                    Event.result.is_(None),
                    Event.deadline_at < utcnow(),
                )
            )
        )
    for event_id in overdue:
        await record_result(
            ctx, event_id, Result.TIMED_OUT, reason="no result within CONJUNCTION_RESULT_TIMEOUT"
        )
    return len(overdue)
