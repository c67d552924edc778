"""Finished pipelines: which trigger event a run answers, and recording a downstream's result."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot import metrics
from bot.engine import confirm, followups
from bot.engine.context import Context, UnknownEvent
from bot.engine.fanout import UpstreamSuccess, fallout, upstream_success
from bot.models import Event, utcnow
from bot.results import FLAKY_WINDOW, RUNNING, Result, Run, Verdict, judge
from bot.runner import Artifact

EVENT_ID = re.compile(r"\b[0-9a-f]{32}\b")

StartedBy = Literal["dispatch", "push", "pull_request", "unknown"]


class ResultConflict(Exception):
    """A different final result was already recorded for this event."""


@dataclass(frozen=True)
class FinishedPipeline:
    """A pipeline that finished on a code host or CI system, in neutral terms."""

    project: str
    sha: str | None
    ref: str | None
    result: Result
    ref_type: str = "branch"
    pipeline: str | None = None
    run_id: str | None = None
    title: str = ""  # text that may name the trigger event (run title, description, URL)
    url: str | None = None
    started_by: StartedBy = "unknown"  # "unknown": a report that cannot say (statuses, suites)
    artifacts: Sequence[Artifact] = ()


def match_trigger(pending: Sequence[Event], run: FinishedPipeline) -> Event | None:
    """The pending trigger event a run answers: by run id, by event id in its title, else —
    for a run started by a dispatch, or one that cannot say how it started — the oldest trigger
    not yet matched to a run."""
    if run.run_id is not None:
        for event in pending:
            if event.run_id == run.run_id:
                return event
    named = set(EVENT_ID.findall(run.title))
    for event in pending:
        if event.id in named:
            return event
    if run.started_by in ("dispatch", "unknown"):
        return next((event for event in pending if event.run_id is None), None)
    return None


async def pipeline_finished(ctx: Context, run: FinishedPipeline) -> Event | None:
    """The one entry for finished pipelines: a trigger's result, or an upstream success, or
    (through the chain) both."""
    trigger = match_trigger(await pending_triggers(ctx, run.project), run)
    if trigger is not None:
        return await record_result(
            ctx,
            trigger.id,
            run.result,
            url=run.url,
            sha=run.sha,
            ref=run.ref,
            ref_type=run.ref_type,
            pipeline=run.pipeline,
            details={"artifacts": [dict(a) for a in run.artifacts]} if run.artifacts else None,
        )
    if run.result is not Result.SUCCESS or run.started_by == "pull_request":
        return None  # a pull request's run is not a success of the branch it targets
    success = UpstreamSuccess(
        run.project, run.sha, run.ref, run.ref_type, run.pipeline, run.url, artifacts=run.artifacts
    )
    return await upstream_success(ctx, success)


async def record_result(
    ctx: Context,
    event_id: str,
    result: Result | str,
    *,
    url: str | None = None,
    sha: str | None = None,
    ref: str | None = None,
    ref_type: str = "branch",
    pipeline: str | None = None,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> Event:
    """Record a downstream's result (or that it is running) for one trigger event; its
    follow-ups (report, issues, the next link of a chain) are queued in the same transaction."""
    async with ctx.sessions.begin() as session:
        event = await session.get(Event, event_id, with_for_update=True)
        if event is None or event.kind != "trigger":
            raise UnknownEvent(event_id)
        if event.result is not None:
            if event.result == result or result == RUNNING:
                return event
            if event.result != Result.TIMED_OUT:  # a late real result replaces a time-out
                raise ResultConflict(
                    f"event {event_id} already finished with {event.result!r}, not {result!r}"
                )
        event.url = url or event.url
        event.sha = sha or event.sha
        event.ref = ref or event.ref
        event.ref_type = ref_type
        event.pipeline = pipeline or event.pipeline
        event.details = {**event.details, **(details or {})}
        event.started_at = event.started_at or utcnow()
        if result == RUNNING:
            await followups.reports(session, event)
            return event
        final = Result(result)
        event.result = final
        event.reason = reason
        event.finished_at = utcnow()
        metrics.RESULTS.labels(final).inc()
        if event.confirms_id is not None:
            await followups.reports(session, event)
            await confirm.rerun_finished(ctx, session, event)
        else:
            await _judge(ctx, session, event)
        return event


async def _judge(ctx: Context, session: AsyncSession, event: Event) -> None:
    """Give a finished run its verdict and set off what the verdict calls for — or, for a
    would-be new regression that the downstream wants confirmed, the first re-run."""
    parent = await session.get(Event, event.parent_id) if event.parent_id else None
    history = await pair_history(session, event)
    current = Run(
        Result(str(event.result)),
        upstream_sha=parent.sha if parent else None,
        downstream_sha=event.sha,
    )
    judgement = judge(history, current, confirm=await confirm.wanted(session, event))
    event.change = judgement.verdict
    event.details = {**event.details, "hint": judgement.hint}  # a late result judges anew
    if judgement.confirm:
        # the upstream build the pair last passed with: a re-run there is sent what it built
        passed = await last_passed(session, event)
        build = await session.get(Event, passed.parent_id) if passed and passed.parent_id else None
        await confirm.start(ctx, session, event, build)
        await followups.reports(session, event)
    else:
        await followups.after_verdict(session, event)


async def continue_chain(ctx: Context, payload: dict[str, Any]) -> None:
    """Job: a downstream that passed is an upstream success for its own downstreams; one that
    did not pass leaves them skipped, as its fallout."""
    async with ctx.sessions() as session:
        event = await session.get(Event, payload["event_id"])
    if event is None or event.result is None:
        return
    if event.result != Result.SUCCESS:
        await fallout(ctx, event)
        return
    success = UpstreamSuccess(event.project, event.sha, event.ref, event.ref_type, event.pipeline)
    await upstream_success(ctx, success, parent_id=event.id)


def earlier_in_pair(event: Event) -> tuple[ColumnElement[bool], ...]:
    """Conditions for the same pair's trigger events before this one."""
    return (
        Event.kind == "trigger",
        Event.project == event.project,
        Event.upstream == event.upstream,
        Event.confirms_id.is_(None),  # re-runs settle their failure's verdict, nothing more
        Event.id != event.id,
        Event.created_at <= event.created_at,
    )


async def pair_history(session: AsyncSession, event: Event) -> list[Run]:
    """The pair's runs before this event that passed or failed, oldest first, as many as its
    verdict and the `flaky?` hint look at (time-outs, cancellations and skips say nothing)."""
    upstream = aliased(Event)
    decisive = [result for result in Result if result.decisive]
    rows = await session.execute(
        select(Event, upstream.sha)
        .outerjoin(upstream, upstream.id == Event.parent_id)
        .where(*earlier_in_pair(event), Event.result.in_(decisive))
        .order_by(Event.created_at.desc())
        .limit(2 * FLAKY_WINDOW)
    )
    return [
        Run(
            Result(str(earlier.result)),  # finished: never None
            Verdict(earlier.change) if earlier.change else None,
            upstream_sha=upstream_sha,
            downstream_sha=earlier.sha,
        )
        for earlier, upstream_sha in reversed(rows.all())
    ]


async def last_passed(session: AsyncSession, event: Event) -> Event | None:
    """The pair's last trigger event before this one that passed (a flake's re-run passed)."""
    passed: Event | None = await session.scalar(
        select(Event)
        .where(
            *earlier_in_pair(event),
            or_(Event.result == Result.SUCCESS, Event.change == Verdict.FLAKY),
        )
        .order_by(Event.created_at.desc())
        .limit(1)
    )
    return passed


async def pending_triggers(ctx: Context, project: str) -> list[Event]:
    """Trigger events of `project` still waiting for a result, oldest first."""
    async with ctx.sessions() as session:
        rows = await session.scalars(
            select(Event)
            .where(Event.kind == "trigger", Event.project == project, Event.result.is_(None))
            .order_by(Event.created_at)
        )
        return list(rows)
