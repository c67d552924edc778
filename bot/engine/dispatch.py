"""Starting one downstream pipeline for a trigger event, through the runner its config names."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics
from bot.engine import followups
from bot.engine.context import Context, config_of
from bot.engine.results import record_result
from bot.models import Event, Project, utcnow
from bot.names import host_of, project_key
from bot.premerge import KIND
from bot.queue import RetryLater
from bot.results import Result
from bot.runner import PipelineStarted, Runner, TriggerError, TriggerRequest
from bot.runs import Step, TriggerState, move

log = logging.getLogger(__name__)


class Superseded(Exception):
    """The trigger finished (as skipped) before it was sent."""


async def start_trigger(ctx: Context, payload: dict[str, Any]) -> None:
    """Job: start one downstream pipeline; a reason a person can act on when it cannot be."""
    async with ctx.sessions() as session:
        event = await session.get(Event, payload["event_id"])
        if event is None or event.parent_id is None:
            return
        if event.state not in (TriggerState.PLANNED, TriggerState.SENDING):
            return  # started (an earlier attempt recorded it, then died), finished or skipped
        parent = await session.get(Event, event.parent_id)
        downstream = await session.get(Project, project_key(event.project))
        upstream = await session.get(Project, project_key(event.upstream or ""))
        build = await upstream_build(session, event, parent) if parent is not None else None
    if parent is None or downstream is None:
        return
    change = event.change_url if event.change_number is not None else None
    step = Step(event.step).sent if event.step else None
    request = TriggerRequest(
        event_id=event.id,
        project=downstream.name,
        upstream=parent.project,
        # a confirming re-run may run against the upstream commit the pair last passed with
        upstream_sha=event.upstream_sha or parent.sha or "",
        # a culprit search's commit that was never built is on its failure's branch; a change's
        # baseline runs on its base commit, of the branch it would merge into
        upstream_ref=(build.ref if build else parent.ref if event.step == Step.BISECT else None)
        or (upstream.default_branch if upstream and event.step == Step.BASELINE else ""),
        upstream_url=build.url if build else None,
        callback_url=ctx.callback_url(event.id),
        callback_token=ctx.signer.token(event.id),
        trigger=config_of(downstream).trigger,
        default_branch=downstream.default_branch,
        owners=list(upstream.owners) if upstream else [],
        parent_id=parent.id,
        root_id=event.root_id,
        depth=event.depth,
        artifacts=(build.artifacts if build else None) or (),
        sent_at=event.sending_at,
        change=change,
        kind=KIND if change else None,
        step=step,
    )
    runner = ctx.adapters.runner(request.project, request.trigger)
    try:
        if runner is None:
            raise TriggerError(_no_runner_reason(request))
        started = await _start_once(ctx, runner, request, event.state == TriggerState.SENDING)
    except Superseded:
        return
    except RetryLater:  # paced: the job runs again later, and the reports say when
        async with ctx.sessions.begin() as session:
            # held back by pacing or refused by a rate limit, nothing started: the next
            # attempt need not ask the runner first
            await session.execute(
                update(Event)
                .where(Event.id == event.id, Event.state == TriggerState.SENDING)
                .values(sending_at=None, state=TriggerState.PLANNED)
            )
            await followups.progress_reports(session, event)
        raise
    except TriggerError as exc:
        if not exc.permanent:
            await _retrying(ctx, event.id, exc.reason)
            raise
        metrics.TRIGGERS.labels("error").inc()
        await record_result(ctx, event.id, Result.ERROR, reason=exc.reason)
        return
    async with ctx.sessions.begin() as session:
        stored = await session.get(Event, event.id)
        if stored is not None and stored.state in (TriggerState.PLANNED, TriggerState.SENDING):
            stored.state = move(TriggerState(stored.state), TriggerState.STARTED)
            stored.started_at = stored.started_at or utcnow()
            stored.url = stored.url or started.url
            stored.run_id = stored.run_id or started.run_id
            stored.reason = None
        await followups.report(session, parent.id)
    metrics.TRIGGERS.labels("started").inc()


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


async def _start_once(
    ctx: Context, runner: Runner, request: TriggerRequest, sent_before: bool
) -> PipelineStarted:
    """Start the pipeline, recording that it is being started first: an attempt that finds an
    earlier one never recorded its outcome asks the runner before starting again, so a crash
    duplicates at most the one call that was in flight."""
    if sent_before:
        found = await runner.find_started(request)
        if found is not None:
            log.info("trigger %s was started before", request.event_id)
            return found
    async with ctx.sessions.begin() as session:
        sending = await session.execute(
            update(Event)
            .where(
                Event.id == request.event_id,
                Event.state.in_([TriggerState.PLANNED, TriggerState.SENDING]),
            )
            .values(sending_at=utcnow(), state=TriggerState.SENDING)
            .execution_options(synchronize_session=False)
        )
    if sending.rowcount != 1:  # type: ignore[attr-defined]
        raise Superseded(request.event_id)  # finished meanwhile: superseded by a newer success
    return await runner.start_pipeline(request)


async def _retrying(ctx: Context, event_id: str, reason: str) -> None:
    """Show why a trigger that will be tried again has not started yet."""
    async with ctx.sessions.begin() as session:
        event = await session.get(Event, event_id)
        if event is not None and event.result is None:
            event.reason = f"{reason}; trying again"


def _no_runner_reason(request: TriggerRequest) -> str:
    if request.trigger.webhook is not None:
        return "this server has no webhook runner"
    return f"no forge is configured for {host_of(request.project)}"
