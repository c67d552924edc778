"""What a pipeline ended with (`Result`) and what that means against its history (`Verdict`).

Everything here is a pure function over plain data: a pair's (upstream, downstream) history in,
a verdict and a hint out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

from conjunction.runs import Step


class Result(StrEnum):
    """A downstream's (or an upstream build's) final result, as CI systems report it."""

    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"

    @property
    def passed(self) -> bool:
        return self is Result.SUCCESS

    @property
    def broken(self) -> bool:
        """The pipeline ran and failed: what can be blamed on a change."""
        return self in (Result.FAILURE, Result.ERROR)

    @property
    def failed(self) -> bool:
        """Counts as a failure on the upstream's report (a time-out too)."""
        return self.broken or self is Result.TIMED_OUT

    @property
    def decisive(self) -> bool:
        """Says something about the code: passed or broken (not skipped, cancelled, timed out)."""
        return self.passed or self.broken


RUNNING = "running"  # what a CI system may report before its final result


class Verdict(StrEnum):
    """What a downstream's result means for the pair (upstream, downstream) — CONTRACT §6."""

    PASSED = "passed"
    FIXED = "fixed"
    NEW_REGRESSION = "new regression"
    STILL_FAILING = "still failing"
    FLAKY = "flaky"
    ALREADY_BROKEN = "already broken"
    RUNNING = "running"
    TIMED_OUT = "timed out"
    SKIPPED = "skipped"


def classify(previous: Result | None, current: Result) -> Verdict | None:
    """The meaning of `current`, given the pair's previous decisive result (None: no history).

    Time-outs, cancellations and skips say nothing about the code, so they are never the
    `previous` of a comparison, and classifying one as `current` does not look back: a pass
    after a time-out is judged against the result before the time-out, and vice versa.
    """
    if current is Result.TIMED_OUT:
        return Verdict.TIMED_OUT
    if current is Result.SKIPPED:
        return Verdict.SKIPPED
    if not current.decisive:
        return None
    if current.passed:
        return Verdict.FIXED if previous is not None and previous.broken else Verdict.PASSED
    if previous is None:
        return None  # a first failure: nothing to compare with, nobody to blame
    return Verdict.NEW_REGRESSION if previous.passed else Verdict.STILL_FAILING


FLAKY_WINDOW = 10  # the last decisive runs of a pair that the `flaky?` hint looks at
FLAKY_FLIPS = 3  # changes between pass and fail within them, on one downstream commit
FLAKY_HINT = "flaky?"


@dataclass(frozen=True)
class Run:
    """One finished run of a pair, as its history keeps it: what it ended with, what that was
    judged to mean, and the commits it ran with (None where a CI system did not say)."""

    result: Result
    verdict: Verdict | None = None
    upstream_sha: str | None = None
    downstream_sha: str | None = None

    @property
    def outcome(self) -> Result | None:
        """What the run says about the code: a flake is a pass (its re-run passed), and
        time-outs, cancellations and skips say nothing."""
        if self.verdict is Verdict.FLAKY:
            return Result.SUCCESS
        return self.result if self.result.decisive else None

    def same_inputs(self, other: Run) -> bool:
        return (
            None not in (self.upstream_sha, self.downstream_sha)
            and self.upstream_sha == other.upstream_sha
            and self.downstream_sha == other.downstream_sha
        )


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict | None
    hint: str | None = None  # `flaky?`: the verdict may be a flake's
    confirm: bool = False  # a would-be new regression to re-run before anyone is blamed


def previous_outcome(history: Sequence[Run]) -> Result | None:
    """The pair's last outcome (history oldest first), or None when it never had one."""
    return next((run.outcome for run in reversed(history) if run.outcome), None)


def judge(
    history: Sequence[Run], current: Run, *, confirm: bool = False, replaced: Run | None = None
) -> Judgement:
    """The meaning of `current` against the pair's history (oldest first).

    With `confirm`, a would-be new regression gets no verdict yet: it is re-run first. Without
    it, a verdict that flips the pair's state gets the `flaky?` hint when its history says the
    downstream flips between pass and fail on unchanged inputs.

    `replaced`: the result of the same run that a re-run in the CI replaces (CONTRACT §7). A new
    regression that passes when re-run was a flake; a pass that fails when re-run is judged as
    any failure, with the hint, since the same commits passed.
    """
    verdict = classify(previous_outcome(history), current.result)
    if replaced is not None:
        if replaced.verdict is Verdict.NEW_REGRESSION and current.result.passed:
            return Judgement(Verdict.FLAKY)
        flipped = None not in (replaced.outcome, current.outcome) and (
            replaced.outcome != current.outcome
        )
        flips_state = verdict in (Verdict.NEW_REGRESSION, Verdict.FIXED)
        return Judgement(verdict, FLAKY_HINT if flipped and flips_state else None)
    if verdict is Verdict.NEW_REGRESSION and confirm:
        return Judgement(None, confirm=True)
    if verdict in (Verdict.NEW_REGRESSION, Verdict.FIXED) and looks_flaky(history, current):
        return Judgement(verdict, FLAKY_HINT)
    return Judgement(verdict)


def looks_flaky(history: Sequence[Run], current: Run) -> bool:
    """Within the last FLAKY_WINDOW decisive runs, the same commits both passed and failed, or
    the outcome changed at least FLAKY_FLIPS times while the downstream's own commit did not."""
    runs = [run for run in (*history, current) if run.outcome][-FLAKY_WINDOW:]
    if not runs or runs[-1] is not current:
        return False
    if any(run.same_inputs(current) and run.outcome != current.outcome for run in runs):
        return True
    flips = sum(
        earlier.outcome != later.outcome
        and earlier.downstream_sha is not None
        and earlier.downstream_sha == later.downstream_sha
        for earlier, later in pairwise(runs)
    )
    return flips >= FLAKY_FLIPS


@dataclass(frozen=True)
class Confirmation:
    """What a confirming re-run's result settles: a verdict, or the next re-run. A verdict of
    None with a reason: it could not be settled, and nobody is blamed."""

    verdict: Verdict | None = None
    next_step: Step | None = None
    reason: str | None = None


def after_rerun(
    step: Step, result: Result, *, upstream_sha: str | None, last_passed_sha: str | None
) -> Confirmation:
    """The next move of a confirmation after one re-run ended with `result`.

    Passing again on the same commits makes the failure a flake; failing again, the pair is
    re-run against the upstream commit it last passed with: passing there confirms a new
    regression, failing there too makes it already broken (the downstream's own problem).
    """
    if not result.decisive:
        return Confirmation(reason=f"not confirmed: the re-run ended {result.value}")
    if step is Step.AGAIN:
        if result.passed:
            return Confirmation(Verdict.FLAKY)
        if last_passed_sha is not None and last_passed_sha == upstream_sha:
            return Confirmation(Verdict.ALREADY_BROKEN)  # it passed with this very commit
        if last_passed_sha is None:
            return Confirmation(
                reason="not confirmed: the upstream commit it passed with is unknown"
            )
        return Confirmation(next_step=Step.LAST_PASSED)
    return Confirmation(Verdict.NEW_REGRESSION if result.passed else Verdict.ALREADY_BROKEN)
