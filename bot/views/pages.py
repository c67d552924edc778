"""The read side: what the API and the pages show, as a caller may see it.

A private project, its events and pages exist only for the admin; on what anyone else sees, a
private project is "a private project", with no name, link or id that leads to it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from sqlalchemy import event as orm_event
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, aliased

from bot.badges import Tally, change
from bot.durations import Figures, figures, pair_durations, remaining
from bot.engine.dispatch import upstream_build
from bot.engine.reports import Row, descendants, describe
from bot.engine.results import last_passed
from bot.models import Event, IssueLink, Project, Subscription, utcnow
from bot.names import project_key
from bot.progress import progress
from bot.results import FLAKY_HINT, Result, Verdict
from bot.runs import Step
from config.repo_config import ConjunctionConfig

RECENT_EVENTS = 500
PRIVATE = "a private project"  # what a caller who may not see a project sees of it
RECENT_BUILDS = 20  # upstream successes looked at for the latest with downstreams
PAIR_RUNS = 20  # the verdicts shown per pair
PAIR_SCAN = 2000  # the project's latest runs those are taken from


def event_json(event: Event, visible: bool = True, upstream_visible: bool = True) -> dict[str, Any]:
    if not visible:
        return {"project": None, "private": True, "result": event.result}
    changes = shown_changes(event, upstream_visible=upstream_visible)
    return {
        "id": event.id,
        "kind": event.kind,
        "project": event.project,
        "upstream": event.upstream if upstream_visible else None,  # None: a private project
        "parent": event.parent_id,
        "root": event.root_id,
        "depth": event.depth,
        "sha": event.sha,
        "ref": event.ref,
        "pipeline": event.pipeline,
        "url": event.url,
        "result": event.result,
        "verdict": event.change,
        "change": event.change,  # the verdict's earlier name
        "hint": event.hint,
        "origin": event.ref_type if event.kind == "build" else None,  # a bot.runs.Origin
        "via": event.via,
        "step": event.step,  # a trigger's: a bot.runs.Step
        "state": event.state,  # a trigger's: a bot.runs.TriggerState
        "attempt": event.attempt,
        "confirmation": _confirmation(event),  # a failure being or once confirmed
        "confirms": event.confirms_id
        and {  # a confirming re-run: the failure it confirms, and against which upstream commit
            "event": event.confirms_id,
            "step": event.step,
            "upstream_sha": event.upstream_sha,
        },
        "changes": changes,  # since the pair last passed, and the likely culprit
        "reason": event.reason,
        "artifacts": event.artifacts or [],
        "created_at": event.created_at.isoformat(),
        "started_at": event.started_at.isoformat() if event.started_at else None,
        "finished_at": event.finished_at.isoformat() if event.finished_at else None,
    }


def _confirmation(event: Event) -> dict[str, Any] | None:
    if event.confirming is None and event.last_passed_sha is None:
        return None
    return {
        "step": event.confirming,  # the re-run under way; None once settled
        "last_passed_sha": event.last_passed_sha,
        "last_passed_upstream": event.last_passed_build_id,
    }


def shown_changes(event: Event, *, upstream_visible: bool) -> dict[str, Any] | None:
    """What changed since a failing pair last passed, as `bot.engine.changes` stored it: a
    private upstream's commits stay with it."""
    changes = event.changes
    if not changes:
        return None
    return changes if upstream_visible else {**changes, "upstream": None}


async def private_projects(session: AsyncSession, names: set[str]) -> set[str]:
    """The keys of those of `names` that are private."""
    keys = {project_key(name) for name in names}
    rows = await session.scalars(
        select(Project.key).where(Project.key.in_(keys), Project.private.is_(True))
    )
    return set(rows)


async def event_trace(
    sessions: async_sessionmaker[AsyncSession], event_id: str, *, admin: bool, max_depth: int
) -> dict[str, Any] | None:
    """An event with its chain back to the origin and its children; None when it does not
    exist or the caller may not see it."""
    async with _reading(sessions) as session:
        event = await session.get(Event, event_id)
        if event is None:
            return None
        chain: list[Event] = []
        parent_id = event.parent_id
        while parent_id is not None and len(chain) <= max_depth + 1:
            parent = await session.get(Event, parent_id)
            if parent is None:
                break
            chain.append(parent)
            parent_id = parent.parent_id
        children = list(
            await session.scalars(
                select(Event).where(Event.parent_id == event.id).order_by(Event.created_at)
            )
        )
        every = [event, *chain, *children]
        names = {e.project for e in every} | {e.upstream for e in every if e.upstream}
        hidden = set() if admin else await private_projects(session, names)
        build = await upstream_build(session, event, chain[0]) if chain else None
    if project_key(event.project) in hidden:
        return None

    def show(item: Event) -> dict[str, Any]:
        return event_json(
            item,
            project_key(item.project) not in hidden,
            project_key(item.upstream or "") not in hidden,
        )

    if build is not None and project_key(build.project) in hidden:
        build = None
    return {
        **show(event),
        # what a triggered pipeline was started with: its upstream build's artifacts (for a
        # re-run against the commit the pair last passed with, that build's)
        "upstream_artifacts": (build.artifacts or []) if build else [],
        "chain": [show(item) for item in reversed(chain)],
        "children": [show(item) for item in children],
    }


async def project_view(
    sessions: async_sessionmaker[AsyncSession], name: str, *, admin: bool
) -> dict[str, Any] | None:
    """A project's upstreams, downstreams, recent results and build-time statistics."""
    key = project_key(name)
    async with _reading(sessions) as session:
        project = await session.get(Project, key)
        if project is None or (project.private and not admin):
            return None
        upstreams = list(
            await session.scalars(select(Subscription.spec).where(Subscription.downstream == key))
        )
        downstreams = set(
            await session.scalars(
                select(Subscription.downstream).where(Subscription.upstream == key)
            )
        )
        recent = list(
            await session.scalars(
                select(Event)
                .where(
                    Event.project == project.name,
                    Event.kind == "trigger",
                    Event.confirms_id.is_(None),
                )
                .order_by(Event.created_at.desc())
                .limit(20)
            )
        )
        hidden = await _hidden(session, admin)
        build_times = await _build_times(session, key, downstreams, hidden)
        runs = await session.scalars(
            select(Event)
            .where(
                (Event.project == project.name) | (Event.upstream == project.name),
                Event.kind == "trigger",
                Event.confirms_id.is_(None),
                Event.result.is_not(None),
            )
            .order_by(Event.created_at.desc())
            .limit(PAIR_SCAN)
        )
        pairs: dict[tuple[str, str], list[Event]] = {}
        for run in runs:
            if run.upstream and not {project_key(run.project), project_key(run.upstream)} & hidden:
                pairs.setdefault((run.upstream, run.project), []).append(run)
    tallies = await latest_tallies(sessions, name, admin=admin) or []
    return {
        "project": project.name,
        "private": project.private,
        "default_branch": project.default_branch,
        "owners": project.owners,
        "config_error": project.config_error,
        "upstreams": [spec for spec in upstreams if project_key(spec["project"]) not in hidden],
        "private_upstreams": sum(project_key(spec["project"]) in hidden for spec in upstreams),
        "downstreams": sorted(downstreams - hidden),
        "private_downstreams": len(downstreams & hidden),
        "recent": [
            event_json(event, upstream_visible=project_key(event.upstream or "") not in hidden)
            for event in recent
        ],
        "statistics": statistics_of(recent),
        "build_times": build_times,
        "latest_downstream_results": tally_json(tallies),
        "pairs": [
            pair_json(upstream, downstream, runs[:PAIR_RUNS])
            for (upstream, downstream), runs in sorted(pairs.items())
        ],
    }


def pair_json(upstream: str, downstream: str, runs: list[Event]) -> dict[str, Any]:
    """A pair's last verdicts (newest first), how often it flaked and broke: flakes confirmed by
    re-running and `flaky?` hints among its runs that passed or failed."""
    decisive = [run for run in runs if Result(str(run.result)).decisive]
    flakes = sum(run.change == Verdict.FLAKY or run.hint == FLAKY_HINT for run in decisive)
    return {
        "upstream": upstream,
        "downstream": downstream,
        "verdicts": [
            {
                "event": run.id,
                "verdict": run.change,
                "result": run.result,
                "hint": run.hint,
            }
            for run in runs
        ],
        "flake_rate": flakes / len(decisive) if decisive else None,
        "new_regressions": sum(run.change == Verdict.NEW_REGRESSION for run in runs),
        "already_broken": sum(run.change == Verdict.ALREADY_BROKEN for run in runs),
    }


async def _build_times(
    session: AsyncSession, key: str, downstreams: set[str], hidden: set[str]
) -> dict[str, Any]:
    """Median and 90th percentile of each downstream's run time, and of the time until all
    downstreams of an upstream success answered; private downstreams only counted."""
    sources = (await _sources(session, project=key, limit=PROJECT_SOURCES * 50))[:PROJECT_SOURCES]
    names = {project_key(child.project): child.project for s in sources for child in s.children}
    pairs = {(key, downstream) for downstream in downstreams | set(names)}
    found = await pair_durations(session, pairs)
    answered = figures(seconds for s in sources if (seconds := s.all_answered) is not None)
    return {
        "downstreams": {
            names.get(downstream, downstream): figures_found.json()
            for (_, downstream), figures_found in sorted(found.items())
            if downstream not in hidden
        },
        "private_downstreams": sum(downstream in hidden for _, downstream in found),
        "all_downstreams_answered": answered.json() if answered else None,
    }


def tally_json(tallies: list[Tally]) -> dict[str, Any] | None:
    """The latest upstream success's downstream results, and how they changed since the one
    before (`improved`, `broke`, `unchanged`)."""
    if not tallies:
        return None
    latest = tallies[0]
    return {
        "passed": latest.passed,
        "total": latest.total,
        "running": latest.running,
        "change": change(latest, tallies[1] if len(tallies) > 1 else None),
    }


def statistics_of(events: list[Event]) -> dict[str, Any]:
    """Pass rate and durations of finished runs."""
    durations = [
        (event.finished_at - event.started_at).total_seconds()
        for event in events
        if event.started_at and event.finished_at and event.result is not None
    ]
    finished = [event for event in events if event.result not in (None, Result.SKIPPED)]
    return {
        "results": len(finished),
        "pass_rate": (
            sum(event.result == Result.SUCCESS for event in finished) / len(finished)
            if finished
            else None
        ),
        "median_seconds": statistics.median(durations) if durations else None,
        "max_seconds": max(durations) if durations else None,
    }


async def latest_tallies(
    sessions: async_sessionmaker[AsyncSession], name: str, *, admin: bool
) -> list[Tally] | None:
    """Downstream tallies of the project's latest upstream successes that have downstreams —
    its own builds, or its runs that continued a chain — newest first (at most two); None when
    the project does not exist for this caller."""
    async with _reading(sessions) as session:
        project = await session.get(Project, project_key(name))
        if project is None or (project.private and not admin):
            return None
        builds = list(
            await session.scalars(
                select(Event.id)
                .where(
                    func.lower(Event.project) == project.key,
                    Event.result == Result.SUCCESS,
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


# The dashboard's pages: home, a project, the dependency graph, an event's audit trail.

RECENT_CHILDREN = 5000  # downstream runs looked at for every project's latest upstream success
RECENT_ORIGINS = 12
PROJECT_SOURCES = 20  # upstream successes in a project's matrix and charts
OWN_RUNS = 30
TREE_LIMIT = 2000  # events of one origin shown on an event page


def _reading(sessions: async_sessionmaker[AsyncSession]) -> AsyncSession:
    """A session for one answer. Each query sees what was committed by then, so a row loaded
    again by a later query must show its current values, not those of its first load (a run
    that was still going then and has a result now)."""
    session = sessions()
    orm_event.listen(session.sync_session, "do_orm_execute", _current_rows)
    return session


def _current_rows(state: ORMExecuteState) -> None:
    if state.is_select:
        state.update_execution_options(populate_existing=True)


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


async def _visible_projects(session: AsyncSession, admin: bool) -> dict[str, Project]:
    query = select(Project).where(Project.active.is_(True)).order_by(Project.key)
    if not admin:
        query = query.where(Project.private.is_(False))
    return {project.key: project for project in await session.scalars(query)}


async def _hidden(session: AsyncSession, admin: bool) -> set[str]:
    """Keys of the projects this caller may not see."""
    if admin:
        return set()
    return set(await session.scalars(select(Project.key).where(Project.private.is_(True))))


async def _sources(
    session: AsyncSession, *, project: str | None = None, limit: int = RECENT_CHILDREN
) -> list[Source]:
    """Recent upstream successes with downstream runs (confirming re-runs aside), newest first
    (of one project, or all)."""
    parent = aliased(Event)
    query = (
        select(parent, Event)
        .join(parent, Event.parent_id == parent.id)
        .where(Event.result.is_distinct_from(Result.SKIPPED), Event.confirms_id.is_(None))
        .order_by(parent.created_at.desc(), Event.created_at)
        .limit(limit)
    )
    if project is not None:
        query = query.where(func.lower(parent.project) == project)
    sources: dict[str, Source] = {}
    for source, child in (await session.execute(query)).all():
        sources.setdefault(source.id, Source(source, [])).children.append(child)
    return list(sources.values())


@dataclass(frozen=True)
class HomeRow:
    project: Project
    upstreams: int
    downstreams: int
    latest: Source | None  # the latest upstream success with downstream runs
    broken: bool  # in a pair whose latest decisive result is a failure


@dataclass(frozen=True)
class Breakage:
    """A pair whose latest decisive result is a failure."""

    upstream: str
    downstream: str | None  # None: a private project
    event: Event | None  # None when the downstream is hidden


@dataclass(frozen=True)
class Origin:
    """An upstream success where a tree of downstream runs started, with all of them."""

    event: Event
    tally: Tally


@dataclass(frozen=True)
class Home:
    rows: list[HomeRow]
    listed: int  # projects before the search
    breakages: list[Breakage]
    origins: list[Origin]


async def home(sessions: async_sessionmaker[AsyncSession], *, admin: bool, query: str = "") -> Home:
    """The projects this caller may see (current breakages first), matching the search."""
    async with _reading(sessions) as session:
        projects = await _visible_projects(session, admin)
        hidden = await _hidden(session, admin)
        counts = (
            await session.execute(select(Subscription.upstream, Subscription.downstream))
        ).all()
        latest: dict[str, Source] = {}
        for source in await _sources(session):
            latest.setdefault(project_key(source.event.project), source)
        breakages = await _breakages(session, hidden)
        origins = await _origins(session, hidden)
    upstreams: dict[str, int] = {}
    downstreams: dict[str, int] = {}
    for upstream, downstream in counts:
        upstreams[downstream] = upstreams.get(downstream, 0) + 1
        downstreams[upstream] = downstreams.get(upstream, 0) + 1
    broken = {project_key(b.upstream) for b in breakages} | {
        project_key(b.downstream) for b in breakages if b.downstream
    }
    needle = query.strip().lower()
    rows = [
        HomeRow(
            project,
            upstreams.get(key, 0),
            downstreams.get(key, 0),
            latest.get(key),
            key in broken,
        )
        for key, project in projects.items()
        if needle in key or any(needle in str(owner).lower() for owner in project.owners)
    ]
    rows.sort(key=lambda row: (not row.broken, row.project.key))
    return Home(rows, len(projects), breakages, origins)


async def _breakages(session: AsyncSession, hidden: set[str]) -> list[Breakage]:
    decisive = [result for result in Result if result.decisive]
    rows = await session.scalars(
        select(Event)
        .where(Event.kind == "trigger", Event.result.in_(decisive))
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
        if Result(str(event.result)).broken and pair[0] not in hidden:
            shown = pair[1] not in hidden
            found.append(
                Breakage(
                    event.upstream or "",
                    event.project if shown else None,
                    event if shown else None,
                )
            )
    return found


async def _origins(session: AsyncSession, hidden: set[str]) -> list[Origin]:
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
    runs = await session.scalars(
        select(Event).where(
            Event.root_id.in_([build.id for build in builds]),
            Event.kind == "trigger",
            Event.confirms_id.is_(None),  # a confirming re-run is a step, not another run
        )
    )
    trees: dict[str, list[Event]] = {}
    for run in runs:
        trees.setdefault(run.root_id, []).append(run)
    return [Origin(build, tally_of(trees.get(build.id, []))) for build in builds]


@dataclass(frozen=True)
class Column:
    """A downstream in a project's matrix; a private one (to this caller) has no name."""

    key: str
    name: str | None


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
    async with _reading(sessions) as session:
        project = await session.get(Project, key)
        if project is None or (project.private and not admin):
            return None
        hidden = await _hidden(session, admin)
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
        sources = await _sources(session, project=key, limit=PROJECT_SOURCES * 50)
        sources = sources[:PROJECT_SOURCES]
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
        issues = [
            link
            for link in await session.scalars(
                select(IssueLink)
                .where(
                    IssueLink.state == "open",
                    (IssueLink.upstream == key) | (IssueLink.downstream == key),
                )
                .order_by(IssueLink.updated_at.desc())
            )
            if link.upstream not in hidden and link.downstream not in hidden
        ]
    column_keys = list(downstream_keys)
    for source in sources:
        for child in source.children:
            if project_key(child.project) not in column_keys:
                column_keys.append(project_key(child.project))
    columns = [
        Column(column, None if column in hidden else names.get(column, column))
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
    """Projects this caller may see, each with its latest event, and their upstream edges."""

    latest: dict[str, Event | None]  # by display name
    edges: list[tuple[str, str]]  # (upstream, downstream) display names


async def graph(sessions: async_sessionmaker[AsyncSession], *, admin: bool) -> Graph:
    async with _reading(sessions) as session:
        projects = await _visible_projects(session, admin)
        subscriptions = (
            await session.execute(select(Subscription.upstream, Subscription.downstream))
        ).all()
        recent = await session.scalars(
            select(Event)
            .where(Event.result.is_distinct_from(Result.SKIPPED))
            .order_by(Event.created_at.desc())
            .limit(RECENT_CHILDREN)
        )
        latest: dict[str, Event] = {}
        for event in recent:
            latest.setdefault(project_key(event.project), event)
    edges = sorted(
        {
            (projects[upstream].name, projects[downstream].name)
            for upstream, downstream in subscriptions
            if upstream in projects and downstream in projects
        }
    )
    return Graph({project.name: latest.get(key) for key, project in projects.items()}, edges)


@dataclass
class TreeNode:
    """One event of an origin's tree, as this caller may see it."""

    event: Event
    name: str | None  # None: a private project
    children: list[TreeNode] = field(default_factory=list)
    typical: Figures | None = None  # the pair's past durations
    left: float | None = None  # seconds a running one probably still needs
    running_for: float | None = None
    compare_url: str | None = None
    issue_url: str | None = None
    changes: dict[str, Any] | None = None  # what changed since the pair last passed
    steps: list[RerunStep] = field(default_factory=list)  # re-runs confirming this failure

    @property
    def confirming(self) -> bool:
        """A failure whose confirming re-runs are still under way."""
        return bool(self.event.confirming)


@dataclass(frozen=True)
class RerunStep:
    """One confirming re-run of a failure (CONTRACT §7), and the upstream commit it ran
    against (None when that upstream is hidden from this caller)."""

    node: TreeNode
    step: Step
    upstream_sha: str | None


@dataclass(frozen=True)
class EventTree:
    event: Event  # the event asked for
    root: TreeNode
    tally: Tally  # every downstream run below it, as the report on its commit has them
    description: str  # of them, in the words of that report's commit status
    confirming: int  # of them, failures being confirmed by re-running
    skipped: int
    everything: Tally  # every downstream run from the origin
    running: int
    elapsed: float  # seconds since the event was recorded
    left: float | None  # seconds its running downstreams probably still need
    artifacts: list[dict[str, Any]]  # what this build made
    upstream_artifacts: list[dict[str, Any]]  # what a triggered run was started with


async def event_tree(
    sessions: async_sessionmaker[AsyncSession],
    event_id: str,
    *,
    admin: bool,
    compare: Callable[[str, str, str], str | None] | None = None,
) -> EventTree | None:
    """The tree of every event from the origin of this one; None when the caller may not see
    it. `compare(upstream, base, head)` links what changed upstream since a failing pair last
    passed."""
    async with _reading(sessions) as session:
        event = await session.get(Event, event_id)
        if event is None:
            return None
        hidden = await _hidden(session, admin)
        if project_key(event.project) in hidden:
            return None
        events = list(
            await session.scalars(
                select(Event)
                .where(Event.root_id == event.root_id)
                .order_by(Event.created_at)
                .limit(TREE_LIMIT)
            )
        )
        nodes = {
            item.id: TreeNode(item, None if project_key(item.project) in hidden else item.project)
            for item in events
        }
        running = [node for node in nodes.values() if node.event.result is None]
        typical = await pair_durations(session, {_pair(node.event) for node in running})
        links = await _issue_links(session, [node.event for node in nodes.values()], hidden)
        for node in nodes.values():
            await _annotate(session, node, nodes, typical, links, compare, hidden)
        below = descendants(event.id, events)  # the rows of the report on its commit
        started = await progress(session, below)
        parent = nodes.get(event.parent_id or "")
        build = await upstream_build(session, event, parent.event) if parent else None
    _link_up(nodes)
    root = nodes.get(event.root_id) or nodes[event.id]
    shown = _failure_of(nodes, nodes[event.id]) or nodes[event.id]
    estimates = [node.left for node in _below(shown) if node.left is not None]
    return EventTree(
        event=event,
        root=root,
        tally=tally_of(below),
        description=describe([Row(item, "", (), False, None) for item in below], started),
        confirming=sum(nodes[item.id].confirming for item in below),
        skipped=sum(item.result == Result.SKIPPED for item in below),
        everything=tally_of(
            [item for item in events if item.kind == "trigger" and item.confirms_id is None]
        ),
        running=len(running),
        elapsed=(utcnow() - event.created_at).total_seconds(),
        left=max(estimates) if estimates else None,
        artifacts=event.artifacts or [],
        upstream_artifacts=(build.artifacts or []) if build else [],
    )


def _link_up(nodes: dict[str, TreeNode]) -> None:
    """Hang each node under its parent; a confirming re-run is a step of the failure it
    confirms, and what ran after it (a flake's downstreams) hangs under that failure."""
    for node in nodes.values():
        failure = _failure_of(nodes, node)
        if failure is not None:
            failure.steps.append(_step(node, failure, nodes.get(failure.event.parent_id or "")))
            continue
        parent = nodes.get(node.event.parent_id or "")
        if parent is not None:
            (_failure_of(nodes, parent) or parent).children.append(node)


def _step(rerun: TreeNode, failure: TreeNode, source: TreeNode | None) -> RerunStep:
    step = Step(rerun.event.step or Step.AGAIN)
    if source is None or source.name is None:
        return RerunStep(rerun, step, None)
    if step is Step.AGAIN:
        return RerunStep(rerun, step, source.event.sha)
    sha = rerun.event.upstream_sha or failure.event.last_passed_sha
    return RerunStep(rerun, step, sha)


def _failure_of(nodes: dict[str, TreeNode], node: TreeNode) -> TreeNode | None:
    """The failure a confirming re-run confirms, when it is in the tree."""
    return nodes.get(node.event.confirms_id or "")


def _below(node: TreeNode) -> list[TreeNode]:
    under = [*(step.node for step in node.steps), *node.children]
    return [node, *(below for child in under for below in _below(child))]


def _pair(event: Event) -> tuple[str, str]:
    return project_key(event.upstream or ""), project_key(event.project)


async def _issue_links(
    session: AsyncSession, events: list[Event], hidden: set[str]
) -> dict[str, IssueLink]:
    """The issue each event acted on, by event id; and each pair's open issue, by pair — in
    the repositories this caller may see."""
    ids = [event.id for event in events]
    downstreams = {project_key(event.project) for event in events}
    links = await session.scalars(
        select(IssueLink).where(
            IssueLink.downstream.in_(downstreams),
            IssueLink.last_event_id.in_(ids) | (IssueLink.state == "open"),
        )
    )
    found: dict[str, IssueLink] = {}
    for link in links:
        if project_key(link.repository) in hidden:
            continue
        if link.last_event_id:
            found.setdefault(link.last_event_id, link)
        if link.state == "open":
            found.setdefault(f"{link.upstream}|{link.downstream}", link)
    return found


async def _annotate(
    session: AsyncSession,
    node: TreeNode,
    nodes: dict[str, TreeNode],
    typical: dict[tuple[str, str], Figures],
    links: dict[str, IssueLink],
    compare: Callable[[str, str, str], str | None] | None,
    hidden: set[str],
) -> None:
    event = node.event
    if node.name is None or event.kind != "trigger":
        return
    upstream_visible = _pair(event)[0] not in hidden
    node.changes = shown_changes(event, upstream_visible=upstream_visible)
    node.typical = typical.get(_pair(event))
    result = event.result
    if result is None:
        now = utcnow()
        node.left = remaining(node.typical, event.started_at, now)
        node.running_for = (now - event.started_at).total_seconds() if event.started_at else None
        return
    link = links.get(event.id)
    if Result(result).broken:
        link = link or links.get("|".join(_pair(event)))
        if upstream_visible:
            node.compare_url = await _compare_url(session, event, nodes, compare)
    node.issue_url = link.url if link is not None else None


async def _compare_url(
    session: AsyncSession,
    event: Event,
    nodes: dict[str, TreeNode],
    compare: Callable[[str, str, str], str | None] | None,
) -> str | None:
    parent = nodes.get(event.parent_id or "")
    if compare is None or parent is None or parent.event.sha is None:
        return None
    passed = await last_passed(session, event)
    if passed is None or passed.parent_id is None:
        return None
    base = await session.get(Event, passed.parent_id)
    if base is None or base.sha in (None, parent.event.sha):
        return None
    return compare(parent.event.project, base.sha or "", parent.event.sha)
