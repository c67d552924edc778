"""Pre-merge runs (CONTRACT §8): a change (an unmerged pull or merge request) run against its
upstream's downstreams, each compared with its result on the change's base commit.

A change's head is a build event of origin `change` (`Event.ref_type`); its triggers carry the
change's number too (`Event.change_number`), which keeps them out of every pair's history
(`conjunction.history.earlier_in_pair`). Their results are not judged by
`conjunction.verdicts.decide`:
`finished` settles the row (`conjunction.premerge.row_of`: a confirming re-run of a `breaks`) and
queues the change's report, posted by `post_report` on the head commit. No issue, no
notification, no next link of a chain: one level deep.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from conjunction import markdown, texts
from conjunction.codehost import PREMERGE_REPORT_NAME, PREMERGE_STATUS_CONTEXT, CommitReport
from conjunction.engine import followups
from conjunction.engine.context import Context, config_of, new_event_id
from conjunction.engine.subscriptions import subscribers
from conjunction.excerpts import EXCERPTS_SHOWN
from conjunction.models import Event, Project, utcnow
from conjunction.names import owner_of, project_key
from conjunction.premerge import (
    PRIVATE,
    Candidate,
    Shown,
    describe,
    not_a_writer,
    rerun_wanted,
    row_of,
    select_downstreams,
    start_refusal,
    state_of,
    words,
)
from conjunction.premerge_runs import (
    heads_where,
    latest,
    private_keys,
    recorded_base,
    rows_of,
    runs_of,
    triggers_of,
)
from conjunction.queue import JobQueue
from conjunction.results import Result, Verdict
from conjunction.runs import Change, Origin, Step, TriggerState, Via

log = logging.getLogger(__name__)

MARKER = "<!-- conjunction:premerge -->"  # the change's one comment, edited in place


@dataclass(frozen=True)
class PremergeStarted:
    """What `premerge` started: the downstreams (as the change's readers may see them: a
    private one on a public upstream is "a private project"), or why nothing started."""

    downstreams: tuple[str, ...] = ()
    reason: str | None = None
    build_id: str | None = None


def change_page(ctx: Context, project: str, number: int) -> str:
    """The dashboard page of a change: its rows, baselines and steps."""
    return f"{ctx.settings.public_url}/changes/{quote(project, safe='/')}/{number}"


async def premerge(
    ctx: Context,
    change: Change,
    *,
    only: Sequence[str] = (),
    retry: bool = False,
    commanded: bool = False,
) -> PremergeStarted:
    """Run the change's head against the selected downstreams (`only`: those named; `retry`:
    the rows that did not pass), each with its baseline when the pair has no recorded result
    on the base commit. By itself (not `commanded`) only with `premerge.when: members`, for an
    author who may write to the upstream, never from a fork."""
    async with ctx.sessions() as session:
        upstream = await session.get(Project, project_key(change.project))
    if upstream is None or not upstream.active:
        return PremergeStarted(reason=f"{change.project} is not set up with Conjunction")
    config = config_of(upstream)
    refusal = start_refusal(change, config.premerge.when, commanded=commanded)
    if refusal is None and not commanded and not await _may_write(ctx, change):
        refusal = not_a_writer(change)
    if refusal is not None:
        return PremergeStarted(reason=refusal)
    async with ctx.sessions.begin() as session:
        rows = await subscribers(session, project_key(change.project))
        candidates = [Candidate(row.key, row.name, row.spec) for row in rows]
        chosen, unknown = select_downstreams(upstream.name, config, candidates, only)
        if unknown:
            return PremergeStarted(reason=_unknown(change.project, unknown))
        if not chosen:
            return PremergeStarted(reason=_none_selected(change.project))
        build = await _build_for(session, change)
        for stale in await _supersede(session, change, build):
            await followups.report(session, stale)
        runs = await triggers_of(session, build.id)
        started = []
        for candidate in chosen:
            own = [event for event in runs if project_key(event.project) == candidate.key]
            head = latest(own, Step.FIRST)
            if head is not None and head.state in _WAITING:
                continue  # under way already
            if retry and head is not None:
                verdict = row_of(await runs_of(session, build, candidate.name, own))
                if not rerun_wanted(verdict.row):
                    continue
            if retry and head is None:
                continue  # never ran: nothing to retry
            await _trigger(ctx, session, build, candidate.name, Step.FIRST)
            if not await _has_baseline(session, build, candidate.name, own):
                await _trigger(ctx, session, build, candidate.name, Step.BASELINE)
            started.append(candidate)
        if not started:
            reason = "every row passed or is still running" if retry else "all are running"
            return PremergeStarted(reason=reason, build_id=build.id)
        await followups.report(session, build.id)
        private = await private_keys(session, [c.key for c in started])
    shown = tuple(PRIVATE if c.key in private and not upstream.private else c.name for c in started)
    log.info(
        "pre-merge runs of %s !%d at %s: %d downstream(s)",
        change.project,
        change.number,
        change.head_sha,
        len(started),
        extra={"event_id": build.id},
    )
    return PremergeStarted(shown, build_id=build.id)


async def change_updated(ctx: Context, change: Change) -> PremergeStarted:
    """A change was opened, pushed to, reopened, closed or merged (a forge's hook): older
    heads lose their triggers not sent yet; a closed change starts nothing more; an open one
    is run by itself where its upstream says `when: members`."""
    async with ctx.sessions.begin() as session:
        stale = await _supersede(session, change, None)
        for event_id in stale:
            await followups.report(session, event_id)
        if change.state != "open":  # its heads are listed as closed from now on
            await session.execute(
                update(Event)
                .where(*heads_where(change.project, change.number))
                .values(reason=f"the change was {change.state}")
            )
    return await premerge(ctx, change)


async def finished(ctx: Context, session: AsyncSession, event: Event) -> None:
    """A pre-merge trigger got its final result (in `record_result`'s transaction): a
    confirming re-run ends or starts, and the change's report follows."""
    build = await session.get(Event, event.root_id)
    if build is None:
        return
    if event.confirms_id is not None:
        failure = await session.get(Event, event.confirms_id, with_for_update=True)
        if failure is not None and failure.confirming == event.step:
            failure.confirming = None
    else:
        own = [e for e in await triggers_of(session, build.id) if e.project == event.project]
        head = latest(own, Step.FIRST)
        verdict = row_of(await runs_of(session, build, event.project, own))
        if verdict.run_again and head is not None and head.result is not None:
            again = await _trigger(ctx, session, build, event.project, Step.AGAIN)
            again.confirms_id = head.id
            head.confirming = Step.AGAIN
    await followups.report(session, build.id)


async def post_report(ctx: Context, payload: dict[str, Any]) -> None:
    """Job (`premerge_report`, what `followups.report` queues for a change's head): the check
    run, the commit status and the comment of the change's rows."""
    async with ctx.sessions() as session:
        build = await session.get(Event, payload["event_id"])
        if build is None or build.sha is None or build.change_number is None:
            return
        upstream = await session.get(Project, project_key(build.project))
        if upstream is None or not upstream.active:
            return
        shown = await rows_of(session, build, upstream)
    host = ctx.adapters.host(build.project)
    if not shown or host is None:
        return
    report = commit_report(ctx, build, shown)
    options = config_of(upstream).report
    if options.commit_status or options.check_run:
        await host.publish_report(
            build.project,
            build.sha,
            report,
            status=options.commit_status,
            check=options.check_run,
        )
    if options.pull_request_comment and report.completed:
        body = texts.render(
            "premerge_comment.md",
            marker=MARKER,
            description=report.description,
            summary=report.summary,
            page=report.target_url,
        )
        await host.comment_on_change(build.project, build.sha, MARKER, body)


SUMMARY_LIMIT = 65_000  # GitHub refuses a check run summary of 65,535 characters or more


def commit_report(ctx: Context, build: Event, shown: Sequence[Shown]) -> CommitReport:
    state = state_of(shown)
    description = describe(shown)
    page = change_page(ctx, build.project, build.change_number or 0)
    return CommitReport(
        state=state,
        conclusion=None if state == "pending" else state,
        description=description,
        target_url=page,
        title=description,
        summary=summary_of(shown, base=build.base_sha, head=build.sha, page=page),
        check_name=PREMERGE_REPORT_NAME,
        status_context=PREMERGE_STATUS_CONTEXT,
    )


def summary_of(shown: Sequence[Shown], *, base: str | None, head: str | None, page: str) -> str:
    """The Markdown table of a change's rows; private ones on a public upstream only counted."""
    rows = [_values(row) for row in shown if row.name]
    text = texts.render(
        "premerge.md",
        rows=rows,
        failures=[row for row in rows if row["excerpt"] is not None],
        excerpts_shown=EXCERPTS_SHOWN,
        private=_private_tally(shown),
        base=base,
        head=head,
        page=page,
    )
    return markdown.fit(text + "\n", SUMMARY_LIMIT, page)


# -- loading and acting --

_WAITING = (TriggerState.PLANNED, TriggerState.SENDING, TriggerState.STARTED)


async def _may_write(ctx: Context, change: Change) -> bool:
    """Whether the change's author may write to the upstream, as its code host says."""
    host = ctx.adapters.host(change.project)
    if host is None or not change.author:
        return False
    return await host.can_write(change.project, change.author)


async def _build_for(session: AsyncSession, change: Change) -> Event:
    """The build event of the change's head: the one recorded, else a new one."""
    found = await session.scalar(
        select(Event)
        .where(
            Event.kind == "build",
            Event.project == change.project,
            Event.ref_type == Origin.CHANGE,
            Event.change_number == change.number,
            Event.sha == change.head_sha,
        )
        .order_by(Event.created_at.desc())
        .limit(1)
    )
    if found is not None:
        found.base_sha = change.base_sha or found.base_sha
        return found
    event_id = new_event_id()
    build = Event(
        id=event_id,
        kind="build",
        project=change.project,
        root_id=event_id,
        sha=change.head_sha,
        ref=change.ref,
        ref_type=Origin.CHANGE,
        pipeline=None,
        url=change.url,
        result=Result.SUCCESS,
        depth=0,
        via=Via.FORGE,
        chain=[project_key(change.project)],
        change_number=change.number,
        change_url=change.url,
        base_sha=change.base_sha or None,
        finished_at=utcnow(),
    )
    session.add(build)
    await session.flush()
    return build


async def _supersede(session: AsyncSession, change: Change, build: Event | None) -> set[str]:
    """Skip the triggers not sent yet of the change's other heads ("superseded by <sha>"), or
    of all its heads once it is closed or merged; returns the builds whose reports change."""
    others = select(Event.id).where(
        Event.kind == "build",
        Event.project == change.project,
        Event.ref_type == Origin.CHANGE,
        Event.change_number == change.number,
    )
    if change.state == "open":
        others = others.where(Event.sha != change.head_sha)
        state, reason = TriggerState.SUPERSEDED, f"superseded by {texts.short(change.head_sha)}"
    else:
        state, reason = TriggerState.SKIPPED, f"the change was {change.state}"
    if build is not None:
        others = others.where(Event.id != build.id)
    rows = await session.execute(
        update(Event)
        .where(
            Event.kind == "trigger",
            Event.root_id.in_(others),
            Event.state == TriggerState.PLANNED,
        )
        .values(
            state=state,
            result=Result.SKIPPED,
            change=Verdict.SKIPPED,
            reason=reason,
            finished_at=utcnow(),
        )
        .returning(Event.root_id)
        .execution_options(synchronize_session=False)
    )
    return {root_id for (root_id,) in rows}


async def _trigger(
    ctx: Context, session: AsyncSession, build: Event, downstream: str, step: Step
) -> Event:
    """A pre-merge trigger of one downstream, and its trigger job: with the change's head, or
    (a baseline) against its base commit."""
    event = Event(
        id=new_event_id(),
        kind="trigger",
        project=downstream,
        upstream=build.project,
        parent_id=build.id,
        root_id=build.id,
        depth=1,
        step=step,
        state=TriggerState.PLANNED,
        chain=[*build.chain, project_key(downstream)],
        change_number=build.change_number,
        change_url=build.change_url,
        base_sha=build.base_sha,
        upstream_sha=build.base_sha if step is Step.BASELINE else None,
        deadline_at=utcnow() + timedelta(seconds=ctx.settings.result_timeout),
    )
    session.add(event)
    await session.flush()
    await JobQueue.enqueue(
        session, "trigger", {"event_id": event.id}, concurrency_key=owner_of(downstream)
    )
    return event


async def _has_baseline(
    session: AsyncSession, build: Event, downstream: str, own: Sequence[Event]
) -> bool:
    """Whether the row has its baseline, or needs none run: no base commit is known, the pair
    has a recorded result on it, or a baseline run of this head is under way or decided."""
    if not build.base_sha:
        return True
    baseline = latest(own, Step.BASELINE)
    if baseline is not None and (
        baseline.state in _WAITING or (baseline.result and Result(baseline.result).decisive)
    ):
        return True
    return await recorded_base(session, build.project, downstream, build.base_sha) is not None


def _private_tally(rows: Sequence[Shown]) -> dict[str, Any] | None:
    hidden = [row for row in rows if not row.name]
    if not hidden:
        return None
    counts: dict[str, int] = {}
    for row in hidden:
        counts[str(row.row)] = counts.get(str(row.row), 0) + 1
    return {
        "count": len(hidden),
        "results": ", ".join(f"{count} {text}" for text, count in counts.items()),
    }


def _values(row: Shown) -> dict[str, Any]:
    return {
        "name": row.name,
        "result_text": words(row),
        "required": row.required,
        "url": row.url,
        "base_url": row.base_url,
        "excerpt": row.excerpt,
    }


def _unknown(project: str, names: Sequence[str]) -> str:
    listed = ", ".join(names)
    return f"no downstream of {project} that runs against its changes is named {listed}"


def _none_selected(project: str) -> str:
    return (
        f"no downstream of {project} runs against its changes: premerge.downstreams (default: "
        "report.required) selects them, and each consents with `premerge: true` on its "
        "upstreams: entry (default: the same owner)"
    )


def is_premerge(event: Event) -> bool:
    """A trigger of a change's head (its result has no pair history and no verdict)."""
    return event.kind == "trigger" and event.change_number is not None
