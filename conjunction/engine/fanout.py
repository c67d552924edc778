"""An upstream success and a downstream's failure: their fan-out loaded, planned and written.

One loader reads a `planning.Snapshot` (the source event, the subscribers, the chain around it,
the open triggers it may supersede); the pure `planning.plan_success` and `plan_fallout` decide,
in a thread; one applier writes the plan in a few statements: the trigger events and their jobs
in one bulk insert each (one `trigger` job per owner and batch, started by
`conjunction.engine.dispatch`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from conjunction import metrics, texts
from conjunction.engine import followups, planning
from conjunction.engine.chains import Root, State, merged, state_of
from conjunction.engine.context import Context, UnknownEvent, new_event_id
from conjunction.engine.graph import GraphView
from conjunction.engine.planning import NewTrigger, OpenTrigger, Plan, Snapshot, Source
from conjunction.engine.subscriptions import Candidate, subscribers
from conjunction.engine_api import UpstreamSuccess
from conjunction.models import Event, Job, Project, utcnow
from conjunction.names import project_key
from conjunction.results import Result, Verdict
from conjunction.runs import Step, TriggerState

BUILD_IDS = uuid.UUID("5b0c6a43-77c1-4f52-9a55-3c2b7d4e8f10")  # the namespace of runs' build ids

__all__ = ["UpstreamSuccess", "fallout", "lone_success", "record_build", "upstream_success"]

log = logging.getLogger(__name__)


async def upstream_success(
    ctx: Context, success: UpstreamSuccess, *, parent_id: str | None = None
) -> Event:
    """Record an upstream success and plan its fan-out (`planning.plan_success`): one trigger
    event per selected downstream, started by one job per owner and batch; the older
    successes of the same upstream and ref lose their triggers not sent yet.

    With parent_id, the success is a downstream's own result continuing a chain.
    """
    if parent_id is None and success.changed_paths is None:
        success = await _with_changed_paths(ctx, success)
    max_depth = ctx.settings.max_depth
    async with ctx.sessions.begin() as session:
        if parent_id is not None:
            source = await session.get(Event, parent_id)
            if source is None:
                raise UnknownEvent(parent_id)
        else:
            source = build_event(session, success, Result.SUCCESS)
            await session.flush()
        origin, root = await _load_root(session, source.root_id)
        graph = await ctx.graph.view(session)
        key = project_key(success.project)
        candidates = {key: await graph.subscribers(key)}
        snapshot = Snapshot(
            source=_source(source),
            success=success,
            chain=root,
            candidates=candidates,
            default_branches=await _default_branches(session, [key]),
            already=frozenset(
                () if source.kind == "trigger" else await _triggered_for(session, success)
            ),
            open_triggers=await _open_triggers(session, source),
            **await _around(graph, root, {c.key for c in candidates[key]}, max_depth),
        )
        plan = await _decide(planning.plan_success, snapshot, max_depth)
        await _apply(ctx, session, origin, plan)
    log.info(
        "upstream success of %s at %s: %d downstream(s)",
        success.project,
        success.sha,
        len(plan.triggers),
        extra={"event_id": source.id},
    )
    return source


async def fallout(ctx: Context, failed: Event) -> None:
    """A downstream ended without passing: its own downstreams, and theirs, are recorded as
    skipped for this origin, naming the upstream that failed (`planning.plan_fallout`)."""
    max_depth = ctx.settings.max_depth
    async with ctx.sessions.begin() as session:
        origin, root = await _load_root(session, failed.root_id)
        graph = await ctx.graph.view(session)
        candidates = await _candidates_below(graph, project_key(failed.project), max_depth)
        snapshot = Snapshot(
            source=_source(failed),
            success=_source(failed).success(),
            chain=root,
            candidates=candidates,
            default_branches=await _default_branches(session, candidates),
            **await _around(graph, root, set(), max_depth),
        )
        plan = await _decide(planning.plan_fallout, snapshot, max_depth)
        await _apply(ctx, session, origin, plan)


async def _decide(planner: Callable[..., Plan], snapshot: Snapshot, max_depth: int) -> Plan:
    """The pure plan, in a thread: tens of milliseconds for a fan-out to a thousand
    downstreams, during which the event loop goes on answering."""
    return await asyncio.to_thread(planner, snapshot, max_depth=max_depth, new_id=new_event_id)


async def record_build(ctx: Context, build: UpstreamSuccess, result: Result) -> Event:
    """A build reported through the API: a success fans out, anything else is only kept."""
    if result is Result.SUCCESS:
        return await upstream_success(ctx, build)
    async with ctx.sessions.begin() as session:
        return build_event(session, build, result)


async def lone_success(session: AsyncSession, success: UpstreamSuccess) -> Event | None:
    """An upstream success that starts nothing — no active subscriber, and no trigger of an
    older success of the same upstream and ref left to supersede — recorded in the caller's
    transaction with one Core insert: its build is what the pages, the API, culprit searches
    and the next success's `paths:` read. None when the success has a fan-out to plan
    (`upstream_success`)."""
    if await subscribers(session, project_key(success.project)):
        return None
    now = utcnow()
    row = _build_row(success, Result.SUCCESS, now, event_id=_run_build_id(success))
    build = Event(**row)
    if await _open_triggers(session, build):
        return None
    connection = await session.connection()
    inserted = await connection.execute(_insert_once(connection.dialect.name), row)
    if inserted.rowcount == 0:  # recorded by an earlier attempt of this job
        return build
    log.info(
        "upstream success of %s at %s: no downstream",
        success.project,
        success.sha,
        extra={"event_id": build.id},
    )
    return build


def build_event(session: AsyncSession, success: UpstreamSuccess, result: Result) -> Event:
    event = Event(**_build_row(success, result, utcnow()))
    session.add(event)
    return event


def _run_build_id(success: UpstreamSuccess) -> str | None:
    """The id of a run's build, the same each time the run is reported: a job that recorded
    it and lost the database's answer to its commit records it once when it runs again."""
    if success.run is None:
        return None
    run_id, attempt = success.run
    name = f"{project_key(success.project)}\0{run_id}\0{attempt or 1}"
    return uuid.uuid5(BUILD_IDS, name).hex


@cache
def _insert_once(dialect: str) -> Insert:
    """The build's insert, leaving out a build of that id already recorded."""
    if dialect == "postgresql":
        return postgresql.insert(Event).on_conflict_do_nothing(index_elements=["id"])
    return sqlite.insert(Event).on_conflict_do_nothing(index_elements=["id"])


def _build_row(
    success: UpstreamSuccess, result: Result, now: datetime, *, event_id: str | None = None
) -> dict[str, Any]:
    event_id = event_id or new_event_id()
    return {
        "id": event_id,
        "kind": "build",
        "project": success.project,
        "root_id": event_id,
        "sha": success.sha,
        "ref": success.ref,
        "ref_type": success.ref_type,
        "pipeline": success.pipeline,
        "url": success.url,
        "result": result,
        "depth": 0,
        "via": success.via,
        "chain": [project_key(success.project)],
        "artifacts": [dict(a) for a in success.artifacts],
        "finished_at": now,
        "created_at": now,
    }


# -- the one loader


def _source(event: Event) -> Source:
    return Source(
        event.id,
        event.project,
        event.root_id,
        event.depth,
        tuple(event.chain or ()),
        event.sha,
        event.ref,
        event.ref_type or "branch",
        event.pipeline,
        event.result,
    )


async def _load_root(session: AsyncSession, root_id: str) -> tuple[Event, Root]:
    """The chain of one origin, its origin event locked for the rest of the transaction."""
    origin = await session.get(Event, root_id, with_for_update=True, populate_existing=True)
    if origin is None:
        raise LookupError(root_id)
    root = Root(origin.id, waiting=dict(origin.waiting or {}))
    root.states[project_key(origin.project)] = State.PASSED
    rows = await session.execute(
        select(Event.project, Event.result, Event.step, Event.confirming).where(
            Event.root_id == root_id, Event.kind == "trigger"
        )
    )
    found: dict[str, list[State]] = {}
    for project, result, step, confirming in rows:
        root.triggered.add(project_key(project))
        state = state_of(result, step, confirming)
        if state is not None:
            found.setdefault(project_key(project), []).append(state)
    root.states.update({key: merged(states) for key, states in found.items()})
    return origin, root


async def _around(
    graph: GraphView, root: Root, starting: set[str], max_depth: int
) -> dict[str, Any]:
    """What deciding whether a diamond's bottom waits needs: the graph from every project under
    way, starting or waiting, their declared upstreams, and the waiting ones' sources."""
    pending = {key for key, state in root.states.items() if state is State.PENDING}
    await _load_graph(graph, root, pending | starting | set(root.waiting), max_depth)
    if await graph.acyclic(root.graph):
        root.acyclic()
    await load_upstreams(graph, root, starting | set(root.waiting))
    if not root.waiting:
        return {}
    session = graph.session
    sources = await session.scalars(select(Event).where(Event.id.in_(set(root.waiting.values()))))
    names = await session.execute(
        select(Project.key, Project.name).where(Project.key.in_(set(root.waiting)))
    )
    return {
        "waiting_sources": {event.id: _source(event) for event in sources},
        "names": {key: name for key, name in names},
    }


async def load_upstreams(graph: GraphView, root: Root, keys: Iterable[str]) -> None:
    """The declared upstreams of these projects, for those not loaded yet."""
    wanted = {key for key in keys if key not in root.upstreams}
    for downstream, upstreams in (await graph.upstreams(wanted)).items():
        root.upstreams[downstream] = set(upstreams)


async def _load_graph(graph: GraphView, root: Root, start: Iterable[str], max_depth: int) -> None:
    """The downstreams of these projects, and of theirs, as far as a chain may go from them
    (`max_depth` links: what `Root.will_run` follows)."""
    frontier = {key for key in start if key not in root.graph}
    for _ in range(max_depth):
        if not frontier:
            return
        for upstream, downstreams in (await graph.downstreams(frontier)).items():
            root.graph[upstream] = list(downstreams)
        frontier = {below for key in frontier for below in root.graph[key]} - set(root.graph)


async def _candidates_below(
    graph: GraphView, key: str, max_depth: int
) -> dict[str, list[Candidate]]:
    """The subscribers of a project, of theirs, and so on as far as a chain may go."""
    found: dict[str, list[Candidate]] = {}
    frontier = {key}
    for _ in range(max_depth + 1):
        for upstream in frontier:
            found[upstream] = await graph.subscribers(upstream)
        frontier = {c.key for upstream in frontier for c in found[upstream]} - set(found)
        if not frontier:
            break
    return found


async def _default_branches(session: AsyncSession, keys: Iterable[str]) -> dict[str, str]:
    rows = await session.execute(
        select(Project.key, Project.default_branch).where(Project.key.in_(set(keys)))
    )
    return {key: branch for key, branch in rows if branch}


async def _open_triggers(session: AsyncSession, source: Event) -> list[OpenTrigger]:
    """Triggers not sent yet of earlier successes of the same upstream and ref."""
    if source.sha is None or source.ref is None:
        return []
    connection = await session.connection()
    rows = await connection.execute(
        OPEN_TRIGGERS,
        {
            "project": source.project,
            "ref": source.ref,
            "ref_type": source.ref_type,
            "before": source.created_at,
            "source": source.id,
        },
    )
    return [OpenTrigger(*row) for row in rows]


def _open_triggers_query() -> Select[str, str, str, str | None]:
    older = (
        select(Event.id, Event.sha)
        .where(
            Event.project == bindparam("project"),
            Event.ref == bindparam("ref"),
            Event.ref_type == bindparam("ref_type"),
            Event.created_at <= bindparam("before"),
            Event.id != bindparam("source"),
        )
        .subquery()
    )
    return (
        select(Event.id, Event.parent_id, Event.root_id, older.c.sha)
        .join(older, older.c.id == Event.parent_id)
        .where(
            Event.kind == "trigger",
            Event.state == TriggerState.PLANNED,
            Event.step == Step.FIRST,
        )
    )


OPEN_TRIGGERS = _open_triggers_query()  # asked of every upstream success: built once


# -- the one applier


async def _apply(ctx: Context, session: AsyncSession, origin: Event, plan: Plan) -> None:
    """Write a plan in: the superseded triggers, the new ones and their jobs in a statement
    each, the origin's waiting bottoms, then the reports that change."""
    now = utcnow()
    if plan.superseded:
        await session.execute(
            update(Event)
            .where(Event.id.in_(plan.superseded), Event.state == TriggerState.PLANNED)
            .values(
                state=TriggerState.SUPERSEDED,
                result=Result.SKIPPED,
                change=Verdict.SKIPPED,
                reason=f"superseded by {texts.short(plan.superseded_by or '')}",
                finished_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    if plan.triggers:
        deadline = now + timedelta(seconds=ctx.settings.result_timeout)
        await session.execute(
            insert(Event), [_trigger_row(trigger, now, deadline) for trigger in plan.triggers]
        )
    if plan.started:
        await session.execute(
            insert(Job),
            [
                {
                    "kind": "trigger",
                    "payload": {"event_ids": list(batch.event_ids)},
                    "concurrency_key": batch.concurrency_key,
                    "run_at": now,
                    "created_at": now,
                }
                for batch in plan.batches()
            ],
        )
        metrics.JOBS_ENQUEUED.labels("trigger").inc(len(plan.batches()))
    for trigger in plan.triggers:
        metrics.TRIGGERS.labels("queued" if trigger.skip_reason is None else "skipped").inc()
    if plan.waiting != (origin.waiting or {}):
        origin.waiting = plan.waiting
    for event_id in plan.reports:
        await followups.report(session, event_id)


def _trigger_row(trigger: NewTrigger, now: datetime, deadline: datetime) -> dict[str, Any]:
    """A trigger event under its source: to be started, or recorded as skipped."""
    source, skipped = trigger.source, trigger.skip_reason is not None
    return {
        "id": trigger.id,
        "kind": "trigger",
        "project": trigger.project,
        "upstream": source.project,
        "parent_id": source.id,
        "root_id": source.root_id,
        "depth": source.depth + 1,
        "step": Step.FIRST,
        "state": TriggerState.SKIPPED if skipped else TriggerState.PLANNED,
        "chain": trigger.chain,
        "fallout": trigger.fallout,
        "result": Result.SKIPPED if skipped else None,
        "change": Verdict.SKIPPED if skipped else None,
        "reason": trigger.skip_reason,
        "finished_at": now if skipped else None,
        "deadline_at": None if skipped else deadline,
        "created_at": now,
    }


async def _triggered_for(session: AsyncSession, success: UpstreamSuccess) -> set[str]:
    """Downstreams already triggered for this upstream commit (by another of its pipelines)."""
    if success.sha is None:
        return set()
    sources = select(Event.id).where(
        Event.project == success.project,
        Event.sha == success.sha,
        Event.change_number.is_(None),  # a pre-merge run of the same commit is no merged run
    )
    rows = await session.scalars(
        select(Event.project).where(Event.kind == "trigger", Event.parent_id.in_(sources))
    )
    return {project_key(name) for name in rows}


async def _with_changed_paths(ctx: Context, success: UpstreamSuccess) -> UpstreamSuccess:
    """Ask the code host what changed since the previous success, when a subscriber filters
    on `paths`; unknown changes let every subscriber through."""
    async with ctx.sessions() as session:
        if success.sha is None:
            return success
        graph = await ctx.graph.view(session)
        if not any(c.spec.paths for c in await graph.subscribers(project_key(success.project))):
            return success
        base = await session.scalar(
            select(Event.sha)
            .where(
                Event.kind == "build",
                Event.project == success.project,
                Event.ref == success.ref,
                Event.result == Result.SUCCESS,
                Event.sha != success.sha,
            )
            .order_by(Event.created_at.desc())
            .limit(1)
        )
    host = ctx.adapters.host(success.project)
    if base is None or host is None:
        return success
    changed = await host.changed_files(success.project, base, success.sha)
    return success if changed is None else replace(success, changed_paths=changed)
