"""The aggregate of an upstream success's downstream results, posted on the upstream commit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import texts
from bot.codehost import CommitReport
from bot.durations import Figures, Pair, pair_durations, remaining, time_left
from bot.engine.context import Context, config_of
from bot.engine.results import last_pass
from bot.models import Event, Project, utcnow
from bot.names import project_key
from bot.results import Result, Verdict

SUMMARY_LIMIT = 65_000
LABELS = {
    Result.SUCCESS: "✅ passed",
    Result.FAILURE: "❌ failed",
    Result.ERROR: "❌ error",
    Result.TIMED_OUT: "⌛ timed out",
    Result.CANCELLED: "⏹ cancelled",
    Result.SKIPPED: "⏭ skipped",
    None: "⏳ running",
}
VERDICT_NOTES = {Verdict.NEW_REGRESSION: " (newly broken)", Verdict.FIXED: " (fixed)"}


@dataclass(frozen=True)
class Row:
    """One downstream as the upstream may see it."""

    event: Event
    name: str  # display name, or "" for a private project on a public upstream
    owners: Sequence[str]
    required: bool
    compare_url: str | None
    left: float | None = None  # running: seconds it probably still needs, by past durations

    @property
    def result(self) -> Result | None:
        return Result(self.event.result) if self.event.result else None


def label(result: str | None) -> str:
    return LABELS.get(Result(result) if result else None, str(result))


def display_name(name: str, private: bool, upstream_private: bool) -> str:
    """A private downstream is never named on a public upstream."""
    return "" if private and not upstream_private else name


def aggregate(rows: Sequence[Row], target_url: str) -> CommitReport:
    """What the upstream commit shows: pending while any runs, failing only for required ones."""
    total = len(rows)
    passed = sum(row.result is Result.SUCCESS for row in rows)
    pending = sum(row.result is None for row in rows)
    description = f"{passed} of {total} downstream projects passed"
    if pending:
        description += f", {pending} running"
        estimates = [row.left for row in rows if row.result is None and row.left is not None]
        if estimates:
            description += f", {time_left(max(estimates))}"
        state, conclusion = "pending", None
    elif any(row.result and row.result.failed and row.required for row in rows):
        state, conclusion = "failure", "failure"
    elif any(row.result and row.result.failed for row in rows):
        state, conclusion = "success", "neutral"
    else:
        state, conclusion = "success", "success"
    return CommitReport(
        state=state,  # type: ignore[arg-type]
        conclusion=conclusion,  # type: ignore[arg-type]
        description=description,
        target_url=target_url,
        title=description,
        summary=summary(rows),
    )


def summary(rows: Sequence[Row]) -> str:
    """The Markdown table of downstream rows; private ones only counted."""
    shown = [_row_values(row) for row in rows if row.name]
    hidden = [row for row in rows if not row.name]
    private = None
    if hidden:
        tally = Counter(label(row.event.result) for row in hidden)
        private = {
            "count": len(hidden),
            "results": ", ".join(f"{count} {text}" for text, count in tally.items()),
        }
    text = texts.render("summary.md", rows=shown, private=private) + "\n"
    if len(text) > SUMMARY_LIMIT:
        text = text[: SUMMARY_LIMIT - 40].rsplit("\n", 1)[0] + "\n\n…(table cut short)\n"
    return text


def _row_values(row: Row) -> dict[str, Any]:
    event = row.event
    result = label(event.result) + VERDICT_NOTES.get(event.change, "")  # type: ignore[call-overload]
    if not row.required and row.result and row.result.failed:
        result += " (optional)"
    if event.reason:
        result += f": {texts.md(event.reason)}"
    if row.result is None and row.left is not None:
        result += f", {time_left(row.left)}"
    return {
        "name": row.name,
        "result_text": result,
        "url": event.url,
        "duration": _duration(event),
        "owners": row.owners,
        "compare_url": row.compare_url,
    }


def _duration(event: Event) -> str:
    if event.started_at is None or event.finished_at is None:
        return ""
    seconds = int((event.finished_at - event.started_at).total_seconds())
    minutes, seconds = divmod(max(seconds, 0), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {seconds}s"


async def post_report(ctx: Context, payload: dict[str, Any]) -> None:
    """Job: post the aggregate of an event's downstream results on its commit."""
    async with ctx.sessions() as session:
        source = await session.get(Event, payload["event_id"])
        if source is None or source.sha is None:
            return
        upstream = await session.get(Project, project_key(source.project))
        if upstream is None or not upstream.active:
            return  # not installed here: results are shown downstream only
        children = list(
            await session.scalars(
                select(Event)
                .where(Event.parent_id == source.id, Event.result.is_distinct_from(Result.SKIPPED))
                .order_by(Event.created_at)
            )
        )
        typical = await pair_durations(
            session,
            {
                (project_key(c.upstream or ""), project_key(c.project))
                for c in children
                if not c.result
            },
        )
        rows = [await _row(ctx, session, source, upstream, child, typical) for child in children]
    host = ctx.adapters.host(source.project)
    if not rows or host is None:
        return
    report_config = config_of(upstream).report
    report = aggregate(rows, ctx.event_url(source.id))
    if report_config.commit_status or report_config.check_run:
        await host.publish_report(
            source.project,
            source.sha,
            report,
            status=report_config.commit_status,
            check=report_config.check_run,
        )
    if report_config.pull_request_comment:
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
    typical: dict[Pair, Figures],
) -> Row:
    downstream = await session.get(Project, project_key(child.project))
    pair = (project_key(child.upstream or ""), project_key(child.project))
    return Row(
        event=child,
        name=display_name(child.project, bool(downstream and downstream.private), upstream.private),
        owners=list(downstream.owners) if downstream else [],
        required=config_of(upstream).report.is_required(child.project),
        compare_url=await compare_url(ctx, session, source, child),
        left=remaining(typical.get(pair), child.started_at, utcnow()) if not child.result else None,
    )


async def compare_url(
    ctx: Context, session: AsyncSession, source: Event, child: Event
) -> str | None:
    """Upstream changes since this downstream last passed."""
    if child.result == Result.SUCCESS or source.sha is None:
        return None
    passed = await last_pass(session, child)
    if passed is None or passed.parent_id is None:
        return None
    passed_on = await session.get(Event, passed.parent_id)
    host = ctx.adapters.host(source.project)
    if passed_on is None or passed_on.sha in (None, source.sha) or host is None:
        return None
    return host.compare_url(source.project, passed_on.sha or "", source.sha)
