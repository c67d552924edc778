"""How the downstream runs of an upstream commit are counted and said, in the one set of words
that the report on the commit (status description, check run title), the event page, the home
page, the project page, the badge and the API all use.

"N of M" counts the commit's direct downstreams; the whole tree below it (its downstreams'
downstreams, through chains) follows in brackets when it differs:
`5 of 5 downstream projects passed (5 of 7 in the tree)`. Skipped ones are not among the M (they
did not run) and are counted after it; a failure being confirmed by a re-run is `confirming`,
never a failure, until the re-run settles it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from conjunction.config.repo_config import ConjunctionConfig
from conjunction.durations import time_left
from conjunction.history import descendants
from conjunction.models import Event, Project
from conjunction.progress import Progress, waiting
from conjunction.results import Result, Verdict
from conjunction.runs import Step

CONFIRMING = "confirming"
NOUN = "downstream projects"
NONE_BLAMED = "none blamed on this commit"
# what a run without a verdict says
UNJUDGED = {
    Result.SUCCESS: "passed",
    Result.FAILURE: "failed",
    Result.ERROR: "error",
    Result.CANCELLED: "cancelled",
    Result.TIMED_OUT: str(Verdict.TIMED_OUT),
    Result.SKIPPED: str(Verdict.SKIPPED),
}
PLURALS = {str(Verdict.NEW_REGRESSION): "new regressions", "error": "errors"}
# the order of the counts in the description, most alarming first
TALLY_ORDER = [
    str(Verdict.NEW_REGRESSION),
    str(Verdict.STILL_FAILING),
    str(Verdict.ALREADY_BROKEN),
    str(Verdict.FLAKY),
    "failed",
    "error",
    str(Verdict.TIMED_OUT),
    "cancelled",
    str(Verdict.SKIPPED),
    str(Verdict.RUNNING),
]

State = Literal["pending", "success", "failure"]
Conclusion = Literal["success", "failure", "neutral"] | None


def shown_as(event: Event) -> str:
    """What one run says on every page and in the API: `confirming` while a failure is being
    confirmed by a re-run, else its verdict, `running` before its result, or its result."""
    if event.confirming:
        return CONFIRMING
    if event.change:
        return str(event.change)
    if event.result is None:
        return str(Verdict.RUNNING)
    return UNJUDGED.get(Result(event.result), str(event.result))


@dataclass(frozen=True)
class Row:
    """One downstream of the report on an upstream commit, as the upstream may see it."""

    event: Event
    name: str  # display name, or "" for a private project on a public upstream
    owners: Sequence[str]
    required: bool
    compare_url: str | None
    via: str | None = None  # the upstream it ran after, deeper in the chain ("" when private)
    left: float | None = None  # while it runs: seconds it probably still needs
    culprit: str | None = None  # a culprit search of this failure: where it stands, its answer
    direct: bool = True  # a direct downstream of the commit, not deeper in the tree

    @property
    def result(self) -> Result | None:
        return Result(self.event.result) if self.event.result else None

    @property
    def verdict(self) -> Verdict | None:
        return Verdict(self.event.change) if self.event.change else None

    @property
    def passed(self) -> bool:
        return self.result is Result.SUCCESS

    @property
    def confirming(self) -> Step | None:
        """The re-run under way, while a failure is being confirmed."""
        step = self.event.confirming
        return Step(step) if step else None

    @property
    def pending(self) -> bool:
        return self.result is None or self.confirming is not None

    @property
    def fallout(self) -> bool:
        """Not run because an upstream in the chain did not pass."""
        return bool(self.event.fallout)

    @property
    def blamed(self) -> bool:
        """Fails the upstream: a required downstream's new regression, and nothing else."""
        return self.required and self.verdict is Verdict.NEW_REGRESSION

    @property
    def tally(self) -> str:
        """What the row counts as in the description."""
        return shown_as(self.event)


def required_in(upstream: Project | None) -> Callable[[str], bool]:
    """Whether a downstream's results may fail this upstream's commits (its `report.required`)."""
    if upstream is None:
        return lambda downstream: False
    report = ConjunctionConfig.model_validate(upstream.config or {}).report
    return lambda downstream: report.is_required(downstream, upstream.name)


def rows_below(source: Event, tree: Sequence[Event], required: Callable[[str], bool]) -> list[Row]:
    """The rows of the report on `source`'s commit, from the events of its tree, for counting
    and describing them (names and links are the report's own business)."""
    return [
        Row(
            event,
            event.project,
            (),
            required(event.project),
            None,
            direct=event.parent_id == source.id,
        )
        for event in descendants(source.id, tree)
    ]


@dataclass(frozen=True)
class Tally:
    """Runs of some downstreams: those that ran or run (skipped ones aside), how many passed,
    how many have no result yet, and how many failed and are being confirmed."""

    passed: int
    total: int
    running: int = 0
    confirming: int = 0

    @property
    def settled(self) -> bool:
        return not self.running and not self.confirming


def tally_of(rows: Sequence[Row]) -> Tally:
    ran = [row for row in rows if row.result is not Result.SKIPPED]
    return Tally(
        passed=sum(row.passed for row in ran),
        total=len(ran),
        running=sum(row.result is None for row in ran),
        confirming=sum(row.confirming is not None and row.result is not None for row in ran),
    )


@dataclass(frozen=True)
class Count:
    """An upstream commit's direct downstreams, and the whole tree below it."""

    direct: Tally
    tree: Tally

    def words(self, noun: str = NOUN) -> str:
        """`5 of 5 downstream projects passed (5 of 7 in the tree)`."""
        if self.tree.total == 0:
            return f"no {noun} ran" if noun else "none ran"
        lead = f"{self.direct.passed} of {self.direct.total}"
        text = f"{lead} {noun} passed" if noun else f"{lead} passed"
        if self.tree != self.direct:
            text += f" ({self.tree.passed} of {self.tree.total} in the tree)"
        return text

    def short(self) -> str:
        """The badge's: `5 of 5 passed (5 of 7 in the tree), 2 running`."""
        text = self.words(noun="")
        if self.tree.running:
            text += f", {self.tree.running} running"
        if self.tree.confirming:
            text += f", {self.tree.confirming} {CONFIRMING}"
        return text


def count_of(rows: Sequence[Row]) -> Count:
    return Count(direct=tally_of([row for row in rows if row.direct]), tree=tally_of(rows))


def outcome(rows: Sequence[Row]) -> tuple[State, Conclusion]:
    """The commit status's state and the check run's conclusion: pending while any runs or a
    failure is being confirmed; failing only for a required downstream's new regression;
    otherwise a success, whose check is neutral when anything did not pass."""
    if any(row.pending for row in rows):
        return "pending", None
    if any(row.blamed for row in rows):
        return "failure", "failure"
    if not all(row.passed for row in rows):
        return "success", "neutral"
    return "success", "success"


def describe(rows: Sequence[Row], progress: Progress | None = None) -> str:
    """`2 of 4 downstream projects passed, 1 new regression, 1 running`; while a paced fan-out
    holds some back, `started 120 of 400, next batch in ~40 s` comes first after the lead, so
    that the forges' length limits never cut it (those not started are not counted running).
    A success in which not everything passed says that nothing was blamed on the commit, so
    that a green status and a neutral check say why in the same words."""
    tally = Counter(
        row.tally
        for row in rows
        if not row.passed and not (progress is not None and waiting(row.event))
    )
    counts = [
        f"{tally[word]} {PLURALS.get(word, word) if tally[word] > 1 else word}"
        for word in TALLY_ORDER
        if tally[word]
    ]
    if tally[CONFIRMING]:
        counts.append(
            f"confirming {tally[CONFIRMING]} failure{'s' if tally[CONFIRMING] > 1 else ''}"
        )
    estimates = [row.left for row in rows if row.pending and row.left is not None]
    if estimates:
        counts.append(time_left(max(estimates)))
    lead = [count_of(rows).words()]
    if progress is not None:
        lead.append(progress.words())
    text = ", ".join([*lead, *counts])
    if outcome(rows) == ("success", "neutral"):
        text += f"; {NONE_BLAMED}"
    return text
