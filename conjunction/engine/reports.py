"""The aggregate of an upstream success's downstream results, posted on the upstream commit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from conjunction import markdown, texts
from conjunction.codehost import CommitReport
from conjunction.durations import figures, remaining, time_left
from conjunction.engine.context import Context, config_of
from conjunction.excerpts import EXCERPTS_SHOWN, Excerpt
from conjunction.history import (
    descendants,
    last_passed_with,
    of_failures,
    past_durations,
    tried,
)
from conjunction.models import Bisect, Event, Project, utcnow
from conjunction.names import project_key
from conjunction.progress import Progress, progress, waiting
from conjunction.results import Result, Verdict
from conjunction.runs import Step
from conjunction.tally import Row, describe, outcome, required_in

SUMMARY_LIMIT = 65_000
PAST_DURATIONS = 10  # of a pair's runs, for the estimate of a running one's time left
LABELS = {
    Result.SUCCESS: "✅ passed",
    Result.FAILURE: "❌ failed",
    Result.ERROR: "❌ error",
    Result.TIMED_OUT: "⌛ timed out",
    Result.CANCELLED: "⏹ cancelled",
    Result.SKIPPED: "⏭ skipped",
    None: "⏳ running",
}
MARKS = {
    Verdict.PASSED: "✅",
    Verdict.FIXED: "✅",
    Verdict.NEW_REGRESSION: "❌",
    Verdict.STILL_FAILING: "❌",
    Verdict.FLAKY: "⚠️",
    Verdict.ALREADY_BROKEN: "⛔",
    Verdict.RUNNING: "⏳",
    Verdict.TIMED_OUT: "⌛",
    Verdict.SKIPPED: "⏭",
}
WAITING = "⏳ waiting to start"


def label(result: str | None) -> str:
    return LABELS.get(Result(result) if result else None, str(result))


def words(result: str | None, verdict: str | None, hint: str | None = None) -> str:
    """A result in the words of CONTRACT §6: its verdict when it has one, with its hint."""
    text = f"{MARKS[Verdict(verdict)]} {verdict}" if verdict else label(result)
    return f"{text} ({hint})" if hint else text


def confirming_words(step: Step, last_passed_sha: str | None) -> str:
    if step is Step.AGAIN:
        return "🔁 confirming: failed once, running again against the same upstream commit"
    return (
        f"🔁 confirming: failed twice, running against `{texts.short(last_passed_sha)}`, "
        "the upstream commit it last passed with"
    )


def display_name(name: str, private: bool, upstream_private: bool) -> str:
    """A private downstream is never named on a public upstream."""
    return "" if private and not upstream_private else name


def aggregate(
    rows: Sequence[Row], target_url: str, progress: Progress | None = None
) -> CommitReport:
    """What the upstream commit shows (`conjunction.tally.outcome`), in the words of
    `conjunction.tally.describe` on both the status and the check run. While pacing holds some of
    the downstreams back, how many were started and when the next batch goes."""
    description = describe(rows, progress)
    state, conclusion = outcome(rows)
    return CommitReport(
        state=state,
        conclusion=conclusion,
        description=description,
        target_url=target_url,
        title=description,
        summary=summary(rows, progress),
    )


def summary(rows: Sequence[Row], progress: Progress | None = None) -> str:
    """The Markdown table of the downstreams that ran (root failures among them), then the
    fallout: those not run because an upstream failed. Private ones are only counted."""
    shown = [_row_values(row) for row in rows if row.name and not row.fallout]
    fallout = [_row_values(row) for row in rows if row.name and row.fallout]
    hidden = [row for row in rows if not row.name]
    private = None
    if hidden:
        tally = Counter(words(row.event.result, row.event.change) for row in hidden)
        private = {
            "count": len(hidden),
            "results": ", ".join(f"{count} {text}" for text, count in tally.items()),
        }
    upstream_ranges, changed = what_changed([row for row in rows if row.name and not row.fallout])
    text = (
        texts.render(
            "summary.md",
            rows=shown,
            failures=[row for row in shown if row["excerpt"] is not None],
            excerpts_shown=EXCERPTS_SHOWN,
            fallout=fallout,
            private=private,
            upstream_ranges=upstream_ranges,
            changed=changed,
            progress=progress,
        )
        + "\n"
    )
    if len(text) > SUMMARY_LIMIT:
        text = text[: SUMMARY_LIMIT - 40].rsplit("\n", 1)[0] + "\n\n…(table cut short)\n"
    return text


def what_changed(rows: Sequence[Row]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The upstream commits since failing rows last passed, each range once with the rows it
    concerns; and each row's culprit and own commits."""
    ranges: dict[tuple[str, str, str], dict[str, Any]] = {}
    changed = []
    for row in rows:
        changes = row.event.changes or {}
        if row.passed or not changes:
            continue
        upstream = changes.get("upstream")
        if upstream and row.via != "":  # a private upstream's commits stay with it
            key = (upstream["project"], upstream["base"], upstream["head"])
            ranges.setdefault(key, {"range": upstream, "names": []})["names"].append(row.name)
        if changes.get("culprit") or changes.get("downstream"):
            changed.append(
                {
                    "name": row.name,
                    "culprit": changes.get("culprit"),
                    "downstream": changes.get("downstream"),
                }
            )
    return list(ranges.values()), changed


def _row_values(row: Row) -> dict[str, Any]:
    event = row.event
    if row.confirming is not None:
        result = confirming_words(row.confirming, event.last_passed_sha)
    elif waiting(event):
        result = WAITING
    else:
        result = words(event.result, event.change, event.hint)
    if row.result is None and row.left is not None:
        result += f", {time_left(row.left)}"
    if not row.required and row.result and not row.passed:
        result += " (optional)"
    if event.reason:
        result += f": {texts.md(event.reason)}"
    if row.culprit:
        result += f"; {row.culprit}"
    excerpt = Excerpt.of(event.excerpt) if row.result and row.result.broken else None
    if excerpt is not None and excerpt.cause is not None:
        result += f" {markdown.code(excerpt.cause, table=True)}"
    return {
        "excerpt": excerpt,
        "name": row.name,
        "via": row.via if row.via is None else row.via or "a private project",
        "reason": event.reason,
        "result_text": result,
        "url": event.url,
        "duration": _duration(event),
        "owners": row.owners,
        "compare_url": row.compare_url,
    }


def _duration(event: Event) -> str:
    if event.started_at is None or event.finished_at is None:
        return ""
    return _span((event.finished_at - event.started_at).total_seconds())


def _span(seconds: float) -> str:
    minutes, seconds = divmod(max(int(seconds), 0), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {seconds}s"


@dataclass(frozen=True)
class _Known:
    """What the rows of a report need beside their own events: their pairs' past, read for every
    row at once, and whether each downstream is required."""

    passed_with: dict[str, str]  # the upstream commit a row's pair last passed with
    durations: dict[str, list[float]]  # a running row's pair's latest decisive runs
    searches: dict[str, Bisect]  # a failure's culprit search
    required: Callable[[str], bool]  # whether a downstream may fail the upstream's commits

    @classmethod
    async def of(
        cls, session: AsyncSession, rows: Sequence[Event], required: Callable[[str], bool]
    ) -> _Known:
        unsettled = [event for event in rows if event.result != Result.SUCCESS]
        running = [e for e in rows if e.result is None and e.started_at is not None]
        failures = [event.id for event in unsettled if event.result is not None]
        return cls(
            passed_with=await last_passed_with(session, unsettled),
            durations=await past_durations(session, running, PAST_DURATIONS),
            searches=await of_failures(session, failures),
            required=required,
        )

    def left(self, event: Event) -> float | None:
        """While a downstream runs: seconds it probably still needs, by its pair's past runs."""
        if event.result is not None or event.started_at is None:
            return None
        return remaining(figures(self.durations.get(event.id, ())), event.started_at, utcnow())

    def culprit(self, failure: Event) -> str | None:
        """A failure's culprit search on its row: how far it came, or what it found."""
        if failure.result is None or failure.result == Result.SUCCESS:
            return None
        search = self.searches.get(failure.id)
        return culprit_words(search) if search is not None else None


async def post_report(ctx: Context, payload: dict[str, Any]) -> None:
    """Job: post the aggregate of every downstream below an event, its whole chain, on its
    commit."""
    async with ctx.sessions() as session:
        source = await session.get(Event, payload["event_id"])
        if source is None or source.sha is None:
            return
        upstream = await session.get(Project, project_key(source.project))
        if upstream is None or not upstream.active:
            return  # not installed here: results are shown downstream only
        chain = list(
            await session.scalars(
                select(Event).where(Event.root_id == source.root_id, Event.kind == "trigger")
            )
        )
        # every row's projects in one query: each row finds them in the session (which holds
        # them only while they are referenced)
        keys = {project_key(name) for e in chain for name in (e.project, e.upstream) if name}
        _projects = list(await session.scalars(select(Project).where(Project.key.in_(keys))))
        tree = descendants(source.id, chain)
        known = await _Known.of(session, tree, required_in(upstream))
        rows = [await _row(ctx, session, source, upstream, event, known) for event in tree]
        started = await progress(session, [row.event for row in rows])
    host = ctx.adapters.host(source.project)
    if not rows or host is None:
        return
    report_config = config_of(upstream).report
    report = aggregate(rows, ctx.event_url(source.id), started)
    if report_config.commit_status or report_config.check_run:
        await host.publish_report(
            source.project,
            source.sha,
            report,
            status=report_config.commit_status,
            check=report_config.check_run,
        )
    # the pull request hears of the result once it is complete, not of every step before
    if report_config.pull_request_comment and report.completed:
        body = texts.render(
            "pr_comment.md",
            marker=texts.PR_COMMENT_MARKER,
            description=report.description,
            summary=report.summary,
        )
        await host.comment_on_change(source.project, source.sha, texts.PR_COMMENT_MARKER, body)


async def _row(
    ctx: Context,
    session: AsyncSession,
    source: Event,
    upstream: Project,
    child: Event,
    known: _Known,
) -> Row:
    downstream = await session.get(Project, project_key(child.project))
    via, parent = None, source
    if child.parent_id != source.id and child.upstream:
        above = await session.get(Project, project_key(child.upstream))
        via = display_name(child.upstream, bool(above and above.private), upstream.private)
        parent = await session.get(Event, child.parent_id or "") or source
    shown = via != ""
    return Row(
        event=child,
        direct=child.parent_id == source.id,
        name=display_name(child.project, bool(downstream and downstream.private), upstream.private),
        owners=list(downstream.owners) if downstream else [],
        required=known.required(child.project),
        # deeper in the chain, the changes are those of the upstream it ran after
        compare_url=_compare_url(ctx, parent, child, known.passed_with.get(child.id))
        if shown
        else None,
        via=via,
        left=known.left(child),
        culprit=known.culprit(child) if shown else None,
    )


def culprit_words(search: Bisect) -> str:
    """`culprit: [`abc1234`](…) Title`, `culprit: one of 4 commits `a`…`b``, or the search
    under way."""
    answer = search.answer
    if answer is None:
        done = len(tried(search))
        return (
            f"🔎 finding the culprit among {len(search.commits)} upstream commits "
            f"({done} of at most {search.max_runs} runs done)"
        )
    commits = {commit["sha"]: commit for commit in search.commits}
    culprit = commits.get(answer.get("culprit") or "")
    if culprit is not None:
        linked = markdown.link(texts.short(culprit["sha"]), culprit.get("url"), as_code=True)
        return f"culprit: {linked} {texts.md(culprit['title'])}"
    suspects = answer.get("suspects") or [None]
    first, last = (markdown.code(texts.short(sha)) for sha in (suspects[0], suspects[-1]))
    return f"culprit: one of {len(suspects)} commits {first}…{last}"


async def compare_url(
    ctx: Context, session: AsyncSession, source: Event, child: Event
) -> str | None:
    """Upstream changes since this downstream last passed."""
    if child.result == Result.SUCCESS or source.sha is None:
        return None
    passed_with = await last_passed_with(session, [child])
    return _compare_url(ctx, source, child, passed_with.get(child.id))


def _compare_url(ctx: Context, source: Event, child: Event, passed_with: str | None) -> str | None:
    """Upstream changes from the commit the pair last passed with to this one."""
    if child.result == Result.SUCCESS or source.sha is None:
        return None
    host = ctx.adapters.host(source.project)
    if host is None or passed_with is None or passed_with == source.sha:
        return None
    return host.compare_url(source.project, passed_with, source.sha)
