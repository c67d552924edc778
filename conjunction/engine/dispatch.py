"""Starting downstream pipelines for trigger events, through the runner each one's config
names: one at a time, or a fan-out's batch at once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from conjunction import metrics
from conjunction.engine import followups
from conjunction.engine.context import Context, config_of
from conjunction.engine.results import record_result
from conjunction.history import upstream_build
from conjunction.models import Event, Project, utcnow
from conjunction.names import host_of, project_key
from conjunction.premerge import KIND
from conjunction.queue import RetryLater
from conjunction.results import Result
from conjunction.runner import PipelineStarted, Runner, TriggerError, TriggerRequest
from conjunction.runs import Step, TriggerState

log = logging.getLogger(__name__)


async def start_trigger(ctx: Context, payload: dict[str, Any]) -> None:
    """Job: start the downstream pipelines of one trigger event (`event_id`) or of a batch of a
    fan-out's (`event_ids`, up to `planning.BATCH`), all at once; a reason a person can act on
    for each that cannot be started.

    The batch is recorded as being sent in one transaction before the calls and as started in
    one after them, so a crash between the two repeats at most the calls of one batch: an
    attempt that finds triggers still `sending` asks their runner what it started first.
    A trigger held back by pacing goes back to `planned` and the job is postponed; one whose
    forge is unavailable is tried again with the job; either way the rest are recorded.
    """
    ids = payload.get("event_ids") or [payload["event_id"]]
    triggers = await _load(ctx, ids)
    outcomes: dict[str, PipelineStarted | BaseException] = {
        t.event.id: TriggerError(_no_runner_reason(t.request)) for t in triggers if not t.runner
    }
    runners = [(t, t.runner) for t in triggers if t.runner is not None]
    asked = [(t, runner) for t, runner in runners if t.event.state == TriggerState.SENDING]
    found = await asyncio.gather(*(runner.find_started(t.request) for t, runner in asked))
    for (trigger, _), started in zip(asked, found, strict=True):
        if started is not None:
            log.info("trigger %s was started before", trigger.event.id)
            outcomes[trigger.event.id] = started
    sending = await _sending(ctx, [t for t, _ in runners if t.event.id not in outcomes])
    calls = [(t, runner) for t, runner in runners if t.event.id in sending]
    answers = await asyncio.gather(
        *(runner.start_pipeline(t.request) for t, runner in calls), return_exceptions=True
    )
    for (trigger, _), answer in zip(calls, answers, strict=True):
        if isinstance(answer, BaseException) and not isinstance(answer, Exception):
            raise answer  # cancelled: the job goes back to the queue, these stay `sending`
        outcomes[trigger.event.id] = answer
    await _record(ctx, [t for t in triggers if t.event.id in outcomes], outcomes)
    _raise_for_the_rest(outcomes.values())


@dataclass(frozen=True)
class _Trigger:
    event: Event
    request: TriggerRequest
    runner: Runner | None


async def _load(ctx: Context, ids: list[str]) -> list[_Trigger]:
    """The triggers still to start among these, with what each is sent, in a few queries."""
    async with ctx.sessions() as session:
        events = {
            event.id: event
            for event in await session.scalars(select(Event).where(Event.id.in_(ids)))
            if event.parent_id is not None
            # not started (an earlier attempt recorded it, then died), finished or skipped
            and event.state in (TriggerState.PLANNED, TriggerState.SENDING)
        }
        parent_ids = {event.parent_id for event in events.values()}
        parents = {
            parent.id: parent
            for parent in await session.scalars(select(Event).where(Event.id.in_(parent_ids)))
        }
        keys = {project_key(e.project) for e in events.values()}
        keys |= {project_key(e.upstream or "") for e in events.values()}
        projects = {
            project.key: project
            for project in await session.scalars(select(Project).where(Project.key.in_(keys)))
        }
        triggers = []
        for event_id in dict.fromkeys(ids):
            event = events.get(event_id)
            parent = parents.get(event.parent_id or "") if event is not None else None
            downstream = projects.get(project_key(event.project)) if event is not None else None
            if event is None or parent is None or downstream is None:
                continue
            upstream = projects.get(project_key(event.upstream or ""))
            build = await upstream_build(session, event, parent)
            request = _request(ctx, event, parent, downstream, upstream, build)
            runner = ctx.adapters.runner(request.project, request.trigger)
            triggers.append(_Trigger(event, request, runner))
    return triggers


async def request_of(ctx: Context, session: AsyncSession, event: Event) -> TriggerRequest | None:
    """What one trigger event is sent (CONTRACT §5), as its runner is asked to start it; None
    when its source or its project is gone."""
    parent = await session.get(Event, event.parent_id) if event.parent_id else None
    downstream = await session.get(Project, project_key(event.project))
    if parent is None or downstream is None:
        return None
    upstream = await session.get(Project, project_key(event.upstream or ""))
    build = await upstream_build(session, event, parent)
    return _request(ctx, event, parent, downstream, upstream, build)


def _request(
    ctx: Context,
    event: Event,
    parent: Event,
    downstream: Project,
    upstream: Project | None,
    build: Event | None,
) -> TriggerRequest:
    change = event.change_url if event.change_number is not None else None
    step = Step(event.step).sent if event.step else None
    return TriggerRequest(
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


async def _sending(ctx: Context, triggers: list[_Trigger]) -> set[str]:
    """Record that these are being started, in one transaction, and which of them their runs
    will claim (a webhook's `claim: true`: recorded before the call, so that a run quicker than
    its answer finds its trigger); those that finished meanwhile (superseded by a newer
    success) are left out."""
    if not triggers:
        return set()
    claimed = [t.event.id for t in triggers if _claimed(t.request)]
    async with ctx.sessions.begin() as session:
        rows = await session.scalars(
            update(Event)
            .where(
                Event.id.in_([t.event.id for t in triggers]),
                Event.state.in_([TriggerState.PLANNED, TriggerState.SENDING]),
            )
            .values(sending_at=utcnow(), state=TriggerState.SENDING, claim=Event.id.in_(claimed))
            .returning(Event.id)
            .execution_options(synchronize_session=False)
        )
        return set(rows)


async def _record(
    ctx: Context, triggers: list[_Trigger], outcomes: dict[str, PipelineStarted | BaseException]
) -> None:
    """What came of the calls, in one transaction: started, held back by pacing (back to
    `planned`: the next attempt need not ask the runner first), or to be tried again; then a
    trigger that cannot be started is recorded as an error, which its report shows."""
    now = utcnow()
    # a run that claims its trigger is known by its claim, not by what the start answered
    claimed = {t.event.id for t in triggers if _claimed(t.request)}
    started = [
        {
            "b_id": event_id,
            "b_url": answer.url,
            "b_run_id": None if event_id in claimed else answer.run_id,
        }
        for event_id, answer in outcomes.items()
        if isinstance(answer, PipelineStarted)
    ]
    paced = [i for i, answer in outcomes.items() if isinstance(answer, RetryLater)]
    retrying = {
        i: answer.reason
        for i, answer in outcomes.items()
        if isinstance(answer, TriggerError) and not answer.permanent
    }
    async with ctx.sessions.begin() as session:
        if started:
            table = cast(Table, Event.__table__)
            await session.execute(
                update(table)
                .where(
                    table.c.id == bindparam("b_id"),
                    or_(
                        table.c.state == TriggerState.PLANNED,
                        table.c.state == TriggerState.SENDING,
                    ),
                )
                .values(
                    # planned or sending -> started, as conjunction.runs.TRANSITIONS allows
                    state=TriggerState.STARTED,
                    started_at=func.coalesce(table.c.started_at, now),
                    url=func.coalesce(table.c.url, bindparam("b_url")),
                    run_id=func.coalesce(table.c.run_id, bindparam("b_run_id")),
                    reason=None,
                ),
                started,
            )
        if paced:
            await session.execute(
                update(Event)
                .where(Event.id.in_(paced), Event.state == TriggerState.SENDING)
                .values(sending_at=None, state=TriggerState.PLANNED)
                .execution_options(synchronize_session=False)
            )
        for event_id, reason in retrying.items():
            await session.execute(
                update(Event)
                .where(Event.id == event_id, Event.result.is_(None))
                .values(reason=f"{reason}; trying again")
                .execution_options(synchronize_session=False)
            )
        # the reports of the sources whose rows changed, once each
        held_back = {
            (t.event.parent_id, t.event.root_id): t.event for t in triggers if t.event.id in paced
        }
        for event in held_back.values():
            await followups.progress_reports(session, event)
        for parent_id in dict.fromkeys(
            t.event.parent_id for t in triggers if isinstance(outcomes[t.event.id], PipelineStarted)
        ):
            await followups.report(session, parent_id or "")
    metrics.TRIGGERS.labels("started").inc(len(started))
    for event_id, answer in outcomes.items():
        if isinstance(answer, TriggerError) and answer.permanent:
            metrics.TRIGGERS.labels("error").inc()
            await record_result(ctx, event_id, Result.ERROR, reason=answer.reason)


def _raise_for_the_rest(outcomes: Iterable[PipelineStarted | BaseException]) -> None:
    """Run the job again for the triggers not started yet: with backoff after an unexpected
    error, postponed until GitHub allows when one was paced, else with backoff while a forge
    is unavailable."""
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    for error in errors:
        if not isinstance(error, (TriggerError, RetryLater)):
            raise error
    paced = [error for error in errors if isinstance(error, RetryLater)]
    if paced:
        raise min(paced, key=lambda error: error.delay)  # the others are held back again
    for error in errors:
        if isinstance(error, TriggerError) and not error.permanent:
            raise error


def _claimed(request: TriggerRequest) -> bool:
    """Whether the run this request starts claims its trigger (`trigger.webhook.claim`)."""
    return request.trigger.webhook is not None and request.trigger.webhook.claim


def _no_runner_reason(request: TriggerRequest) -> str:
    if request.trigger.webhook is not None:
        return "this server has no webhook runner"
    return f"no forge is configured for {host_of(request.project)}"
