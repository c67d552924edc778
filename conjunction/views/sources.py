"""Upstream successes and the downstream runs they started, and how they are counted: for the
pages, the API and the badges, in the words of the report on their commits (`conjunction.tally`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from conjunction.models import Event, Project
from conjunction.names import project_key
from conjunction.results import Result
from conjunction.tally import Count, Row, count_of, describe, required_in, rows_below
from conjunction.views.session import reading

RECENT_BUILDS = 20  # upstream successes looked at for the latest with downstreams
RECENT_CHILDREN = 5000  # downstream runs looked at for every project's latest upstream success
PROJECT_SOURCES = 20  # upstream successes in a project's matrix and charts


@dataclass(frozen=True)
class Source:
    """An upstream success that started downstreams, with their runs (skipped ones aside) and,
    once `with_reports` read them, the rows of the report on its commit (its whole tree)."""

    event: Event
    children: list[Event]
    rows: list[Row] = field(default_factory=list)

    @property
    def count(self) -> Count:
        return count_of(self.rows)

    @property
    def description(self) -> str:
        """What the status on its commit says."""
        return describe(self.rows)

    @property
    def all_answered(self) -> float | None:
        """Seconds from the first downstream start until the last one answered."""
        if not self.children or any(child.finished_at is None for child in self.children):
            return None
        first = min(child.created_at for child in self.children)
        last = max(child.finished_at for child in self.children if child.finished_at)
        return max((last - first).total_seconds(), 0.0)


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


async def with_reports(session: AsyncSession, sources: Sequence[Source]) -> list[Source]:
    """The sources with the rows of the report on each one's commit: every run of its tree
    below it, each required or not by its upstream's config, as the engine counts them."""
    roots = {source.event.root_id for source in sources}
    tree: dict[str, list[Event]] = {}
    for event in await session.scalars(
        select(Event).where(Event.root_id.in_(roots), Event.kind == "trigger")
    ):
        tree.setdefault(event.root_id, []).append(event)
    upstreams = {
        project.key: project
        for project in await session.scalars(
            select(Project).where(
                Project.key.in_({project_key(source.event.project) for source in sources})
            )
        )
    }
    return [
        replace(
            source,
            rows=rows_below(
                source.event,
                tree.get(source.event.root_id, []),
                required_in(upstreams.get(project_key(source.event.project))),
            ),
        )
        for source in sources
    ]


async def latest_counts(
    sessions: async_sessionmaker[AsyncSession], name: str, *, admin: bool
) -> list[Count] | None:
    """The counts of the project's latest upstream successes that have downstreams — its own
    builds, or its runs that continued a chain — newest first (at most two); None when the
    project does not exist for this caller."""
    async with reading(sessions) as session:
        project = await session.get(Project, project_key(name))
        if project is None or (project.private and not admin):
            return None
        builds = list(
            await session.scalars(
                select(Event)
                .where(
                    func.lower(Event.project) == project.key,
                    Event.result == Result.SUCCESS,
                    Event.change_number.is_(None),  # a change's pre-merge runs: not a badge's
                )
                .order_by(Event.created_at.desc())
                .limit(RECENT_BUILDS)
            )
        )
        started = set(
            await session.scalars(
                select(Event.parent_id).where(
                    Event.parent_id.in_([build.id for build in builds]),
                    Event.result.is_distinct_from(Result.SKIPPED),
                    Event.confirms_id.is_(None),
                )
            )
        )
        latest = [Source(build, []) for build in builds if build.id in started][:2]
        sources = await with_reports(session, latest)
    return [source.count for source in sources]
