"""Confirming (`confirm: true`): a would-be new regression is re-run before anyone is blamed.

The re-runs are trigger events of their own, children of the same upstream success, started
the same way; the failure they confirm keeps no verdict until they settle it
(`bot.results.after_rerun`), and the upstream's report stays pending meanwhile.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.engine import followups
from bot.engine.context import Context, new_event_id
from bot.models import Event, Subscription, utcnow
from bot.names import owner_of, project_key
from bot.queue import JobQueue
from bot.results import Result, Step, Verdict, after_rerun
from config.repo_config import Upstream


async def wanted(session: AsyncSession, event: Event) -> bool:
    """Whether the downstream asked to confirm failures against this upstream."""
    spec = await session.scalar(
        select(Subscription.spec).where(
            Subscription.downstream == project_key(event.project),
            Subscription.upstream == project_key(event.upstream or ""),
        )
    )
    return spec is not None and Upstream.model_validate(spec).confirm


async def start(ctx: Context, session: AsyncSession, failure: Event, passed: Event | None) -> None:
    """Begin confirming a failure: re-run it against the same upstream commit. `passed` is the
    upstream build the pair last passed with, which a later re-run is sent (its commit, URL, ref
    and artifacts)."""
    failure.details = {
        **failure.details,
        "confirmation": {
            "step": Step.AGAIN,
            "last_passed_sha": passed.sha if passed else None,
            "last_passed_upstream": passed.id if passed else None,
            "reruns": [],
        },
    }
    await _rerun(ctx, session, failure, Step.AGAIN)


async def rerun_finished(ctx: Context, session: AsyncSession, rerun: Event) -> None:
    """A re-run ended: settle the failure it confirms, or start the next re-run."""
    failure = await session.get(Event, rerun.confirms_id or "", with_for_update=True)
    if failure is None or rerun.parent_id is None:
        return
    confirmation = dict(failure.details.get("confirmation") or {})
    if confirmation.get("step") != rerun.details.get("step"):
        return  # settled already (a late result after a time-out)
    parent = await session.get(Event, rerun.parent_id)
    settled = after_rerun(
        Step(rerun.details["step"]),
        Result(str(rerun.result)),
        upstream_sha=parent.sha if parent else None,
        last_passed_sha=confirmation.get("last_passed_sha"),
    )
    if settled.next_step is not None:
        await _rerun(
            ctx,
            session,
            failure,
            settled.next_step,
            upstream_sha=confirmation.get("last_passed_sha"),
            upstream_event=confirmation.get("last_passed_upstream"),
        )
        return
    failure.change = settled.verdict
    failure.reason = settled.reason or failure.reason
    failure.details = {**failure.details, "confirmation": {**confirmation, "step": None}}
    await followups.after_verdict(
        session, failure, passed=rerun if settled.verdict is Verdict.FLAKY else None
    )


async def _rerun(
    ctx: Context,
    session: AsyncSession,
    failure: Event,
    step: Step,
    *,
    upstream_sha: str | None = None,
    upstream_event: str | None = None,
) -> None:
    """A new trigger event of the same downstream under the same upstream success; with
    `upstream_sha`, against that upstream commit instead of the success's own, as the upstream
    event `upstream_event` built it (`bot.engine.dispatch.upstream_build`)."""
    rerun = Event(
        id=new_event_id(),
        kind="trigger",
        project=failure.project,
        upstream=failure.upstream,
        parent_id=failure.parent_id,
        root_id=failure.root_id,
        depth=failure.depth,
        confirms_id=failure.id,
        details={
            "chain": failure.details.get("chain", []),
            "step": step,
            "upstream_sha": upstream_sha,
            "upstream_event": upstream_event,
        },
        deadline_at=utcnow() + timedelta(seconds=ctx.settings.result_timeout),
    )
    session.add(rerun)
    confirmation = dict(failure.details["confirmation"])
    confirmation.update(step=step, reruns=[*confirmation.get("reruns", []), rerun.id])
    failure.details = {**failure.details, "confirmation": confirmation}
    await JobQueue.enqueue(
        session, "trigger", {"event_id": rerun.id}, concurrency_key=owner_of(rerun.project)
    )
