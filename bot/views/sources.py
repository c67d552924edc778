"""Upstream successes and the downstream runs they started, and their tallies: for the pages, the
API and the badges."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from bot.badges import Tally
from bot.models import Event, Project
from bot.names import project_key
from bot.results import Result
from bot.views.session import reading

RECENT_BUILDS = 20  # upstream successes looked at for the latest with downstreams
RECENT_CHILDREN = 5000  # downstream runs looked at for every project's latest upstream success
PROJECT_SOURCES = 20  # upstream successes in a project's matrix and charts


@dataclass(frozen=True)
class Source:
    """An upstream success that started downstreams, with their runs (skipped ones aside)."""

    event: Event
    children: list[Event]

    @property
    def tally(self) -> Tally:
        return tally_of(self.children)

    @property
    def all_answered(self) -> float | None:
        """Seconds from the first downstream start until the last one answered."""
        if not self.children or any(child.finished_at is None for child in self.children):
            return None
        first = min(child.created_at for child in self.children)
        last = max(child.finished_at for child in self.children if child.finished_at)
        return max((last - first).total_seconds(), 0.0)


def tally_of(events: list[Event]) -> Tally:
    ran = [event for event in events if event.result != Result.SKIPPED]
    return Tally(
        passed=sum(event.result == Result.SUCCESS for event in ran),
        total=len(ran),
        running=sum(event.result is None for event in ran),
    )


async def recent_sources(
    session: AsyncSession, *, project: str | None = None, limit: int = RECENT_CHILDREN
) -> list[Source]:
    """Recent upstream successes with downstream runs (confirming re-runs aside), newest first
    (of one project, or all)."""
    parent = aliased(Event)
    query = (
        select(parent, Event)
        .join(parent, Event.parent_id == parent.id)
        .where(
            Event.result.is_distinct_from(Result.SKIPPED),
            Event.confirms_id.is_(None),
            Event.change_number.is_(None),  # pre-merge runs are shown with their change
        )
        .order_by(parent.created_at.desc(), Event.created_at)
        .limit(limit)
    )
    if project is not None:
        query = query.where(func.lower(parent.project) == project)
    sources: dict[str, Source] = {}
    for source, child in (await session.execute(query)).all():
        sources.setdefault(source.id, Source(source, [])).children.append(child)
    return list(sources.values())


async def latest_tallies(
    sessions: async_sessionmaker[AsyncSession], name: str, *, admin: bool
) -> list[Tally] | None:
    """Downstream tallies of the project's latest upstream successes that have downstreams —
    its own builds, or its runs that continued a chain — newest first (at most two); None when
    the project does not exist for this caller."""
    async with reading(sessions) as session:
        project = await session.get(Project, project_key(name))
        if project is None or (project.private and not admin):
            return None
        builds = list(
            await session.scalars(
                select(Event.id)
                .where(
                    func.lower(Event.project) == project.key,
                    Event.result == Result.SUCCESS,
                    Event.change_number.is_(None),  # a change's pre-merge runs: not a badge's
                )
                .order_by(Event.created_at.desc())
                .limit(RECENT_BUILDS)
            )
        )
        rows = await session.execute(
            select(Event.parent_id, Event.result).where(
                Event.parent_id.in_(builds),
                Event.result.is_distinct_from(Result.SKIPPED),
                Event.confirms_id.is_(None),
            )
        )
        results: dict[str | None, list[str | None]] = {}
        for parent_id, result in rows:
            results.setdefault(parent_id, []).append(result)
    tallies = [
        Tally(
            passed=sum(result == Result.SUCCESS for result in results[build]),
            total=len(results[build]),
            running=sum(result is None for result in results[build]),
        )
        for build in builds
        if build in results
    ]
    return tallies[:2]
