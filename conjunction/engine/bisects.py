"""Culprit searches (CONTRACT §10): a new regression's upstream range run against the downstream
commit by commit, in binary search, one run at a time, until the first bad commit is found.

A search is a `Bisect` row: the pair, the failure it explains, the range's commits (from the
upstream's code host, `CodeHost.commit_list`), its steps and its state. Each step is a trigger
event with `step` "bisect" and its commit in `upstream_sha`, under the failure's upstream build,
started through the downstream's own runner like any trigger; its `confirms_id` names the
failure, so it is never a row, a run of the pair's history, or a verdict. When a step's result
is recorded (`conjunction.engine.results.record_result`), `step_finished` asks the pure
`conjunction.bisect.next_move` what comes next and `_apply` carries it out in the same transaction:
the next step, or the answer — stored, told on the breakage issue (`issues.post_culprit`) and on the
failing commit's report.

A search starts by itself (`bisect: true` on the downstream's upstream entry) once what changed
since the pair last passed is known (`changes.record_changes`) and spans two commits or more, or
on request (`Engine.bisect`, `/conjunction bisect` on the breakage issue).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction import bisect as core
from conjunction import texts
from conjunction.codehost import Commit
from conjunction.config.repo_config import Upstream
from conjunction.engine import effects, followups
from conjunction.engine.context import Context
from conjunction.history import tried
from conjunction.models import Bisect, Event, Project, Subscription, utcnow
from conjunction.names import owner_of, project_key
from conjunction.queue import JobQueue
from conjunction.results import Result, Verdict
from conjunction.runs import Step
from conjunction.texts import short

log = logging.getLogger(__name__)

RUNNING, DONE = "running", "done"


def pair_key(upstream: str, downstream: str) -> str:
    return f"{project_key(upstream)} -> {project_key(downstream)}"


@dataclass(frozen=True)
class Progress:
    """A search under way, as `jobs list` and the pages show it."""

    id: int
    upstream: str
    downstream: str
    commits: int
    runs: int
    max_runs: int
    current_sha: str | None
    requested_by: str | None


def shas(bisect: Bisect) -> list[str]:
    return [commit["sha"] for commit in bisect.commits]


def decide(bisect: Bisect) -> core.Next | core.Answer:
    return core.next_move(
        shas(bisect), tried(bisect), max_runs=bisect.max_runs, confirm=bisect.confirm
    )


def answer_json(answer: core.Answer) -> dict[str, Any]:
    return {
        "ending": str(answer.ending),
        "culprit": answer.culprit,
        "suspects": list(answer.suspects),
        "good": answer.good,
        "runs": answer.runs,
        "skipped": list(answer.skipped),
        "flaky": list(answer.flaky),
    }


def commit_json(commit: Commit) -> dict[str, Any]:
    return {
        "sha": commit.sha,
        "title": commit.title,
        "author": commit.author,
        "login": commit.login,
        "url": commit.url,
    }


async def _spec(session: AsyncSession, failure: Event) -> Upstream | None:
    """The downstream's entry for this upstream, as indexed."""
    spec = await session.scalar(
        select(Subscription.spec).where(
            Subscription.downstream == project_key(failure.project),
            Subscription.upstream == project_key(failure.upstream or ""),
        )
    )
    return Upstream.model_validate(spec) if spec is not None else None


async def wanted(session: AsyncSession, failure: Event) -> None:
    """After what changed since the pair last passed is stored on a failure: queue a search of
    it when it is a new regression over two upstream commits or more and the downstream asked
    for culprit finding (`bisect: true`)."""
    upstream = (failure.changes or {}).get("upstream") or {}
    if failure.change != Verdict.NEW_REGRESSION or (upstream.get("total") or 0) < 2:
        return
    spec = await _spec(session, failure)
    if spec is None or not spec.bisect:
        return
    await JobQueue.enqueue(
        session,
        "bisect",
        {"event_id": failure.id},
        dedupe_key=f"bisect:{failure.id}",
        concurrency_key=owner_of(failure.upstream or failure.project),
    )


async def start_job(ctx: Context, payload: dict[str, Any]) -> None:
    """Job: a search started by `bisect: true`."""
    log.info("culprit search of %s: %s", payload["event_id"], await start(ctx, payload["event_id"]))


async def latest_regression(session: AsyncSession, upstream: str, downstream: str) -> Event | None:
    """The pair's newest new regression: the failure its breakage issue is about (names compare
    without case)."""
    rows = await session.scalars(
        select(Event)
        .where(
            Event.kind == "trigger",
            func.lower(Event.project) == project_key(downstream),
            func.lower(Event.upstream) == project_key(upstream),
            Event.step.in_([Step.FIRST, Step.RETRY]),
            Event.change == Verdict.NEW_REGRESSION,
        )
        .order_by(Event.created_at.desc())
        .limit(1)
    )
    return rows.first()


async def request(ctx: Context, upstream: str, downstream: str, requested_by: str | None) -> str:
    """`/conjunction bisect` on a breakage issue: search the pair's newest new regression."""
    async with ctx.sessions() as session:
        failure = await latest_regression(session, upstream, downstream)
    if failure is None:
        # names neither project: a private upstream may be behind a public downstream's issue
        return "This pair has no new regression to find the culprit of: nothing was run."
    return await start(ctx, failure.id, requested_by=requested_by or "someone")


async def start(ctx: Context, failure_id: str, *, requested_by: str | None = None) -> str:
    """Start a search of one failure's upstream range; returns what happened, in a sentence
    for a reply."""
    async with ctx.sessions() as session:
        failure = await session.get(Event, failure_id)
        if failure is None or failure.upstream is None:
            return "That failure is gone."
        spec = await _spec(session, failure)
        hidden = await _hidden(session, failure)
        earlier = await session.scalar(
            select(Bisect).where(Bisect.failure_id == failure.id).order_by(Bisect.id.desc())
        )
        running = await session.scalar(
            select(Bisect).where(Bisect.running == pair_key(failure.upstream, failure.project))
        )
    if running is not None:
        return _under_way(running, hidden)
    if earlier is not None:
        if requested_by is None:
            return "searched before"
        return f"The culprit search of this failure already ended: {summary(earlier, hidden)}"
    upstream_range = (failure.changes or {}).get("upstream") or {}
    base, head = upstream_range.get("base"), upstream_range.get("head")
    if not base or not head:
        return (
            "The upstream commit it last passed with is not known, so there is no range to search."
        )
    host = ctx.adapters.host(failure.upstream)
    commits = await host.commit_list(failure.upstream, base, head) if host else None
    if not commits or commits[-1].sha != head:
        if hidden:
            return "The upstream's code host could not list the commits to search."
        return (
            f"{failure.upstream}'s code host could not list the commits "
            f"`{short(base)}`…`{short(head)}`."
        )
    bisect = Bisect(
        upstream=failure.upstream,
        downstream=failure.project,
        running=pair_key(failure.upstream, failure.project),
        failure_id=failure.id,
        base_sha=base,
        head_sha=head,
        commits=[commit_json(commit) for commit in commits],
        steps=[],
        max_runs=spec.bisect_max_runs if spec else core.DEFAULT_MAX_RUNS,
        confirm=bool(spec and spec.confirm),
        requested_by=requested_by,
        state=RUNNING,
    )
    try:
        async with ctx.sessions.begin() as session:
            session.add(bisect)
            await session.flush()
            stored = await session.get(Event, failure.id)
            assert stored is not None
            await _apply(ctx, session, bisect, stored, decide(bisect))
    except IntegrityError:  # another search of the pair began meanwhile
        return "A culprit search of this pair is already under way."
    if bisect.state == DONE:
        return f"Only one upstream commit changed, so no run is needed: {summary(bisect, hidden)}"
    bound = min(bisect.max_runs, _most_runs(len(commits)))
    span = "" if hidden else f" `{short(base)}`…`{short(head)}`"
    return (
        f"Searching the {len(commits)} upstream commits{span} for the one that broke "
        f"{texts.md(failure.project)}: about {bound} run{'s' if bound != 1 else ''}, one at a "
        "time. The answer will be posted here."
    )


async def _hidden(session: AsyncSession, failure: Event) -> bool:
    """A private upstream of a public downstream: a reply, which may be in the downstream's
    issue, names none of its commits."""
    upstream = await session.get(Project, project_key(failure.upstream or ""))
    downstream = await session.get(Project, project_key(failure.project))
    return bool(upstream and upstream.private and not (downstream and downstream.private))


def _most_runs(commits: int) -> int:
    return max(commits - 1, 1).bit_length() if commits > 1 else 0


def _under_way(bisect: Bisect, hidden: bool) -> str:
    done = len(tried(bisect))
    upstream = "a private project" if hidden else bisect.upstream
    return (
        f"A culprit search of {bisect.downstream} against {upstream} is already under way: "
        f"{done} of at most {bisect.max_runs} runs done, over {len(bisect.commits)} commits."
    )


def summary(bisect: Bisect, hidden: bool = False) -> str:
    """The answer in one sentence for a reply (commits short, no links; none at all for a
    private upstream of a public downstream)."""
    answer = bisect.answer or {}
    culprit = answer.get("culprit")
    runs = answer.get("runs", 0)
    took = f"({runs} run{'s' if runs != 1 else ''})"
    if hidden:
        return f"it ended in {took.strip('()')}; the culprit is named in the upstream only."
    if culprit:
        commit = next((c for c in bisect.commits if c["sha"] == culprit), {"title": ""})
        return f"the first bad commit is `{short(culprit)}` {texts.md(commit['title'])} {took}."
    suspects = answer.get("suspects") or [None]
    first, last = short(suspects[0]), short(suspects[-1])
    return f"the culprit is one of {len(suspects)} commits `{first}`…`{last}` {took}."


async def step_finished(ctx: Context, session: AsyncSession, step: Event) -> None:
    """A search's step has its final result (inside `record_result`'s transaction): the next
    step, or the answer. A result of a step the search has moved past (a late one after a
    time-out, a re-run in the CI) changes nothing."""
    bisect = await session.scalar(
        select(Bisect).where(Bisect.current_id == step.id).with_for_update()
    )
    if bisect is None or bisect.state != RUNNING:
        return
    bisect.steps = [
        {**item, "result": step.result, "url": step.url} if item["event"] == step.id else item
        for item in bisect.steps
    ]
    failure = await session.get(Event, bisect.failure_id)
    if failure is None:
        return
    await _apply(ctx, session, bisect, failure, decide(bisect))


async def _apply(
    ctx: Context,
    session: AsyncSession,
    bisect: Bisect,
    failure: Event,
    move: core.Next | core.Answer,
) -> None:
    """Carry out the next move: start the next step, or store and tell the answer."""
    if isinstance(move, core.Next):
        event = await _step_event(ctx, session, failure, move.sha)
        bisect.current_id = event.id
        bisect.steps = [
            *bisect.steps,
            {"event": event.id, "sha": move.sha, "again": move.again, "result": None},
        ]
    else:
        bisect.answer = answer_json(move)
        bisect.state = DONE
        bisect.running = None
        bisect.current_id = None
        bisect.finished_at = utcnow()
        await JobQueue.enqueue(
            session,
            "culprit",
            {"bisect_id": bisect.id},
            dedupe_key=f"culprit:{bisect.id}",
            concurrency_key=owner_of(failure.project),
        )
    await followups.reports(session, failure)


async def _step_event(ctx: Context, session: AsyncSession, failure: Event, sha: str) -> Event:
    """A step: a trigger event of the downstream against `sha`, under the failure's upstream
    build, as the upstream build of that commit built it when there is one (its artifacts)."""
    build = await session.scalar(
        select(Event.id)
        .where(Event.kind == "build", Event.project == failure.upstream, Event.sha == sha)
        .order_by(Event.created_at.desc())
        .limit(1)
    )
    return await effects.start_again(ctx, session, failure, Step.BISECT, sha, build)


async def in_progress(sessions: async_sessionmaker[AsyncSession]) -> list[Progress]:
    """The searches under way, oldest first (`python app.py jobs list` prints them)."""
    async with sessions() as session:
        rows = await session.scalars(
            select(Bisect).where(Bisect.state == RUNNING).order_by(Bisect.id)
        )
        return [progress_of(bisect) for bisect in rows]


def progress_of(bisect: Bisect) -> Progress:
    current = next(
        (step["sha"] for step in bisect.steps if step["event"] == bisect.current_id), None
    )
    return Progress(
        bisect.id,
        bisect.upstream,
        bisect.downstream,
        len(bisect.commits),
        len(tried(bisect)),
        bisect.max_runs,
        current,
        bisect.requested_by,
    )


def step_words(result: str | None) -> str:
    if result is None:
        return "running"
    return {Result.SUCCESS: "passed", Result.FAILURE: "failed"}.get(
        Result(result), f"skipped ({result.replace('_', ' ')})"
    )


def progress_lines(searches: Sequence[Progress]) -> list[list[str]]:
    """The searches under way as rows of a table: pair, commits, runs, the commit running."""
    return [
        [
            str(search.id),
            f"{search.upstream} -> {search.downstream}",
            str(search.commits),
            f"{search.runs} of at most {search.max_runs}",
            short(search.current_sha) if search.current_sha else "-",
            search.requested_by or "bisect: true",
        ]
        for search in searches
    ]


PROGRESS_HEADER = ["id", "pair", "commits", "runs", "running", "asked by"]
