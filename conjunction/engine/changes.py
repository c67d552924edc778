"""What changed since a failing downstream last passed: the upstream's commits and the
downstream's own, from the code hosts, stored on the event for its issue, report and page —
and the range most likely to hold the culprit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from conjunction.codehost import CommitRange
from conjunction.engine import bisects, followups
from conjunction.engine.context import Context
from conjunction.history import last_passed
from conjunction.models import Event
from conjunction.results import Verdict
from conjunction.runs import Step
from conjunction.texts import short


@dataclass(frozen=True)
class Span:
    """One project's commits from when the pair last passed (`base`) to now (`head`); either
    is None when unknown, `total` when the code host counted them."""

    project: str
    base: str | None
    head: str | None
    total: int | None = None

    @property
    def known(self) -> bool:
        return self.base is not None and self.head is not None

    @property
    def changed(self) -> bool:
        return self.known and self.base != self.head

    def words(self, own: bool = False) -> str:
        """`the 3 upstream commits a…b`, or (own) `github.com/acme/app's own 3 commits a…b`."""
        count = f"{self.total} " if self.total is not None else ""
        commits = "commit" if self.total == 1 else "commits"
        whose = f"{self.project}'s own {count}" if own else f"the {count}upstream "
        return f"{whose}{commits} `{short(self.base)}`…`{short(self.head)}`"


def culprit(
    upstream: Span, downstream: Span, verdict: Verdict | None, *, confirmed: bool
) -> str | None:
    """The sentence naming the likely culprit range, or None when nothing is known."""
    name = downstream.project
    if verdict is Verdict.ALREADY_BROKEN:
        where = f": the culprit is among {downstream.words(own=True)}" if downstream.changed else ""
        return (
            f"{name} fails against the upstream commit it last passed with too, so the upstream "
            f"is not to blame{where}."
        )
    if confirmed and upstream.changed:
        return (
            f"Confirmed by re-running: {name} passes against upstream `{short(upstream.base)}` "
            f"and fails against `{short(upstream.head)}`, so the culprit is among "
            f"{upstream.words()}."
        )
    if upstream.known and not upstream.changed and downstream.changed:
        return (
            f"The upstream did not change since {name} last passed: the culprit is among "
            f"{downstream.words(own=True)}."
        )
    if not upstream.changed:
        return None
    if downstream.known and not downstream.changed:
        return (
            f"{name} did not change since it last passed: the culprit is most likely among "
            f"{upstream.words()}."
        )
    if downstream.changed:
        return (
            f"Most likely culprit: {upstream.words()}, or "
            f"{downstream.words(own=True)} (both changed since it last passed)."
        )
    return f"Most likely culprit: {upstream.words()}."


def range_json(project: str, commits: CommitRange | None, span: Span) -> dict[str, Any] | None:
    if not span.changed:
        return None
    listed = commits.commits if commits else ()
    return {
        "project": project,
        "base": span.base,
        "head": span.head,
        "total": commits.total if commits else None,
        "more": commits.more if commits else None,
        "url": commits.url if commits else None,
        "commits": [
            {"sha": c.sha, "title": c.title, "author": c.author, "url": c.url} for c in listed
        ],
    }


async def record_changes(ctx: Context, payload: dict[str, Any]) -> None:
    """Job: store what changed since a failing downstream last passed, then set off its issue
    (which lists it) and its reports."""
    async with ctx.sessions() as session:
        event = await session.get(Event, payload["event_id"])
        if event is None or event.parent_id is None or event.upstream is None:
            return
        parent = await session.get(Event, event.parent_id)
        passed = await last_passed(session, event)
        passed_on = (
            await session.get(Event, passed.parent_id) if passed and passed.parent_id else None
        )
        rerun = await session.scalar(
            select(Event.id)
            .where(Event.confirms_id == event.id, Event.step.in_([Step.AGAIN, Step.LAST_PASSED]))
            .limit(1)
        )
    upstream = Span(
        event.upstream, passed_on.sha if passed_on else None, parent.sha if parent else None
    )
    downstream = Span(event.project, passed.sha if passed else None, event.sha)
    upstream_commits = await _commits(ctx, upstream)
    downstream_commits = await _commits(ctx, downstream)
    upstream = Span(upstream.project, upstream.base, upstream.head, _total(upstream_commits))
    downstream = Span(
        downstream.project, downstream.base, downstream.head, _total(downstream_commits)
    )
    verdict = Verdict(event.change) if event.change else None
    confirmed = rerun is not None
    changes = {
        "upstream": range_json(upstream.project, upstream_commits, upstream),
        "downstream": range_json(downstream.project, downstream_commits, downstream),
        "culprit": culprit(upstream, downstream, verdict, confirmed=confirmed),
    }
    async with ctx.sessions.begin() as session:
        stored = await session.get(Event, event.id)
        if stored is None:
            return
        stored.changes = changes
        await followups.issues(session, stored.id)
        await followups.reports(session, stored)
        await bisects.wanted(session, stored)


async def _commits(ctx: Context, span: Span) -> CommitRange | None:
    host = ctx.adapters.host(span.project)
    if host is None or not span.changed:
        return None
    return await host.commits_between(span.project, str(span.base), str(span.head))


def _total(commits: CommitRange | None) -> int | None:
    return commits.total if commits else None
