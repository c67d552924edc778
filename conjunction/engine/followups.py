"""The follow-ups of a result, each its own deduplicated job, safe to run twice.

Each job names the owner whose forge it acts on (`conjunction.names.owner_of` of its event's
project), so that a worker runs only so many jobs of one installation or group at once.
"""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from conjunction.models import Event, Subscription
from conjunction.names import owner_of, project_key
from conjunction.notify.message import STATES
from conjunction.queue import JobQueue
from conjunction.results import Verdict

PROGRESS_DELAY = 1.0  # seconds: time for a postponed job's new run-at time to be stored
# A commit's report is written at most once a second: a fan-out or a burst of results costs
# about one status and one check run update a second, however many downstreams it has.
REPORT_INTERVAL = 1.0
# A run of a project whose runs claim their triggers is started again this long after one of
# them ended, for a trigger still awaiting a claim: by then the run that ended has left the CI
# (Zuul leaves out an enqueue of an item already in its pipeline).
CLAIM_RESTART_DELAY = 60.0


async def report(session: AsyncSession, source_id: str) -> None:
    """Post the aggregate of the source event's downstreams on its commit (bursts coalesce)."""
    await _follow(session, "report", source_id, interval=REPORT_INTERVAL)


async def claimed_finished(session: AsyncSession, event: Event) -> None:
    """A trigger of a webhook with `claim: true` ended: start a run again for the oldest trigger
    of its project still awaiting a claim, if one does then (`claims.start_again`). One waiting
    job a project absorbs the others."""
    await JobQueue.enqueue(
        session,
        "claim_restart",
        {"project": event.project},
        dedupe_key=f"claim_restart:{project_key(event.project)}",
        delay=CLAIM_RESTART_DELAY,
        concurrency_key=owner_of(event.project),
    )


async def progress_reports(session: AsyncSession, event: Event) -> None:
    """The reports a trigger held back by pacing is on, a moment later: once its job is
    postponed, they say when the next batch goes out. One waiting job absorbs those of the
    rest of the batch held back with it."""
    for source_id in dict.fromkeys([event.parent_id, event.root_id]):
        if source_id is not None:
            await _follow(session, "report", source_id, variant="progress", delay=PROGRESS_DELAY)


async def reports(session: AsyncSession, event: Event) -> None:
    """The reports a downstream's row is on: its upstream's, and its origin's."""
    for source_id in dict.fromkeys([event.parent_id, event.root_id]):
        if source_id is not None:
            await report(session, source_id)


async def issues(session: AsyncSession, event_id: str) -> None:
    """Open, comment on or close the breakage issue this result concerns, and tell the pair's
    channels when its state changed. A verdict that changes no state (a pass like the one
    before) queues no `notify` job: the verdict that later changes it queues its own."""
    await _follow(session, "issues", event_id)
    event = await session.get(Event, event_id)
    if event is not None and event.change and Verdict(event.change) in STATES:
        await _follow(session, "notify", event_id)


async def chain(session: AsyncSession, event_id: str) -> None:
    """Start the downstreams of a downstream that passed, or record them as its fallout."""
    await _follow(session, "chain", event_id)


async def changes(session: AsyncSession, event_id: str) -> None:
    """Find what changed since a failing downstream last passed; its issue follows."""
    await _follow(session, "changes", event_id)


async def excerpt(
    session: AsyncSession, event_id: str, *, changes: str | None = None, issues: str | None = None
) -> None:
    """Fetch why a failing run failed; then the changes and the issue it concerns, which show
    it (event ids: a confirming re-run's are its failure's)."""
    event = await session.get(Event, event_id)
    await JobQueue.enqueue(
        session,
        "excerpt",
        {"event_id": event_id, "changes": changes, "issues": issues},
        concurrency_key=owner_of(event.project) if event is not None else None,
    )


# asked of every finished pipeline: built once, run as a Core statement
HAS_SUBSCRIBER = (
    select(Subscription.id).where(Subscription.upstream == bindparam("upstream")).limit(1)
)


async def has_downstreams(session: AsyncSession, project: str) -> bool:
    connection = await session.connection()
    subscriber = await connection.scalar(HAS_SUBSCRIBER, {"upstream": project_key(project)})
    return subscriber is not None


async def _follow(
    session: AsyncSession,
    kind: str,
    event_id: str,
    *,
    variant: str = "",
    delay: float = 0.0,
    interval: float = 0.0,
) -> None:
    """One job of `kind` for the event, absorbed by one already waiting (of the same
    `variant`), keyed by the owner of the event's project."""
    event = await session.get(Event, event_id)
    if kind == "report" and event is not None and event.change_number is not None:
        # a change's head: its pre-merge report (`conjunction.engine.premerge`)
        kind = "premerge_report"
    await JobQueue.enqueue(
        session,
        kind,
        {"event_id": event_id},
        dedupe_key=f"{kind}:{event_id}" + (f":{variant}" if variant else ""),
        delay=delay,
        concurrency_key=owner_of(event.project) if event is not None else None,
        interval=interval,
    )
