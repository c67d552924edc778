"""A run's history as the engine records it, read the same way by the engine and by the pages:
the same pair's earlier runs and its last pass, the upstream build a trigger runs against, the
runs below an event (the rows of the report on its commit), and the culprit searches of
failures."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from conjunction import bisect as core
from conjunction.models import Bisect, Event
from conjunction.results import Result, Verdict
from conjunction.runs import Step


def earlier_in_pair(
    event: Event | type[Event], past: type[Event] = Event
) -> tuple[ColumnElement[bool], ...]:
    """Conditions for the same pair's trigger events before this one: `event` is a loaded event,
    or an alias the conditions correlate with, to ask of many events in one statement."""
    return (
        past.kind == "trigger",
        past.project == event.project,
        past.upstream == event.upstream,
        # confirming re-runs settle their failure's verdict, a retry's result replaces its
        # failure's, and baselines and bisect steps answer a question of their own: none is
        # part of the pair's history
        past.step == Step.FIRST,
        past.change_number.is_(None),  # nor are runs of an unmerged change (pre-merge)
        past.id != event.id,
        past.created_at <= event.created_at,
    )


def _passed(past: type[Event]) -> ColumnElement[bool]:
    """A run that passed, or a flake whose re-run passed."""
    return or_(past.result == Result.SUCCESS, past.change == Verdict.FLAKY)


async def last_passed(session: AsyncSession, event: Event) -> Event | None:
    """The pair's last trigger event before this one that passed (a flake's re-run passed)."""
    passed: Event | None = await session.scalar(
        select(Event)
        .where(*earlier_in_pair(event), _passed(Event))
        .order_by(Event.created_at.desc())
        .limit(1)
    )
    return passed


async def last_passed_with(session: AsyncSession, events: Sequence[Event]) -> dict[str, str]:
    """The upstream commit each event's pair last passed with before it (the commit of
    `last_passed`'s parent), for all of them in one statement; an event whose pair never
    passed, or whose pass's upstream commit is unknown, is left out."""
    if not events:
        return {}
    event, past, parent = aliased(Event), aliased(Event), aliased(Event)
    passed = (
        select(past.parent_id)
        .where(*earlier_in_pair(event, past), _passed(past))
        .order_by(past.created_at.desc())
        .limit(1)
        .correlate(event)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(event.id, parent.sha)
        .join(parent, parent.id == passed)
        .where(event.id.in_([e.id for e in events]), parent.sha.is_not(None))
    )
    return {event_id: sha for event_id, sha in rows if sha}


async def past_durations(
    session: AsyncSession, events: Sequence[Event], runs: int
) -> dict[str, list[float]]:
    """Seconds each of the latest `runs` decisive runs of each event's pair took before it,
    newest first, for all of them in one statement; an event whose pair has none is left out."""
    if not events:
        return {}
    event, past, oldest = aliased(Event), aliased(Event), aliased(Event)

    def timed(run: type[Event]) -> tuple[ColumnElement[bool], ...]:
        return (
            *earlier_in_pair(event, run),
            run.result.in_([result for result in Result if result.decisive]),
            run.started_at.is_not(None),
            run.finished_at.is_not(None),
        )

    # when the `runs`-th latest began: no older run is read (NULL when there are fewer)
    since = (
        select(oldest.created_at)
        .where(*timed(oldest))
        .order_by(oldest.created_at.desc())
        .offset(runs - 1)
        .limit(1)
        .correlate(event)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(event.id, past.started_at, past.finished_at)
        .join(past, and_(*timed(past)))
        .where(
            event.id.in_([e.id for e in events]),
            past.created_at >= func.coalesce(since, past.created_at),
        )
        .order_by(event.id, past.created_at.desc())
    )
    found: dict[str, list[float]] = {}
    for event_id, started, finished in rows:
        seconds = found.setdefault(event_id, [])
        if len(seconds) < runs and started is not None and finished is not None:
            seconds.append((finished - started).total_seconds())
    return found


async def upstream_build(session: AsyncSession, event: Event, parent: Event) -> Event | None:
    """The upstream build a trigger event runs against, whose URL, ref and artifacts it is sent:
    its parent, or for a confirming re-run against the upstream commit the pair last passed
    with, the build that commit passed with (None when it is unknown or gone)."""
    sha = event.upstream_sha
    if not sha or sha == parent.sha:
        return parent
    build_id = event.upstream_build_id
    build = await session.get(Event, build_id) if build_id else None
    return build if build is not None and build.sha == sha else None


def descendants(source_id: str, events: Sequence[Event]) -> list[Event]:
    """The events below `source_id` in its chain, in the order they were made — the rows of the
    report on its commit; confirming re-runs lead further down (a flake's downstreams run after
    its re-run) but are no rows."""
    below: dict[str | None, list[Event]] = {}
    for event in events:
        below.setdefault(event.parent_id, []).append(event)
    found, frontier = [], [source_id]
    while frontier:
        children = [child for parent in frontier for child in below.get(parent, [])]
        found += children
        frontier = [child.id for child in children]
    return sorted(
        (event for event in found if event.confirms_id is None), key=lambda e: e.created_at
    )


async def of_failures(session: AsyncSession, failure_ids: Sequence[str]) -> dict[str, Bisect]:
    """The newest culprit search of each failure."""
    if not failure_ids:
        return {}
    rows = await session.scalars(
        select(Bisect).where(Bisect.failure_id.in_(list(failure_ids))).order_by(Bisect.id)
    )
    return {bisect.failure_id: bisect for bisect in rows}


def tried(bisect: Bisect) -> list[core.Tried]:
    """A culprit search's finished runs, in order."""
    return [
        core.Tried(step["sha"], core.outcome_of(step["result"]))
        for step in bisect.steps
        if step.get("result")
    ]
