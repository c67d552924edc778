"""Which run is a result (CONTRACT §7): the trigger event a finished pipeline is tied to, by
its run id, the event id it names, or — for a GitHub dispatch that came back without a run id —
the one waiting trigger whose dispatch it alone fits. Nothing else is a trigger's result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from conjunction.engine.context import config_of
from conjunction.engine_api import EVENT_ID, FinishedPipeline
from conjunction.models import Event, Project
from conjunction.names import project_key
from conjunction.runner import CLOCK_SLACK
from conjunction.runs import TriggerState


@dataclass(frozen=True)
class Waiting:
    """A trigger event a run may answer, with how it was sent (`trigger:` of its downstream)."""

    event: Event
    workflow: str | None  # dispatched workflow file; None: a repository_dispatch
    ref: str  # the ref it was dispatched on


def match_trigger(candidates: Sequence[Waiting], run: FinishedPipeline) -> Event | None:
    """The trigger event a run is the result of (CONTRACT §7, "which run is a result"): the one
    whose run id it has; else the one it names (run title, description, target URL, a
    CONJUNCTION_EVENT variable); else — for a GitHub run of a dispatch that came back without a
    run id — the trigger still waiting whose dispatch it fits (the same kind of dispatch, the
    dispatched workflow on the dispatched ref, created after it was sent) when it fits only one.
    Nothing else: a status or check suite that names no event is never a result."""
    if run.run_id is not None:
        for candidate in candidates:
            if candidate.event.run_id == run.run_id:
                return candidate.event
    named = set(EVENT_ID.findall(run.title))
    for candidate in candidates:
        if candidate.event.id in named:
            return candidate.event
    if run.started_by not in ("workflow_dispatch", "repository_dispatch"):
        return None
    fitting = [candidate.event for candidate in candidates if _fits_dispatch(candidate, run)]
    return fitting[0] if len(fitting) == 1 else None


def _fits_dispatch(candidate: Waiting, run: FinishedPipeline) -> bool:
    event = candidate.event
    sent = event.sending_at
    if event.run_id is not None or event.result is not None or sent is None:
        return False
    if run.created_at is None or run.created_at < sent - CLOCK_SLACK:
        return False
    if candidate.workflow is None:
        return run.started_by == "repository_dispatch" and run.ref == candidate.ref
    return (
        run.started_by == "workflow_dispatch"
        and run.workflow == candidate.workflow
        and run.ref == candidate.ref
    )


# asked of every finished pipeline: built once. A run id of None and no event named match none.
CANDIDATES = (
    select(Event)
    .where(
        Event.kind == "trigger",
        Event.project == bindparam("project"),
        or_(
            Event.state.in_([TriggerState.SENDING, TriggerState.STARTED]) & Event.run_id.is_(None),
            Event.id.in_(bindparam("named", expanding=True)),
            Event.run_id == bindparam("run_id"),
        ),
    )
    .order_by(Event.created_at)
)


async def candidates(session: AsyncSession, run: FinishedPipeline) -> list[Waiting]:
    """The trigger events of the run's project that it may answer, oldest first: the one with
    its run id or the ones it names (finished too: a re-run in the CI), and those still waiting
    for a run of theirs to be found."""
    rows = await session.scalars(
        CANDIDATES,
        {"project": run.project, "named": EVENT_ID.findall(run.title), "run_id": run.run_id},
    )
    events = list(rows)
    if not events:
        return []
    downstream = await session.get(Project, project_key(run.project))
    trigger = config_of(downstream).trigger
    default = downstream.default_branch if downstream else "main"
    return [Waiting(event, trigger.workflow, trigger.ref or default) for event in events]
