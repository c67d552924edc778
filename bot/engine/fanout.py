"""An upstream success: which downstreams it selects, and their trigger events."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics
from bot.engine import chains, followups
from bot.engine.chains import Root, State
from bot.engine.context import Context, UnknownEvent, new_event_id
from bot.engine.subscriptions import Candidate, subscribers
from bot.engine_api import UpstreamSuccess
from bot.models import Event, Project, Subscription, utcnow
from bot.names import owner_of, project_key
from bot.queue import JobQueue
from bot.results import Result, Verdict
from bot.runs import Step, TriggerState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selected:
    name: str
    key: str
    skip_reason: str | None = None  # recorded as skipped instead of started


def select_downstreams(
    success: UpstreamSuccess,
    candidates: Iterable[Candidate],
    *,
    default_branch: str,
    chain: Sequence[str],
    already: set[str],
    depth: int,
    max_depth: int,
) -> list[Selected]:
    """The downstreams a success starts (or records as stopped), each once, in order."""
    ref = success.ref or default_branch  # a downstream run that did not say ran the default
    changed = list(success.changed_paths) if success.changed_paths is not None else None
    selected: dict[str, Selected] = {}
    for candidate in candidates:
        spec = candidate.spec
        if (
            candidate.key in selected
            or candidate.key in already
            or not spec.watches_ref(success.ref_type, ref, default_branch)  # type: ignore[arg-type]
            or not spec.watches_pipeline(success.pipeline)
            or not spec.watches_paths(changed)
        ):
            continue
        reason = None
        if candidate.key in chain:
            reason = f"loop: {candidate.name} is already in this chain"
        elif depth > max_depth:
            reason = f"chain longer than CONJUNCTION_MAX_DEPTH ({max_depth})"
        selected[candidate.key] = Selected(candidate.name, candidate.key, reason)
    return list(selected.values())


async def upstream_success(
    ctx: Context, success: UpstreamSuccess, *, parent_id: str | None = None
) -> Event:
    """Record an upstream success and create one trigger event per selected downstream; the
    older successes of the same upstream and branch lose their triggers not sent yet.

    With parent_id, the success is a downstream's own result continuing a chain.
    """
    if parent_id is None and success.changed_paths is None:
        success = await _with_changed_paths(ctx, success)
    async with ctx.sessions.begin() as session:
        if parent_id is not None:
            source = await session.get(Event, parent_id)
            if source is None:
                raise UnknownEvent(parent_id)
        else:
            source = build_event(session, success, Result.SUCCESS)
            await session.flush()
        for stale in await chains.supersede(session, source):
            await followups.report(session, stale)
        children = await _fan_out(ctx, session, source, success)
        for child in children:
            await followups.reports(session, child)
    log.info(
        "upstream success of %s at %s: %d downstream(s)",
        success.project,
        success.sha,
        len(children),
        extra={"event_id": source.id},
    )
    return source


async def fallout(ctx: Context, failed: Event) -> None:
    """A downstream ended without passing: its own downstreams, and theirs, will not run for
    this origin; each is recorded as skipped, naming the upstream that failed."""
    reason = chains.fallout_reason(failed.project, failed.result)
    async with ctx.sessions.begin() as session:
        root = await chains.load_root(session, failed.root_id)
        frontier = [failed]
        while frontier:
            source = frontier.pop(0)
            success = UpstreamSuccess(
                source.project, source.sha, source.ref, source.ref_type, source.pipeline
            )
            for choice in await _select(ctx, session, source, success, root.triggered):
                if choice.skip_reason is None:  # a loop or the depth limit stops it anyway
                    skipped = _child(ctx, source, success, choice, reason, fallout=failed.project)
                    session.add(skipped)
                    root.add(choice.key, State.FAILED)
                    frontier.append(skipped)
                    await followups.reports(session, skipped)
        for started in await _start_waiting(ctx, session, root):
            await followups.reports(session, started)


async def record_build(ctx: Context, build: UpstreamSuccess, result: Result) -> Event:
    """A build reported through the API: a success fans out, anything else is only kept."""
    if result is Result.SUCCESS:
        return await upstream_success(ctx, build)
    async with ctx.sessions.begin() as session:
        return build_event(session, build, result)


def build_event(session: AsyncSession, success: UpstreamSuccess, result: Result) -> Event:
    event_id = new_event_id()
    event = Event(
        id=event_id,
        kind="build",
        project=success.project,
        root_id=event_id,
        sha=success.sha,
        ref=success.ref,
        ref_type=success.ref_type,
        pipeline=success.pipeline,
        url=success.url,
        result=result,
        depth=0,
        via=success.via,
        chain=[project_key(success.project)],
        artifacts=[dict(a) for a in success.artifacts],
        finished_at=utcnow(),
    )
    session.add(event)
    return event


async def _fan_out(
    ctx: Context, session: AsyncSession, source: Event, success: UpstreamSuccess
) -> list[Event]:
    """Trigger the selected downstreams; one reached by several paths from the origin (a
    diamond) waits until every upstream it has on those paths passed, and starts once."""
    root = await chains.load_root(session, source.root_id)
    # in a chain, "already triggered" is per origin; for an origin, per upstream commit
    already = root.triggered if source.kind == "trigger" else await _triggered_for(session, success)
    selected = await _select(ctx, session, source, success, already)
    starting = {choice.key for choice in selected if choice.skip_reason is None}
    await chains.load_upstreams(session, root, starting)
    children = []
    for choice in selected:
        if choice.skip_reason is None and await chains.waits(
            session, root, choice.key, starting - {choice.key}, ctx.settings.max_depth
        ):
            root.wait(choice.key, source.id)
            continue
        children.append(await _start(ctx, session, root, source, success, choice))
    return [*children, *await _start_waiting(ctx, session, root)]


async def _select(
    ctx: Context,
    session: AsyncSession,
    source: Event,
    success: UpstreamSuccess,
    already: set[str],
) -> list[Selected]:
    key = project_key(success.project)
    upstream = await session.get(Project, key)
    default_branch = upstream.default_branch if upstream else success.default_branch or "main"
    return select_downstreams(
        success,
        await subscribers(session, key),
        default_branch=default_branch,
        chain=list(source.chain or [key]),
        already=already,
        depth=source.depth + 1,
        max_depth=ctx.settings.max_depth,
    )


async def _start(
    ctx: Context,
    session: AsyncSession,
    root: Root,
    source: Event,
    success: UpstreamSuccess,
    choice: Selected,
) -> Event:
    """The trigger event of one selected downstream, and its trigger job."""
    child = _child(ctx, source, success, choice, choice.skip_reason)
    if choice.skip_reason is None:
        await JobQueue.enqueue(
            session, "trigger", {"event_id": child.id}, concurrency_key=owner_of(choice.name)
        )
    metrics.TRIGGERS.labels(child.result or "queued").inc()
    session.add(child)
    root.add(choice.key, State.PENDING if child.result is None else State.FAILED)
    root.done_waiting(choice.key)
    return child


async def _start_waiting(ctx: Context, session: AsyncSession, root: Root) -> list[Event]:
    """Start the diamond bottoms of this chain that wait for nothing any more."""
    started = []
    for key, source_id in root.waiting.items():
        if key in root.triggered:
            root.done_waiting(key)  # started, or skipped by an upstream's fallout
            continue
        if await chains.waits(session, root, key, (), ctx.settings.max_depth):
            continue
        source = await session.get(Event, source_id)
        project = await session.get(Project, key)
        if source is None or project is None:
            root.done_waiting(key)
            continue
        success = UpstreamSuccess(
            source.project, source.sha, source.ref, source.ref_type, source.pipeline
        )
        started.append(
            await _start(ctx, session, root, source, success, Selected(project.name, key))
        )
    return started


def _child(
    ctx: Context,
    source: Event,
    success: UpstreamSuccess,
    choice: Selected,
    skip_reason: str | None,
    *,
    fallout: str | None = None,
) -> Event:
    """A trigger event under `source`: to be started, or recorded as skipped with the reason."""
    child = Event(
        id=new_event_id(),
        kind="trigger",
        project=choice.name,
        upstream=success.project,
        parent_id=source.id,
        root_id=source.root_id,
        depth=source.depth + 1,
        step=Step.FIRST,
        state=TriggerState.PLANNED,
        chain=[*source.chain, choice.key],
        fallout=fallout,
    )
    if skip_reason is not None:
        child.result, child.change = Result.SKIPPED, Verdict.SKIPPED
        child.reason, child.finished_at = skip_reason, utcnow()
        child.state = TriggerState.SKIPPED
    else:
        child.deadline_at = utcnow() + timedelta(seconds=ctx.settings.result_timeout)
    return child


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
        specs = await session.scalars(
            select(Subscription.spec).where(Subscription.upstream == project_key(success.project))
        )
        if success.sha is None or not any(spec.get("paths") for spec in specs):
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
