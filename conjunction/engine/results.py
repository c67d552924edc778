"""Finished pipelines: a trigger's result recorded (`outcome`: taken, replacing, kept or in
conflict), its meaning decided (`conjunction.verdicts.decide`) and applied (`effects`); or an
upstream success. Which trigger a run answers is `conjunction.engine.matching`'s."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from conjunction import metrics
from conjunction.config.repo_config import Upstream
from conjunction.engine import bisects, effects, followups, premerge
from conjunction.engine.context import Context, UnknownEvent
from conjunction.engine.fanout import UpstreamSuccess, fallout, lone_success, upstream_success
from conjunction.engine.matching import FinishedPipeline, candidates, match_trigger
from conjunction.engine_api import ResultConflict
from conjunction.history import earlier_in_pair, last_passed
from conjunction.models import Event, Subscription, TriggerResult, utcnow
from conjunction.names import project_key
from conjunction.results import FLAKY_WINDOW, RUNNING, Result, Run, Verdict
from conjunction.runs import Origin, Step, TriggerState, Via, move
from conjunction.verdicts import Confirming, Finished, decide


class Outcome(Enum):
    """What a finished run of a trigger event does to that event's recorded result."""

    RECORD = "record"  # its first result (or one replacing a time-out)
    REPLACE = "replace"  # a re-run in the CI: the newer attempt replaces the result
    KEEP = "keep"  # the same result again, or an older attempt's: history only
    CONFLICT = "conflict"  # another result for the same attempt


def outcome(
    recorded: str | None, recorded_attempt: int, result: Result, attempt: int | None
) -> Outcome:
    """How a final result reported for a trigger event meets the result it has. `attempt` None:
    the CI does not number its attempts, and a different result of the same run is a re-run."""
    if recorded == result:
        return Outcome.KEEP
    if recorded is None or recorded == Result.TIMED_OUT:
        return Outcome.RECORD
    if result is Result.TIMED_OUT:
        return Outcome.KEEP  # a time-out never replaces a result
    if attempt is None or attempt > recorded_attempt:
        return Outcome.REPLACE
    return Outcome.KEEP if attempt < recorded_attempt else Outcome.CONFLICT


async def pipeline_finished(ctx: Context, run: FinishedPipeline) -> Event | None:
    """The one entry for finished pipelines: a trigger's result, or an upstream success, or
    (through the chain) both. A run that answers no trigger and starts nothing costs one
    transaction (`fanout.lone_success`)."""
    success = _as_upstream_success(run)
    async with ctx.sessions.begin() as session:
        trigger = match_trigger(await candidates(session, run), run)
        if trigger is None and success is not None:
            build = await lone_success(session, success)
            if build is not None:
                return build
    if trigger is not None:
        with contextlib.suppress(ResultConflict):  # a forge's report of the same attempt
            return await record_result(
                ctx,
                trigger.id,
                run.result,
                url=run.url,
                sha=run.sha,
                ref=run.ref,
                ref_type=run.ref_type,
                pipeline=run.pipeline,
                attempt=run.attempt,
                artifacts=[dict(a) for a in run.artifacts],
                run_id=run.run_id,
            )
        return None
    return None if success is None else await upstream_success(ctx, success)


def _as_upstream_success(run: FinishedPipeline) -> UpstreamSuccess | None:
    """The upstream success a run is when it answers no trigger: a success, not of a pull
    request (which is no success of the branch it targets)."""
    if run.result is not Result.SUCCESS or run.started_by == "pull_request":
        return None
    return UpstreamSuccess(
        run.project,
        run.sha,
        run.ref,
        run.ref_type,
        run.pipeline,
        run.url,
        artifacts=run.artifacts,
        run=(run.run_id, run.attempt) if run.run_id is not None else None,
    )


async def record_result(
    ctx: Context,
    event_id: str,
    result: Result | str,
    *,
    url: str | None = None,
    sha: str | None = None,
    ref: str | None = None,
    ref_type: str = Origin.BRANCH,
    pipeline: str | None = None,
    reason: str | None = None,
    attempt: int | None = None,
    artifacts: Sequence[Mapping[str, Any]] = (),
    ci_metadata: Mapping[str, Any] | None = None,
    run_id: str | None = None,
) -> Event:
    """Record a downstream's result (or that it is running) for one trigger event; its
    follow-ups (report, issues, the next link of a chain) are queued in the same transaction.
    A newer attempt of the same run replaces the result and is judged again (CONTRACT §7)."""
    async with ctx.sessions.begin() as session:
        event = await session.get(Event, event_id, with_for_update=True)
        if event is None or event.kind != "trigger":
            raise UnknownEvent(event_id)
        if result == RUNNING:
            if event.result is None:
                reported = Reported(
                    url, sha, ref, ref_type, pipeline, artifacts, ci_metadata, run_id
                )
                _take_run(event, reported)
                if event.state in (TriggerState.PLANNED, TriggerState.SENDING):
                    event.state = TriggerState.STARTED
                await followups.reports(session, event)
            return event
        final = Result(result)
        decided = outcome(event.result, event.attempt, final, attempt)
        if decided is Outcome.CONFLICT:
            raise ResultConflict(
                f"event {event_id} already finished with {event.result!r} in attempt "
                f"{event.attempt}, not {final.value!r}"
            )
        reported = Reported(url, sha, ref, ref_type, pipeline, artifacts, ci_metadata, run_id)
        replaced = _take_result(session, event, decided, final, attempt, reason, reported)
        if decided is Outcome.KEEP:
            return event
        if event.claim and event.result is not None:  # its run came, or will not: the next
            await followups.claimed_finished(session, event)
        if premerge.is_premerge(event):  # a change's run: its own row, not the pair's history
            if final.broken:  # why, fetched first: the change's report shows it
                await followups.excerpt(session, event.id)
            await premerge.finished(ctx, session, event)
            return event
        if event.step == Step.BISECT:  # a culprit search's step: its search moves on
            await bisects.step_finished(ctx, session, event)
            return event
        if event.step == Step.RETRY and event.confirms_id is not None:
            await _retried(ctx, session, event, reported)
            return event
        finished = await _snapshot(session, event, replaced)
        await effects.apply(ctx, session, event, decide(finished))
        return event


@dataclass(frozen=True)
class Reported:
    """What a report says of the run beside its result."""

    url: str | None = None
    sha: str | None = None
    ref: str | None = None
    ref_type: str = Origin.BRANCH
    pipeline: str | None = None
    artifacts: Sequence[Mapping[str, Any]] = ()
    ci_metadata: Mapping[str, Any] | None = None
    run_id: str | None = None  # the CI's, when the dispatch did not say it


def _take_result(
    session: AsyncSession,
    event: Event,
    decided: Outcome,
    final: Result,
    attempt: int | None,
    reason: str | None,
    reported: Reported,
) -> Run | None:
    """Record a final result on its event as `decided` says (kept as history only, or taken);
    the result it replaces, when it replaces one."""
    session.add(
        TriggerResult(
            event_id=event.id,
            attempt=attempt or event.attempt,
            result=final,
            url=reported.url,
            taken=decided is not Outcome.KEEP,
        )
    )
    if decided is Outcome.KEEP:
        return None
    replaced = (
        Run(Result(event.result), Verdict(event.change) if event.change else None)
        if decided is Outcome.REPLACE and event.result is not None
        else None
    )
    _take_run(event, reported)
    if decided is Outcome.REPLACE:
        event.attempt = attempt if attempt is not None else event.attempt + 1
        event.notified = False  # the new verdict is told as the old one was
    elif attempt is not None:
        event.attempt = attempt
    event.state = move(TriggerState(event.state or TriggerState.STARTED), _final_state(final))
    event.result = final
    event.reason = reason
    event.excerpt = None  # a new result's excerpt is its own
    event.finished_at = utcnow()
    metrics.RESULTS.labels(final).inc()
    return replaced


async def _retried(ctx: Context, session: AsyncSession, retry: Event, reported: Reported) -> None:
    """A `/conjunction retry` ended: its result replaces the failure's it retried, as a re-run
    in the CI does (CONTRACT §7, §9), and is judged again: a pass of a new regression is a
    flake, and a pass closes the pair's issue; the same result again changes nothing."""
    failure = await session.get(Event, retry.confirms_id or "", with_for_update=True)
    if failure is None or retry.result is None:
        return
    final = Result(retry.result)
    decided = outcome(failure.result, failure.attempt, final, None)
    if decided is Outcome.KEEP:
        return
    replaced = _take_result(session, failure, decided, final, None, retry.reason, reported)
    finished = await _snapshot(session, failure, replaced)
    await effects.apply(ctx, session, failure, decide(finished))


def _final_state(result: Result) -> TriggerState:
    return TriggerState.TIMED_OUT if result is Result.TIMED_OUT else TriggerState.FINISHED


def _take_run(event: Event, reported: Reported) -> None:
    """What a report says of the run beside its result."""
    event.url = reported.url or event.url
    event.sha = reported.sha or event.sha
    event.ref = reported.ref or event.ref
    event.ref_type = reported.ref_type
    event.pipeline = reported.pipeline or event.pipeline
    event.artifacts = [dict(item) for item in reported.artifacts] or event.artifacts
    event.ci_metadata = dict(reported.ci_metadata) if reported.ci_metadata else event.ci_metadata
    event.run_id = event.run_id or reported.run_id
    event.started_at = event.started_at or utcnow()


async def _snapshot(session: AsyncSession, event: Event, replaced: Run | None) -> Finished:
    """What deciding on a finished trigger event looks at, loaded in one place."""
    parent = await session.get(Event, event.parent_id) if event.parent_id else None
    current = Run(
        Result(str(event.result)),
        upstream_sha=parent.sha if parent else None,
        downstream_sha=event.sha,
    )
    has_downstreams = await followups.has_downstreams(session, event.project)
    if event.confirms_id is not None:
        failure = await session.get(Event, event.confirms_id, with_for_update=True)
        confirms = failure and Confirming(
            failure.id,
            Result(str(failure.result)),
            Step(failure.confirming) if failure.confirming else None,
            failure.last_passed_sha,
            failure.last_passed_build_id,
        )
        return Finished(
            event.id,
            current,
            has_downstreams=has_downstreams,
            step=Step(event.step or Step.AGAIN),
            confirms=confirms or None,
        )
    confirm = replaced is None and current.result.broken and await _confirms(session, event)
    passed = await last_passed(session, event) if confirm else None
    # the upstream build the pair last passed with: a re-run there is sent what it built
    build = await session.get(Event, passed.parent_id) if passed and passed.parent_id else None
    return Finished(
        event.id,
        current,
        history=await pair_history(session, event),
        replaced=replaced,
        confirm=confirm,
        has_downstreams=has_downstreams,
        last_passed_sha=build.sha if build else None,
        last_passed_build_id=build.id if build else None,
    )


async def _confirms(session: AsyncSession, event: Event) -> bool:
    """Whether the downstream asked to confirm failures against this upstream."""
    spec = await session.scalar(
        select(Subscription.spec).where(
            Subscription.downstream == project_key(event.project),
            Subscription.upstream == project_key(event.upstream or ""),
        )
    )
    return spec is not None and Upstream.model_validate(spec).confirm


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
    success = UpstreamSuccess(
        event.project, event.sha, event.ref, event.ref_type, event.pipeline, via=Via.CHAIN
    )
    await upstream_success(ctx, success, parent_id=event.id)


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


async def pending_triggers(ctx: Context, project: str) -> list[Event]:
    """Trigger events of `project` still waiting for a result, oldest first."""
    async with ctx.sessions() as session:
        rows = await session.scalars(
            select(Event)
            .where(
                Event.kind == "trigger",
                Event.project == project,
                Event.state.in_([state for state in TriggerState if state.waiting]),
            )
            .order_by(Event.created_at)
        )
        return list(rows)
