"""Aggregating downstream results into what is posted on the upstream commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.forge import CommitReport
from bot.models import Event

PASSED = {"success"}
FAILED = {"failure", "error", "timed_out"}
FINAL = {"success", "failure", "error", "cancelled", "timed_out", "skipped"}
SUMMARY_LIMIT = 65_000

ICONS = {
    "success": "✅ passed",
    "failure": "❌ failed",
    "error": "❌ error",
    "timed_out": "⌛ timed out",
    "cancelled": "⏹ cancelled",
    "skipped": "⏭ skipped",
    None: "⏳ running",
}
CHANGES = {"broke": " (newly broken)", "improved": " (fixed)"}


@dataclass(frozen=True)
class Row:
    """One downstream as the upstream may see it."""

    event: Event
    name: str  # display name, or "" for a private project on a public upstream
    owners: Sequence[str]
    required: bool
    compare_url: str | None


def escape(text: str) -> str:
    """Make user-written text inert inside a Markdown table cell."""
    return (
        text.replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\n", " ")
        .replace("@", "@\u200b")
    )


def _duration(event: Event) -> str:
    if event.started_at is None or event.finished_at is None:
        return ""
    seconds = int((event.finished_at - event.started_at).total_seconds())
    minutes, seconds = divmod(max(seconds, 0), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m" if hours else f"{minutes}m {seconds}s"


def aggregate(rows: Sequence[Row], target_url: str) -> CommitReport:
    results = [row.event.result for row in rows]
    total = len(rows)
    passed = sum(result in PASSED for result in results)
    pending = sum(result is None for result in results)
    failed_required = any(row.event.result in FAILED and row.required for row in rows)
    failed_any = any(result in FAILED for result in results)
    description = f"{passed} of {total} downstream projects passed"
    if pending:
        description += f", {pending} running"
    if pending:
        state, conclusion = "pending", None
    elif failed_required:
        state, conclusion = "failure", "failure"
    else:
        state, conclusion = "success", ("neutral" if failed_any else "success")
    return CommitReport(
        state=state,  # type: ignore[arg-type]
        conclusion=conclusion,  # type: ignore[arg-type]
        description=description,
        target_url=target_url,
        title=description,
        summary=summary(rows),
    )


def summary(rows: Sequence[Row]) -> str:
    lines = [
        "| Downstream | Result | Run | Duration | Owners | Changes since last pass |",
        "|---|---|---|---|---|---|",
    ]
    hidden = [row for row in rows if not row.name]
    for row in rows:
        if not row.name:
            continue
        event = row.event
        result = ICONS.get(event.result, event.result or "") + CHANGES.get(event.change or "", "")
        if not row.required and event.result in FAILED:
            result += " (optional)"
        if event.reason:
            result += f": {escape(event.reason)}"
        run = f"[run]({event.url})" if event.url else ""
        owners = ", ".join(f"`{escape(owner)}`" for owner in row.owners)
        compare = f"[compare]({row.compare_url})" if row.compare_url else ""
        lines.append(
            f"| {escape(row.name)} | {result} | {run} | {_duration(event)} | {owners} | {compare} |"
        )
    if hidden:
        counts = _count_results(row.event.result for row in hidden)
        noun = "private project" if len(hidden) == 1 else "private projects"
        lines.append(f"| {len(hidden)} {noun} | {counts} | | | | |")
    text = "\n".join(lines) + "\n"
    if len(text) > SUMMARY_LIMIT:
        text = text[: SUMMARY_LIMIT - 40].rsplit("\n", 1)[0] + "\n\n…(table cut short)\n"
    return text


def _count_results(results: Iterable[str | None]) -> str:
    tally: dict[str, int] = {}
    for result in results:
        label = ICONS.get(result, str(result))
        tally[label] = tally.get(label, 0) + 1
    return ", ".join(f"{count} {label}" for label, count in tally.items())


def display_name(row_name: str, private: bool, upstream_private: bool) -> str:
    """A private downstream is never named on a public upstream."""
    return "" if private and not upstream_private else row_name
