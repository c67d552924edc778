"""What a pipeline ended with (`Result`) and what that means against its history (`Verdict`)."""

from __future__ import annotations

from enum import StrEnum


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
