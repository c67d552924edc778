"""A run's history, read as the engine recorded it: the upstream build it was started with, the
runs below an event, the pair's last pass.

These only read. They answer as the engine's own queries do (`bot.engine.dispatch`,
`bot.engine.reports`, `bot.engine.results`), so the pages and the API show what the engine
acted on; a change to how the engine picks these is a change here too.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Event
from bot.results import Result, Verdict
from bot.runs import Step


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


async def last_passed(session: AsyncSession, event: Event) -> Event | None:
    """The pair's last trigger event before this one that passed (a flake's re-run passed).
    Confirming re-runs settle their failure's verdict, and baselines and bisect steps answer a
    question of their own: none is part of the pair's history."""
    passed: Event | None = await session.scalar(
        select(Event)
        .where(
            Event.kind == "trigger",
            Event.project == event.project,
            Event.upstream == event.upstream,
            Event.step.in_([Step.FIRST, Step.RETRY]),
            Event.change_number.is_(None),  # pre-merge runs are no pair's history
            Event.id != event.id,
            Event.created_at <= event.created_at,
            or_(Event.result == Result.SUCCESS, Event.change == Verdict.FLAKY),
        )
        .order_by(Event.created_at.desc())
        .limit(1)
    )
    return passed
