"""The JSON of `/api/v1`: an event's trace; the projects a caller may see, a page at a time;
and a project in both its roles — as an upstream (its latest successes with their downstream
rows, the issues open about it) and as a downstream (its own runs) — with build-time
statistics."""

from __future__ import annotations

import statistics
from typing import Any

from sqlalchemy import and_, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.badges import change
from conjunction.durations import figures, pair_durations
from conjunction.history import upstream_build
from conjunction.models import Event, IssueLink, Project, Subscription
from conjunction.names import project_key
from conjunction.premerge import KIND
from conjunction.results import FLAKY_HINT, Result, Verdict
from conjunction.runs import Step
from conjunction.tally import Count, Tally, shown_as
from conjunction.views.session import reading
from conjunction.views.sources import (
    PROJECT_SOURCES,
    Source,
    latest_counts,
    recent_sources,
    with_reports,
)
from conjunction.views.visibility import (
    hidden_projects,
    open_issues,
    private_projects,
    shown_changes,
)

PER_PAGE = 50  # projects in a page of `GET /api/v1/projects`, unless asked
MAX_PER_PAGE = 200
LATEST_SUCCESSES = 5  # upstream successes in a project's `upstream` part, newest first

PAIR_RUNS = 20  # the verdicts shown per pair
PAIR_SCAN = 2000  # the project's latest runs those are taken from


def event_json(event: Event, visible: bool = True, upstream_visible: bool = True) -> dict[str, Any]:
    """An event as the API shows it; one of a project this caller may not see is its result
    only, and an upstream it may not see is not named."""
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
        # the CI's run: the id its start was answered with, or the run that claimed it
        "run_id": event.run_id,
        "claim": event.claim,  # a trigger its run claims (`trigger.webhook.claim`)
        "result": event.result,
        # what the pages say of it: `confirming` while a failure is being confirmed
        "shown_as": shown_as(event) if event.kind == "trigger" else None,
        "verdict": event.change,
        "change": event.change,  # the verdict's earlier name
        "hint": event.hint,
        "origin": event.ref_type if event.kind == "build" else None,  # a conjunction.runs.Origin
        "via": event.via,
        "step": event.step,  # a trigger's: a conjunction.runs.Step
        "state": event.state,  # a trigger's: a conjunction.runs.TriggerState
        # a change (an unmerged pull/merge request) and, for a trigger, the kind, step and
        # change its CI was sent (CONTRACT §8); a private upstream's change stays with it
        "change_request": _change_request(event) if upstream_visible else None,
        "sent": _sent(event, upstream_visible),
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
        # a failure's excerpt: the lines that say why, already cut and redacted
        "excerpt": event.excerpt,
        "artifacts": event.artifacts or [],
        "created_at": event.created_at.isoformat(),
        "started_at": event.started_at.isoformat() if event.started_at else None,
        "finished_at": event.finished_at.isoformat() if event.finished_at else None,
    }


def _change_request(event: Event) -> dict[str, Any] | None:
    if event.change_number is None:
        return None
    return {"number": event.change_number, "url": event.change_url, "base_sha": event.base_sha}


def _sent(event: Event, upstream_visible: bool) -> dict[str, Any] | None:
    """A trigger's `kind`, `step` and `change` as its CI was sent them (None: not sent)."""
    if event.kind != "trigger":
        return None
    premerge = event.change_number is not None
    return {
        "kind": KIND if premerge else None,
        "step": Step(event.step).sent if event.step else None,
        "change": event.change_url if premerge and upstream_visible else None,
    }


def _confirmation(event: Event) -> dict[str, Any] | None:
    if event.confirming is None and event.last_passed_sha is None:
        return None
    return {
        "step": event.confirming,  # the re-run under way; None once settled
        "last_passed_sha": event.last_passed_sha,
        "last_passed_upstream": event.last_passed_build_id,
    }


async def event_trace(
    sessions: async_sessionmaker[AsyncSession], event_id: str, *, admin: bool, max_depth: int
) -> dict[str, Any] | None:
    """An event with its chain back to the origin and its children; None when it does not
    exist or the caller may not see it."""
    async with reading(sessions) as session:
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


async def project_list(
    sessions: async_sessionmaker[AsyncSession], *, admin: bool, page: int, per_page: int
) -> dict[str, Any]:
    """One page of the active projects this caller may see, by name; private ones only for the
    admin, and never counted for anyone else."""
    shown = and_(Project.active.is_(True), true() if admin else Project.private.is_(False))
    async with reading(sessions) as session:
        total = await session.scalar(select(func.count()).select_from(Project).where(shown)) or 0
        projects = list(
            await session.scalars(
                select(Project)
                .where(shown)
                .order_by(Project.key)
                .offset((page - 1) * per_page)
                .limit(per_page)
            )
        )
    pages = max(1, -(-total // per_page))
    return {
        "projects": [
            {
                "project": project.name,
                "private": project.private,
                "default_branch": project.default_branch,
                "config_valid": project.config_error is None,
                "api": f"/api/v1/projects/{project.name}",
                "page": f"/projects/{project.name}",
            }
            for project in projects
        ],
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": pages,
        "next": f"/api/v1/projects?page={page + 1}&per_page={per_page}" if page < pages else None,
        "previous": (
            f"/api/v1/projects?page={min(page - 1, pages)}&per_page={per_page}"
            if page > 1
            else None
        ),
    }


async def project_view(
    sessions: async_sessionmaker[AsyncSession], name: str, *, admin: bool
) -> dict[str, Any] | None:
    """A project as an upstream and as a downstream, with its pairs and build-time statistics.

    The top-level `recent` and `statistics` are its runs as a downstream, as before; `upstream`
    holds what its own successes started."""
    key = project_key(name)
    async with reading(sessions) as session:
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
        hidden = await hidden_projects(session, admin)
        sources = (await recent_sources(session, project=key, limit=PROJECT_SOURCES * 50))[
            :PROJECT_SOURCES
        ]
        build_times = await _build_times(session, key, sources, downstreams, hidden)
        latest = await with_reports(session, sources[:LATEST_SUCCESSES])
        issues = await open_issues(session, key, hidden)
        linked = {link.upstream for link in issues} | {link.downstream for link in issues}
        names: dict[str, str] = {
            row.key: row.name
            for row in await session.execute(
                select(Project.key, Project.name).where(Project.key.in_(linked))
            )
        }
        runs = await session.scalars(
            select(Event)
            .where(
                (Event.project == project.name) | (Event.upstream == project.name),
                Event.kind == "trigger",
                Event.confirms_id.is_(None),
                Event.result.is_not(None),
                Event.change_number.is_(None),  # pre-merge runs are no pair's history
            )
            .order_by(Event.created_at.desc())
            .limit(PAIR_SCAN)
        )
        pairs: dict[tuple[str, str], list[Event]] = {}
        for run in runs:
            if run.upstream and not {project_key(run.project), project_key(run.upstream)} & hidden:
                pairs.setdefault((run.upstream, run.project), []).append(run)
    counts = await latest_counts(sessions, name, admin=admin) or []
    visible_upstreams = [spec for spec in upstreams if project_key(spec["project"]) not in hidden]
    private_upstreams = sum(project_key(spec["project"]) in hidden for spec in upstreams)
    own = [
        event_json(event, upstream_visible=project_key(event.upstream or "") not in hidden)
        for event in recent
    ]
    return {
        "project": project.name,
        "private": project.private,
        "default_branch": project.default_branch,
        "owners": project.owners,
        "config_error": project.config_error,
        "upstreams": visible_upstreams,
        "private_upstreams": private_upstreams,
        "downstreams": sorted(downstreams - hidden),
        "private_downstreams": len(downstreams & hidden),
        "recent": own,
        "statistics": statistics_of(recent),
        "upstream": {
            "downstreams": sorted(downstreams - hidden),
            "private_downstreams": len(downstreams & hidden),
            "latest_successes": [_success_json(source, hidden) for source in latest],
            "statistics": statistics_of([child for s in sources for child in s.children]),
            "open_issues": [_issue_json(link, names) for link in issues if link.upstream == key],
        },
        "downstream": {
            "upstreams": visible_upstreams,
            "private_upstreams": private_upstreams,
            "recent": own,
            "statistics": statistics_of(recent),
            "open_issues": [_issue_json(link, names) for link in issues if link.downstream == key],
        },
        "build_times": build_times,
        "latest_downstream_results": latest_json(counts),
        "pairs": [
            pair_json(upstream, downstream, runs[:PAIR_RUNS])
            for (upstream, downstream), runs in sorted(pairs.items())
        ],
    }


def _success_json(source: Source, hidden: set[str]) -> dict[str, Any]:
    """An upstream success, its count as the report on its commit has it (`conjunction.tally`), and
    one row per downstream run it started; a private downstream's row is its result only."""
    build = source.event
    return {
        "build": event_json(
            build, upstream_visible=project_key(build.upstream or "") not in hidden
        ),
        "tally": count_json(source.count),
        "rows": [
            event_json(child, visible=project_key(child.project) not in hidden)
            for child in source.children
        ],
    }


def _issue_json(link: IssueLink, names: dict[str, str]) -> dict[str, Any]:
    """An open breakage issue of a pair (keys named as their projects spell themselves)."""
    return {
        "upstream": names.get(link.upstream, link.upstream),
        "downstream": names.get(link.downstream, link.downstream),
        "repository": link.repository,
        "number": link.number,
        "url": link.url,
        "updated_at": link.updated_at.isoformat(),
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
    session: AsyncSession, key: str, sources: list[Source], downstreams: set[str], hidden: set[str]
) -> dict[str, Any]:
    """Median and 90th percentile of each downstream's run time, and of the time until all
    downstreams of an upstream success answered; private downstreams only counted."""
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


def latest_json(counts: list[Count]) -> dict[str, Any] | None:
    """The latest upstream success's downstream results (`count_json`), and how they changed
    since the one before (`improved`, `broke`, `unchanged`)."""
    if not counts:
        return None
    latest = counts[0]
    return {
        **count_json(latest),
        "change": change(latest, counts[1] if len(counts) > 1 else None),
    }


def count_json(count: Count) -> dict[str, Any]:
    """Downstream results as the report on their commit counts them: its direct downstreams,
    and its whole `tree`, in its badge's words."""
    return {**_tally_json(count.direct), "tree": _tally_json(count.tree), "words": count.short()}


def _tally_json(tally: Tally) -> dict[str, int]:
    return {
        "passed": tally.passed,
        "total": tally.total,
        "running": tally.running,
        "confirming": tally.confirming,
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
