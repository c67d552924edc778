"""A run's history as the engine records it, read the same way by the engine and by the pages:
the same pair's earlier runs and its last pass, the upstream build a trigger runs against, the
runs below an event (the rows of the report on its commit), and the culprit searches of
failures."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from conjunction import bisect as core
from conjunction.models import Bisect, Event
from conjunction.results import Result, Verdict
from conjunction.runs import Step


def earlier_in_pair(event: Event) -> tuple[ColumnElement[bool], ...]:
    """Conditions for the same pair's trigger events before this one."""
    return (
        Event.kind == "trigger",
        Event.project == event.project,
        Event.upstream == event.upstream,
        # confirming re-runs settle their failure's verdict, a retry's result replaces its
        # failure's, and baselines and bisect steps answer a question of their own: none is
        # part of the pair's history
        Event.step == Step.FIRST,
        Event.change_number.is_(None),  # nor are runs of an unmerged change (pre-merge)
        Event.id != event.id,
        Event.created_at <= event.created_at,
    )


async def last_passed(session: AsyncSession, event: Event) -> Event | None:
    """The pair's last trigger event before this one that passed (a flake's re-run passed)."""
    passed: Event | None = await session.scalar(
        select(Event)
        .where(
            *earlier_in_pair(event),
            or_(Event.result == Result.SUCCESS, Event.change == Verdict.FLAKY),
        )
        .order_by(Event.created_at.desc())
        .limit(1)
    )
    return passed


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
