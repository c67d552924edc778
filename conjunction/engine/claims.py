"""Claims: a run started by a request that carries nothing of its trigger (Zuul's enqueue API)
claims its trigger event (`trigger.webhook.claim`, `POST /api/v1/claims`) and learns what a
webhook's default body carries, callback token included.

A claim by a run (its claimant, e.g. Zuul's buildset uuid) takes the oldest trigger of its
project awaiting one — dispatched with `claim: true`, sent, without a result, claimed by no
run — and makes the claimant its run id in one conditional update: on PostgreSQL the row is
locked as it is chosen and concurrent claims skip it, so claims from one replica or several
never take the same trigger; where rows cannot be locked (SQLite, one writer at a time) the
update's condition leaves out a trigger taken meanwhile and the next one is tried. The same
claimant asking again is given its trigger back while that has no final result (Zuul retries a
job whose pre-run failed in the same buildset; its post-run asks again for the callback).

A trigger that is never claimed, or claimed and never reported, times out as any other does
(`conjunction.engine.timeouts`).

A CI may leave a start out: Zuul does not enqueue an item already in its pipeline (the same
project, ref and revision), so a trigger sent while an earlier run of the project is under way
starts no run of its own. So when a claimed trigger ends (`followups.claimed_finished`), a run
is started again a minute later for the oldest trigger still awaiting a claim
(`start_again`): triggers sent in a burst are claimed one run after another. A run started
for a trigger another run claimed meanwhile finds nothing, or the next, to claim.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import ColumnElement, Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from conjunction.engine import dispatch
from conjunction.engine.context import Context
from conjunction.models import AWAITING_CLAIM, Event, Project
from conjunction.names import project_key
from conjunction.runner import TriggerRequest
from conjunction.runs import TriggerState

log = logging.getLogger(__name__)

SENT = (TriggerState.SENDING, TriggerState.STARTED)
# Takes of a trigger another claim took first (SQLite only: PostgreSQL skips a locked row)
ATTEMPTS = 5


async def claim(ctx: Context, project: str, claimant: str) -> TriggerRequest | None:
    """The trigger event `claimant`, a run of `project`, claims — the one it claimed before,
    while that has no final result, else the oldest awaiting a claim — as its runner would be
    sent it; None when no trigger awaits."""
    async with ctx.sessions() as session:
        downstream = await session.get(Project, project_key(project))
        if downstream is None:
            return None
        event = await _claimed_by(session, downstream.name, claimant) or await _take(
            session, downstream.name, claimant
        )
        request = await dispatch.request_of(ctx, session, event) if event else None
        if request is None:  # nothing awaits (or the trigger's source is gone: left unclaimed)
            await session.rollback()
            return None
        await session.commit()
    log.info("trigger %s claimed", request.event_id, extra={"event_id": request.event_id})
    return request


async def _claimed_by(session: AsyncSession, project: str, claimant: str) -> Event | None:
    """The trigger `claimant` claimed before, while it has no final result."""
    found = await session.scalars(
        select(Event)
        .where(
            Event.kind == "trigger",
            Event.project == project,
            Event.run_id == claimant,
            Event.claim.is_(True),
            Event.result.is_(None),
        )
        .order_by(Event.created_at, Event.id)
        .limit(1)
    )
    return found.first()


def _awaiting(project: str) -> tuple[ColumnElement[bool], ...]:
    """The triggers of `project` sent and awaiting a claim."""
    return (
        Event.kind == "trigger",
        Event.project == project,
        AWAITING_CLAIM,
        Event.state.in_(SENT),
    )


def _oldest(project: str) -> Select[Event]:
    """The oldest trigger of `project` awaiting a claim."""
    return select(Event).where(*_awaiting(project)).order_by(Event.created_at, Event.id).limit(1)


async def _take(session: AsyncSession, project: str, claimant: str) -> Event | None:
    """The oldest trigger of `project` awaiting a claim, claimed by `claimant`."""
    awaiting = _awaiting(project)
    oldest = _oldest(project).with_only_columns(Event.id).with_for_update(skip_locked=True)
    for _ in range(ATTEMPTS):
        event_id = await session.scalar(oldest)
        if event_id is None:
            return None
        # the condition again: where rows are not locked, another claim may have taken it
        taken = await session.scalars(
            update(Event)
            .where(Event.id == event_id, *awaiting)
            .values(run_id=claimant)
            .returning(Event)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        event = taken.first()
        if event is not None:
            return event
    return None


async def start_again(ctx: Context, payload: dict[str, Any]) -> None:
    """Job: start a run of `project` for the oldest of its triggers still awaiting a claim, as
    the first start was sent; nothing when none awaits. A start that fails is tried again with
    the job; the trigger times out meanwhile as any other."""
    async with ctx.sessions() as session:
        event = await session.scalar(_oldest(payload["project"]))
        request = await dispatch.request_of(ctx, session, event) if event else None
    runner = ctx.adapters.runner(request.project, request.trigger) if request else None
    if request is None or runner is None:
        return
    await runner.start_pipeline(request)
    log.info(
        "a run started again for trigger %s, awaiting a claim",
        request.event_id,
        extra={"event_id": request.event_id},
    )
