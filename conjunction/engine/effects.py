"""Applying a decision (`conjunction.verdicts.Decision`): the verdict stored on its event, the
confirming re-run created with its trigger job, the follow-ups queued — all in the transaction
that recorded the result, so that a crash leaves either everything or nothing."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from conjunction.engine import followups
from conjunction.engine.context import Context, new_event_id
from conjunction.models import Event, utcnow
from conjunction.names import owner_of
from conjunction.queue import JobQueue
from conjunction.results import Result
from conjunction.runs import Step, TriggerState
from conjunction.verdicts import Decision, FollowUp, Rerun


async def apply(ctx: Context, session: AsyncSession, finished: Event, decision: Decision) -> None:
    """Carry out `decision`, taken on the final result of `finished`."""
    target = finished
    if decision.target != finished.id:
        found = await session.get(Event, decision.target, with_for_update=True)
        if found is None:
            return
        target = found
    if decision.settles:
        target.change = decision.verdict
        target.hint = decision.hint  # a late result judges anew
        target.reason = decision.reason or target.reason
        target.confirming = None
    if decision.last_passed is not None:
        target.last_passed_sha, target.last_passed_build_id = decision.last_passed
    if decision.rerun is not None:
        await _start_rerun(ctx, session, target, decision.rerun)
    if FollowUp.CHAIN in decision.follow:
        await followups.chain(session, decision.chain_from or target.id)
    changes = target.id if FollowUp.CHANGES in decision.follow else None
    issues = target.id if FollowUp.ISSUES in decision.follow else None
    if finished.result is not None and Result(finished.result).broken:
        # why it failed is fetched first: the issue shows it
        await followups.excerpt(session, finished.id, changes=changes, issues=issues)
    else:
        if changes is not None:
            await followups.changes(session, changes)
        if issues is not None:
            await followups.issues(session, issues)
    if FollowUp.REPORTS in decision.follow:
        await followups.reports(session, finished)
        if target is not finished:
            await followups.reports(session, target)


async def _start_rerun(ctx: Context, session: AsyncSession, failure: Event, rerun: Rerun) -> None:
    """A confirming re-run: against `rerun.upstream_sha` when it names another upstream commit,
    as the upstream build `rerun.upstream_build_id` built it
    (`conjunction.history.upstream_build`)."""
    await start_again(
        ctx, session, failure, rerun.step, rerun.upstream_sha, rerun.upstream_build_id
    )
    failure.confirming = rerun.step


async def start_again(
    ctx: Context,
    session: AsyncSession,
    failure: Event,
    step: Step,
    upstream_sha: str | None = None,
    upstream_build_id: str | None = None,
) -> Event:
    """A new trigger event of the failure's downstream under the same upstream success, standing
    for the failure (`confirms_id`): a confirming re-run, or a `/conjunction retry`. Its trigger
    job is queued in the same transaction."""
    event = Event(
        id=new_event_id(),
        kind="trigger",
        project=failure.project,
        upstream=failure.upstream,
        parent_id=failure.parent_id,
        root_id=failure.root_id,
        depth=failure.depth,
        confirms_id=failure.id,
        step=step,
        state=TriggerState.PLANNED,
        chain=failure.chain,
        upstream_sha=upstream_sha,
        upstream_build_id=upstream_build_id,
        deadline_at=utcnow() + timedelta(seconds=ctx.settings.result_timeout),
    )
    session.add(event)
    await JobQueue.enqueue(
        session, "trigger", {"event_id": event.id}, concurrency_key=owner_of(event.project)
    )
    return event
