"""The dashboard's pages: home, a project, and the dependency graph's projects and edges."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.config.repo_config import ConjunctionConfig
from conjunction.durations import Figures, figures, pair_durations
from conjunction.models import Event, IssueLink, Project, Subscription
from conjunction.names import project_key
from conjunction.results import Result, Verdict
from conjunction.runs import Step
from conjunction.tally import CONFIRMING, shown_as
from conjunction.views.labels import short_labels
from conjunction.views.session import reading
from conjunction.views.sources import (
    PROJECT_SOURCES,
    RECENT_CHILDREN,
    Source,
    recent_sources,
    with_reports,
)
from conjunction.views.visibility import PRIVATE, hidden_projects, open_issues, visible_projects

RECENT_ORIGINS = 12
OWN_RUNS = 30


@dataclass(frozen=True)
class HomeRow:
    project: Project
    upstreams: int
    downstreams: int
    latest: Source | None  # the latest upstream success with downstream runs, and its report
    broken: bool  # in a pair whose latest decisive result is a failure
    confirming: bool  # in a pair whose latest failure is being confirmed by a re-run


@dataclass(frozen=True)
class Breakage:
    """A pair whose latest decisive result is a failure: confirmed, or still being confirmed by
    a re-run (`confirming`: not called broken until the re-run says so)."""

    upstream: str
    downstream: str | None  # None: a private project
    event: Event | None  # None when the downstream is hidden
    confirming: bool = False

    @property
    def shown_as(self) -> str:
        """What the home page calls it: `confirming`, or the failure's verdict."""
        if self.confirming:
            return CONFIRMING
        return shown_as(self.event) if self.event is not None else "failed"


@dataclass(frozen=True)
class Home:
    rows: list[HomeRow]
    listed: int  # projects before the search
    breakages: list[Breakage]  # confirmed ones
    confirming: list[Breakage]  # failures being confirmed
    origins: list[Source]  # upstream successes where a tree of downstream runs started


async def home(sessions: async_sessionmaker[AsyncSession], *, admin: bool, query: str = "") -> Home:
    """The projects this caller may see (current breakages first), matching the search."""
    async with reading(sessions) as session:
        projects = await visible_projects(session, admin)
        hidden = await hidden_projects(session, admin)
        counts = (
            await session.execute(select(Subscription.upstream, Subscription.downstream))
        ).all()
        latest: dict[str, Source] = {}
        for source in await recent_sources(session):
            latest.setdefault(project_key(source.event.project), source)
        latest = {
            project_key(source.event.project): source
            for source in await with_reports(session, list(latest.values()))
        }
        failing = await _breakages(session, hidden)
        origins = await _origins(session, hidden)
    upstreams: dict[str, int] = {}
    downstreams: dict[str, int] = {}
    for upstream, downstream in counts:
        upstreams[downstream] = upstreams.get(downstream, 0) + 1
        downstreams[upstream] = downstreams.get(upstream, 0) + 1
    breakages = [breakage for breakage in failing if not breakage.confirming]
    confirming = [breakage for breakage in failing if breakage.confirming]
    broken, checking = _in_pairs(breakages), _in_pairs(confirming)
    needle = query.strip().lower()
    rows = [
        HomeRow(
            project,
            upstreams.get(key, 0),
            downstreams.get(key, 0),
            latest.get(key),
            key in broken,
            key in checking and key not in broken,
        )
        for key, project in projects.items()
        if needle in key or any(needle in str(owner).lower() for owner in project.owners)
    ]
    rows.sort(key=lambda row: (not row.broken, row.project.key))
    return Home(rows, len(projects), breakages, confirming, origins)


def _in_pairs(breakages: list[Breakage]) -> set[str]:
    return {project_key(b.upstream) for b in breakages} | {
        project_key(b.downstream) for b in breakages if b.downstream
    }


async def _breakages(session: AsyncSession, hidden: set[str]) -> list[Breakage]:
    """Pairs whose latest decisive result in their history (`conjunction.history.earlier_in_pair`:
    no confirming re-run, baseline or bisect step) is a failure that was not a flake."""
    decisive = [result for result in Result if result.decisive]
    rows = await session.scalars(
        select(Event)
        .where(
            Event.kind == "trigger",
            Event.step == Step.FIRST,
            Event.result.in_(decisive),
            Event.change_number.is_(None),  # an unmerged change breaks nothing yet
        )
        .order_by(Event.created_at.desc())
        .limit(RECENT_CHILDREN)
    )
    seen: set[tuple[str, str]] = set()
    found = []
    for event in rows:
        pair = (project_key(event.upstream or ""), project_key(event.project))
        if pair in seen:
            continue
        seen.add(pair)
        failed = Result(str(event.result)).broken and event.change != Verdict.FLAKY
        if failed and pair[0] not in hidden:
            shown = pair[1] not in hidden
            found.append(
                Breakage(
                    event.upstream or "",
                    event.project if shown else None,
                    event if shown else None,
                    confirming=bool(event.confirming),
                )
            )
    return found


async def _origins(session: AsyncSession, hidden: set[str]) -> list[Source]:
    builds = [
        event
        for event in await session.scalars(
            select(Event)
            .where(Event.kind == "build")
            .order_by(Event.created_at.desc())
            .limit(RECENT_ORIGINS * 4)
        )
        if project_key(event.project) not in hidden
    ][:RECENT_ORIGINS]
    return await with_reports(session, [Source(build, []) for build in builds])


@dataclass(frozen=True)
class Column:
    """A downstream in a project's matrix; a private one (to this caller) has no name."""

    key: str
    name: str | None
    label: str | None = None  # its short label among the columns (`conjunction.views.labels`)


@dataclass(frozen=True)
class ProjectPage:
    project: Project
    config_yaml: str | None
    upstreams: list[tuple[str | None, dict[str, Any]]]  # (name or None when private, entry)
    downstreams: list[str | None]
    sources: list[Source]  # newest first
    columns: list[Column]
    matrix: list[tuple[Source, list[Event | None]]]
    own_runs: list[tuple[Event, str | None]]  # newest first: this project's runs as a
    # downstream, each with its upstream's name (None: a private project)
    build_times: dict[str, Figures]  # by downstream key
    all_answered: Figures | None
    issues: list[IssueLink]


async def project_page(
    sessions: async_sessionmaker[AsyncSession], name: str, *, admin: bool
) -> ProjectPage | None:
    key = project_key(name)
    async with reading(sessions) as session:
        project = await session.get(Project, key)
        if project is None or (project.private and not admin):
            return None
        hidden = await hidden_projects(session, admin)
        names = {
            row.key: row.name
            for row in (await session.execute(select(Project.key, Project.name))).all()
        }
        specs = list(
            await session.scalars(select(Subscription.spec).where(Subscription.downstream == key))
        )
        downstream_keys = sorted(
            set(
                await session.scalars(
                    select(Subscription.downstream).where(Subscription.upstream == key)
                )
            )
        )
        sources = await recent_sources(session, project=key, limit=PROJECT_SOURCES * 50)
        sources = await with_reports(session, sources[:PROJECT_SOURCES])
        own_runs = list(
            await session.scalars(
                select(Event)
                .where(func.lower(Event.project) == key, Event.kind == "trigger")
                .order_by(Event.created_at.desc())
                .limit(OWN_RUNS)
            )
        )
        build_times = {
            downstream: found
            for (_, downstream), found in (
                await pair_durations(
                    session,
                    {(key, project_key(child.project)) for s in sources for child in s.children}
                    | {(key, downstream) for downstream in downstream_keys},
                )
            ).items()
        }
        issues = await open_issues(session, key, hidden)
    column_keys = list(downstream_keys)
    for source in sources:
        for child in source.children:
            if project_key(child.project) not in column_keys:
                column_keys.append(project_key(child.project))
    shown = {column: names.get(column, column) for column in column_keys if column not in hidden}
    labels = short_labels(shown.values())
    columns = [
        Column(column, shown.get(column), labels.get(shown.get(column, "")))
        for column in column_keys
    ]
    matrix = []
    for source in sources:
        by_key = {project_key(child.project): child for child in source.children}
        matrix.append((source, [by_key.get(column.key) for column in columns]))
    return ProjectPage(
        project=project,
        config_yaml=_config_yaml(project, hidden),
        upstreams=[
            (None if project_key(spec["project"]) in hidden else spec["project"], spec)
            for spec in specs
        ],
        downstreams=[None if d in hidden else names.get(d, d) for d in downstream_keys],
        sources=sources,
        columns=columns,
        matrix=matrix,
        own_runs=[
            (run, None if project_key(run.upstream or "") in hidden else run.upstream)
            for run in own_runs
        ],
        build_times=build_times,
        all_answered=figures(seconds for s in sources if (seconds := s.all_answered) is not None),
        issues=issues,
    )


def _config_yaml(project: Project, hidden: set[str]) -> str | None:
    """The config in force, as its YAML without the defaults; an upstream this caller may not
    see is not named."""
    if project.config is None:
        return None
    config = ConjunctionConfig.model_validate(project.config)
    shown = config.model_dump(mode="json", exclude_defaults=True)
    for upstream in shown.get("upstreams", []):
        if project_key(upstream["project"]) in hidden:
            upstream["project"] = PRIVATE
    return yaml.safe_dump(shown, sort_keys=False) or None


@dataclass(frozen=True)
class Graph:
    """Projects this caller may see, each with its latest event, and their upstream edges, each
    with the pair's latest run."""

    latest: dict[str, Event | None]  # by display name
    edges: list[tuple[str, str]]  # (upstream, downstream) display names
    pairs: dict[tuple[str, str], Event]  # an edge's latest run of its pair's history
    invalid: frozenset[str] = frozenset()  # whose .conjunction.yml is invalid now


async def graph(sessions: async_sessionmaker[AsyncSession], *, admin: bool) -> Graph:
    async with reading(sessions) as session:
        projects = await visible_projects(session, admin)
        subscriptions = (
            await session.execute(select(Subscription.upstream, Subscription.downstream))
        ).all()
        recent = await session.scalars(
            select(Event)
            .where(Event.result.is_distinct_from(Result.SKIPPED))
            .order_by(Event.created_at.desc())
            .limit(RECENT_CHILDREN)
        )
        events = list(recent)
    latest: dict[str, Event] = {}
    for event in events:
        latest.setdefault(project_key(event.project), event)
    pairs = latest_pair_runs(events, subscriptions)
    edges = sorted(
        {
            (projects[upstream].name, projects[downstream].name)
            for upstream, downstream in subscriptions
            if upstream in projects and downstream in projects
        }
    )
    return Graph(
        {project.name: latest.get(key) for key, project in projects.items()},
        edges,
        {
            (projects[up].name, projects[down].name): event
            for (up, down), event in pairs.items()
            if up in projects and down in projects
        },
        frozenset(project.name for project in projects.values() if project.config_error),
    )


def latest_pair_runs(
    events: Iterable[Event], links: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Event]:
    """Each (upstream, downstream) link's latest run of the pair, by project keys, from
    `events` newest first: the downstream's run that upstream started, or — a diamond's bottom
    runs once for an origin and names one of its upstreams — its run for an origin that
    upstream took part in."""
    events = list(events)
    upstreams: dict[str, set[str]] = {}
    for up, down in links:
        upstreams.setdefault(down, set()).add(up)
    taking_part: dict[str, set[str]] = {}
    for event in events:
        taking_part.setdefault(event.root_id or event.id, set()).add(project_key(event.project))
    runs: dict[tuple[str, str], Event] = {}
    for event in events:
        if not _in_pair_history(event):
            continue
        down = project_key(event.project)
        origin = taking_part.get(event.root_id or event.id, set())
        for up in upstreams.get(down, ()):
            if up == project_key(event.upstream or "") or up in origin:
                runs.setdefault((up, down), event)
    return runs


def _in_pair_history(event: Event) -> bool:
    """A run of the pair's history (`conjunction.engine.results.earlier_in_pair`), whose result a
    retry replaces and whose confirming re-runs settle its verdict: what an edge is coloured
    by."""
    return (
        event.kind == "trigger"
        and event.step == Step.FIRST
        and event.change_number is None
        and event.upstream is not None
    )
