"""Text the bot posts in issues and comments. Hidden markers let it find its own posts again."""

from __future__ import annotations

from collections.abc import Sequence

ISSUE_LABEL = "conjunction"
ISSUE_LABEL_COLOR = "d93f0b"
ISSUE_LABEL_DESCRIPTION = "A downstream project broke against an upstream change"
PR_COMMENT_MARKER = "<!-- conjunction:downstream-summary -->"


def mentions(owners: Sequence[str]) -> str:
    return " ".join(f"@{owner}" for owner in owners) or "(no owners declared)"


def short(sha: str | None) -> str:
    return (sha or "unknown")[:7]


def issue_title(upstream: str, downstream: str) -> str:
    return f"{downstream} fails against {upstream}"


def issue_body(
    *,
    upstream: str,
    downstream: str,
    sha: str | None,
    run_url: str | None,
    compare_url: str | None,
    trace_url: str,
    downstream_owners: Sequence[str],
    upstream_owners: Sequence[str],
) -> str:
    lines = [
        f"<!-- conjunction:breakage {upstream} -> {downstream} -->",
        f"**{downstream}** passed against the previous successful build of **{upstream}**, "
        f"and fails against `{short(sha)}`.",
        "",
    ]
    if run_url:
        lines.append(f"- Failing run: {run_url}")
    if compare_url:
        lines.append(f"- What changed upstream since it last passed: {compare_url}")
    lines += [
        f"- Trace: {trace_url}",
        "",
        f"Downstream owners: {mentions(downstream_owners)}",
        f"Upstream owners: {mentions(upstream_owners)}",
        "",
        f"Conjunction comments here on later failures and closes this issue when {downstream} "
        "passes again.",
    ]
    return "\n".join(lines)


def still_failing(sha: str | None, run_url: str | None, trace_url: str) -> str:
    run = f" ([run]({run_url}))" if run_url else ""
    return f"Still failing against upstream `{short(sha)}`{run}. Trace: {trace_url}"


def fixed(downstream: str, sha: str | None, run_url: str | None) -> str:
    run = f" ([run]({run_url}))" if run_url else ""
    return f"{downstream} passes again against upstream `{short(sha)}`{run}. Closing."
