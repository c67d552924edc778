"""Pre-merge runs (CONTRACT §8), decided: whether a change starts any, which downstreams it is
run against, what each row says against the change's base commit, and what the head commit
shows. Pure functions over plain values; `conjunction.engine.premerge` loads and acts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from conjunction.config.repo_config import ConjunctionConfig, Upstream
from conjunction.excerpts import Excerpt
from conjunction.results import Result
from conjunction.runs import Change

KIND = "premerge"  # the run's kind a CI system is sent (`kind`, CONJUNCTION_KIND, `${kind}`)
PRIVATE = "a private project"


class Row(StrEnum):
    """What one downstream's result with the change means, against the change's base."""

    PASSES = "passes"
    BREAKS = "breaks"  # fails with the change, passes on the base
    FIXES = "fixes"  # passes with the change, fails on the base
    ALREADY_BROKEN = "already broken"  # fails on both
    FLAKY = "flaky"  # a `breaks` that passed when run once more (`confirm: true`)
    FAILED = "failed"  # fails with the change, and no baseline to be had
    RUNNING = "running"
    TIMED_OUT = "timed out"
    SKIPPED = "skipped"


MARKS = {
    Row.PASSES: "✅",
    Row.BREAKS: "❌",
    Row.FIXES: "🎉",
    Row.ALREADY_BROKEN: "⛔",
    Row.FLAKY: "⚠️",
    Row.FAILED: "❌",
    Row.RUNNING: "⏳",
    Row.TIMED_OUT: "⌛",
    Row.SKIPPED: "⏭",
}
# the order of the counts in the description, most alarming first
TALLY_ORDER = [
    Row.BREAKS,
    Row.FAILED,
    Row.ALREADY_BROKEN,
    Row.FLAKY,
    Row.FIXES,
    Row.TIMED_OUT,
    Row.SKIPPED,
    Row.RUNNING,
]


@dataclass(frozen=True)
class Runs:
    """One downstream's runs for one change head, as loaded.

    `head`: its result with the change (None: under way). `base`: its result on the base
    commit, recorded or run now (None: under way, or none to be had when not `base_known`).
    `again`: the confirming re-run of a `breaks` (`confirm: true`), once it was started."""

    head: Result | None
    base: Result | None = None
    base_known: bool = False
    confirm: bool = False
    again_started: bool = False
    again: Result | None = None


@dataclass(frozen=True)
class Verdict:
    row: Row
    run_again: bool = False  # start the confirming re-run now
    detail: str = ""  # what a person reads beside the row


def row_of(runs: Runs) -> Verdict:
    """The row of one downstream (CONTRACT §8), and whether its `breaks` is run once more."""
    head = runs.head
    if head is None:
        return Verdict(Row.RUNNING)
    if head is Result.TIMED_OUT:
        return Verdict(Row.TIMED_OUT)
    if head in (Result.SKIPPED, Result.CANCELLED):
        return Verdict(Row.SKIPPED, detail="cancelled" if head is Result.CANCELLED else "")
    if runs.base_known and runs.base is None:
        return Verdict(Row.RUNNING, detail="running against the base commit")
    base = runs.base if runs.base_known and runs.base and runs.base.decisive else None
    if head is Result.SUCCESS:
        return Verdict(Row.FIXES if base is not None and base.broken else Row.PASSES)
    if base is None:
        detail = "no result on the base commit to compare with" if runs.base_known else ""
        return Verdict(Row.FAILED, detail=detail)
    if base.broken:
        return Verdict(Row.ALREADY_BROKEN)
    if not runs.confirm:
        return Verdict(Row.BREAKS)
    if not runs.again_started:
        return Verdict(Row.RUNNING, run_again=True, detail="failed, confirming: running again")
    if runs.again is None:
        return Verdict(Row.RUNNING, detail="failed, confirming: running again")
    if runs.again is Result.SUCCESS:
        return Verdict(Row.FLAKY, detail="failed, then passed when run again")
    return Verdict(Row.BREAKS, detail="failed again when run once more")


def rerun_wanted(row: Row) -> bool:
    """`/conjunction retry`: the rows that did not pass run again."""
    return row not in (Row.PASSES, Row.FIXES, Row.RUNNING)


# -- whether a change starts pre-merge runs, and against which downstreams --


def start_refusal(
    change: Change, when: Literal["command", "members", "off"], *, commanded: bool
) -> str | None:
    """Why the change starts nothing, before asking who its author is; None: it may start
    (by itself, `when: members` still asks whether the author may write)."""
    what = "merge request" if "/merge_requests/" in change.url else "pull request"
    if change.state != "open":
        return f"the {what} is {change.state}: nothing more is run against it"
    if when == "off":
        return f"pre-merge runs are off for {change.project} (premerge.when: off)"
    if commanded:
        return None
    if change.fork:
        return (
            f"a {what} from a fork never starts pre-merge runs by itself: someone who may "
            "write to the repository can ask with `/conjunction test`"
        )
    if when == "command":
        return "pre-merge runs start on `/conjunction test` (premerge.when: command)"
    return None


def not_a_writer(change: Change) -> str:
    return (
        f"{change.author or 'the author'} may not write to {change.project}: pre-merge runs "
        "start by themselves only for writers (`/conjunction test` asks for them)"
    )


@dataclass(frozen=True)
class Candidate:
    """A downstream subscribed to the upstream, with its `upstreams:` entry."""

    key: str
    name: str
    spec: Upstream


def named(candidate: Candidate, wanted: str) -> bool:
    """A DOWNSTREAM of a command: a project name or its last path part."""
    wanted = wanted.strip().casefold()
    name = candidate.name.casefold()
    return wanted in (name, name.rsplit("/", 1)[-1])


def select_downstreams(
    upstream: str,
    config: ConjunctionConfig,
    candidates: Iterable[Candidate],
    only: Sequence[str] = (),
) -> tuple[list[Candidate], list[str]]:
    """The downstreams a change of `upstream` runs against: those its `premerge.downstreams`
    select (default: `report.required`) that consent on their own `upstreams:` entry (default:
    the same owner); with `only`, those named. Returns them, and the names in `only` that
    match none of them."""
    chosen = [
        candidate
        for candidate in candidates
        if config.premerge.selects(candidate.name, upstream, config.report)
        and candidate.spec.premerge_consent(candidate.name)
    ]
    if not only:
        return chosen, []
    unknown = [wanted for wanted in only if not any(named(c, wanted) for c in chosen)]
    return [c for c in chosen if any(named(c, wanted) for wanted in only)], unknown


# -- what the head commit shows --


@dataclass(frozen=True)
class Shown:
    """One row as the upstream may see it."""

    name: str  # "" for a private project on a public upstream
    row: Row
    required: bool
    detail: str = ""
    url: str | None = None  # the run with the change
    base_url: str | None = None  # the run on the base commit, when it ran for this change
    excerpt: Excerpt | None = None  # why the run with the change failed

    @property
    def blamed(self) -> bool:
        return self.required and self.row is Row.BREAKS


def state_of(rows: Sequence[Shown]) -> Literal["pending", "success", "failure"]:
    """Pending while any row runs; failure only when a required downstream breaks."""
    if any(row.row is Row.RUNNING for row in rows):
        return "pending"
    return "failure" if any(row.blamed for row in rows) else "success"


def describe(rows: Sequence[Shown]) -> str:
    """`2 of 3 downstream projects pass with this change, 1 breaks`."""
    passing = sum(row.row in (Row.PASSES, Row.FIXES) for row in rows)
    tally = Counter(row.row for row in rows)
    counts = [f"{tally[row]} {row}" for row in TALLY_ORDER if tally[row]]
    lead = f"{passing} of {len(rows)} downstream projects pass with this change"
    return ", ".join([lead, *counts])


def words(row: Shown) -> str:
    text = f"{MARKS[row.row]} {row.row}"
    if row.detail:
        text += f" ({row.detail})"
    if row.excerpt is not None and row.excerpt.cause is not None:
        text += f" [{row.excerpt.cause}]"
    if not row.required and row.row in (Row.BREAKS, Row.FAILED):
        text += " (optional)"
    return text
