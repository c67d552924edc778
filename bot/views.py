"""The read side: what the API and the pages show, as a caller may see it.

A private project, its events and pages exist only for the admin; on what anyone else sees, a
private project is "a private project", with no name, link or id that leads to it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.badges import Tally, change
from bot.models import Event, Project, Subscription
from bot.names import project_key
from bot.results import FLAKY_HINT, Result, Verdict

RECENT_EVENTS = 500
RECENT_BUILDS = 20  # upstream successes looked at for the latest with downstreams
PAIR_RUNS = 20  # the verdicts shown per pair
PAIR_SCAN = 2000  # the project's latest runs those are taken from


def event_json(event: Event, visible: bool = True, upstream_visible: bool = True) -> dict[str, Any]:
    if not visible:
        return {"id": event.id, "project": None, "private": True, "result": event.result}
    changes = dict(event.details.get("changes") or {})
    if changes and not upstream_visible:  # a private upstream's commits stay with it
        changes["upstream"] = None
    return {
        "id": event.id,
        "kind": event.kind,
        "project": event.project,
        "upstream": event.upstream,
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
        "hint": event.details.get("hint"),
        "confirmation": event.details.get("confirmation"),  # a failure being or once confirmed
        "confirms": event.confirms_id
        and {  # a confirming re-run: the failure it confirms, and against which upstream commit
            "event": event.confirms_id,
            "step": event.details.get("step"),
            "upstream_sha": event.details.get("upstream_sha"),
        },
        "changes": changes or None,  # since the pair last passed, and the likely culprit
        "reason": event.reason,
        "created_at": event.created_at.isoformat(),
        "started_at": event.started_at.isoformat() if event.started_at else None,
        "finished_at": event.finished_at.isoformat() if event.finished_at else None,
    }


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
    async with sessions() as session:
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
    if project_key(event.project) in hidden:
        return None

    def show(item: Event) -> dict[str, Any]:
        return event_json(
            item,
            project_key(item.project) not in hidden,
            project_key(item.upstream or "") not in hidden,
        )

    return {
        **show(event),
        "chain": [show(item) for item in reversed(chain)],
        "children": [show(item) for item in children],
    }


async def project_view(
    sessions: async_sessionmaker[AsyncSession], name: str, *, admin: bool
) -> dict[str, Any] | None:
    """A project's upstreams, downstreams, recent results and build-time statistics."""
    key = project_key(name)
    async with sessions() as session:
        project = await session.get(Project, key)
        if project is None or (project.private and not admin):
            return None
        upstreams = await session.scalars(
            select(Subscription.spec).where(Subscription.downstream == key)
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
        hidden = set() if admin else await private_projects(session, downstreams)
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
            if run.upstream and project_key(run.project) not in hidden:
                pairs.setdefault((run.upstream, run.project), []).append(run)
    tallies = await latest_tallies(sessions, name, admin=admin) or []
    return {
        "project": project.name,
        "private": project.private,
        "default_branch": project.default_branch,
        "owners": project.owners,
        "config_error": project.config_error,
        "upstreams": list(upstreams),
        "downstreams": sorted(downstreams - hidden),
        "private_downstreams": len(downstreams & hidden),
        "recent": [event_json(event) for event in recent],
        "statistics": statistics_of(recent),
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
    flakes = sum(
        run.change == Verdict.FLAKY or run.details.get("hint") == FLAKY_HINT for run in decisive
    )
    return {
        "upstream": upstream,
        "downstream": downstream,
        "verdicts": [
            {
                "event": run.id,
                "verdict": run.change,
                "result": run.result,
                "hint": run.details.get("hint"),
            }
            for run in runs
        ],
        "flake_rate": flakes / len(decisive) if decisive else None,
        "new_regressions": sum(run.change == Verdict.NEW_REGRESSION for run in runs),
        "already_broken": sum(run.change == Verdict.ALREADY_BROKEN for run in runs),
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


@dataclass(frozen=True)
class DashboardRow:
    project: Project
    upstreams: int
    downstreams: int
    latest: Event | None


async def dashboard(sessions: async_sessionmaker[AsyncSession]) -> list[DashboardRow]:
    """The public projects with their subscription counts and latest event."""
    async with sessions() as session:
        projects = list(
            await session.scalars(
                select(Project)
                .where(Project.active.is_(True), Project.private.is_(False))
                .order_by(Project.key)
            )
        )
        upstreams = dict(
            (
                await session.execute(
                    select(Subscription.downstream, func.count()).group_by(Subscription.downstream)
                )
            ).all()
        )
        downstreams = dict(
            (
                await session.execute(
                    select(Subscription.upstream, func.count()).group_by(Subscription.upstream)
                )
            ).all()
        )
        recent = await session.scalars(
            select(Event).order_by(Event.created_at.desc()).limit(RECENT_EVENTS)
        )
        latest: dict[str, Event] = {}
        for event in recent:
            latest.setdefault(project_key(event.project), event)
    return [
        DashboardRow(
            project,
            upstreams.get(project.key, 0),
            downstreams.get(project.key, 0),
            latest.get(project.key),
        )
        for project in projects
    ]


async def latest_tallies(
    sessions: async_sessionmaker[AsyncSession], name: str, *, admin: bool
) -> list[Tally] | None:
    """Downstream tallies of the project's latest upstream successes that have downstreams,
    newest first (at most two); None when the project does not exist for this caller."""
    async with sessions() as session:
        project = await session.get(Project, project_key(name))
        if project is None or (project.private and not admin):
            return None
        builds = list(
            await session.scalars(
                select(Event.id)
                .where(
                    Event.kind == "build",
                    Event.project == project.name,
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
