"""Culprit finding (CONTRACT §10): which commit of an upstream range first broke a downstream —
decided, not done.

A *range* is the upstream commits after the one a pair last passed with, up to the failing one,
oldest first: the commit before the first is known good, the last is known bad. `next_move`
reads the runs made so far and says which commit to run next, or gives the `Answer`. Binary
search: each run halves the commits still in question, so n commits take at most ⌈log2 n⌉ runs
when every run passes or fails. A run that says nothing (timed out, cancelled, an error) *skips*
its commit, as `git bisect skip` does: a neighbouring commit is tried instead, and the answer may
then be a range rather than one commit.

With `confirm`, a failing run counts only once the same commit fails again; when the second run
passes, the commit is taken as *good* and the answer names it as flaky — a failure that does not
repeat is not evidence that the commit broke anything (Google's flake-aware culprit finder re-runs
before it concludes; Bazel's counts any failure as bad, which blames flakes). Every run counts
against `max_runs`, a confirming one too; once they are spent, the narrowest range found is the
answer.

`conjunction.engine.bisects` stores a search, starts each run and applies the next move; nothing
here touches a database or a forge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from conjunction.results import Result

DEFAULT_MAX_RUNS = 10


class Outcome(StrEnum):
    """What one run, or one commit after its runs, says."""

    GOOD = "good"
    BAD = "bad"
    SKIP = "skip"  # it says nothing: timed out, cancelled, an error, skipped


def outcome_of(result: Result | str) -> Outcome:
    result = Result(result)
    if result is Result.SUCCESS:
        return Outcome.GOOD
    return Outcome.BAD if result is Result.FAILURE else Outcome.SKIP


@dataclass(frozen=True)
class Tried:
    """One finished run of the search: the commit and what its run said."""

    sha: str
    outcome: Outcome


@dataclass(frozen=True)
class Next:
    """Run the downstream against this commit next; `again`: to confirm its failure."""

    sha: str
    again: bool = False


class Ending(StrEnum):
    FOUND = "found"  # one commit: the first bad one
    MAX_RUNS = "max runs"  # the runs allowed were spent: the narrowest range found
    SKIPPED = "skipped"  # only commits whose runs said nothing are left: a range


@dataclass(frozen=True)
class Answer:
    """The first bad commit (`culprit`), or the narrowest range found: `suspects` are the
    commits that may hold it, oldest first, the last one known bad; `good` the newest commit known
    good (None: the one the pair last passed with)."""

    ending: Ending
    suspects: tuple[str, ...]
    good: str | None
    runs: int
    skipped: tuple[str, ...] = ()  # commits whose runs said nothing
    flaky: tuple[str, ...] = ()  # commits that failed once, then passed: taken as good

    @property
    def culprit(self) -> str | None:
        return self.suspects[0] if self.ending is Ending.FOUND else None


def verdicts(tried: Sequence[Tried], *, confirm: bool) -> tuple[dict[str, Outcome], set[str]]:
    """Each commit's outcome after its runs, and the commits taken as good though they failed
    once (flaky). A failing commit waiting for its confirming run has no outcome yet."""
    runs: dict[str, list[Outcome]] = {}
    for run in tried:
        runs.setdefault(run.sha, []).append(run.outcome)
    settled: dict[str, Outcome] = {}
    flaky: set[str] = set()
    for sha, outcomes in runs.items():
        first = outcomes[0]
        if first is not Outcome.BAD or not confirm:
            settled[sha] = first
        elif len(outcomes) > 1:
            settled[sha] = outcomes[1]
            if outcomes[1] is Outcome.GOOD:
                flaky.add(sha)
    return settled, flaky


def next_move(
    commits: Sequence[str],
    tried: Sequence[Tried] = (),
    *,
    max_runs: int = DEFAULT_MAX_RUNS,
    confirm: bool = False,
) -> Next | Answer:
    """The next commit to run, or the answer. `commits` is the range, oldest first; its last one
    is the failing commit (bad), and the commit before its first passed (good). `tried` are the
    search's runs so far, in order."""
    if not commits:
        raise ValueError("a culprit search needs at least one commit")
    settled, flaky = verdicts(tried, confirm=confirm)
    # known good below known bad: the failing commit is bad, the one before the range good
    bad = min(
        (i for i, sha in enumerate(commits) if settled.get(sha) is Outcome.BAD),
        default=len(commits) - 1,
    )
    good = max(
        (i for i, sha in enumerate(commits[:bad]) if settled.get(sha) is Outcome.GOOD),
        default=-1,
    )
    suspects = tuple(commits[good + 1 : bad + 1])
    skipped = tuple(sha for sha in suspects if settled.get(sha) is Outcome.SKIP)

    def answer(ending: Ending) -> Answer:
        return Answer(
            ending,
            suspects,
            commits[good] if good >= 0 else None,
            len(tried),
            skipped,
            tuple(sha for sha in commits if sha in flaky),
        )

    if bad == good + 1:
        return answer(Ending.FOUND)
    if len(tried) >= max_runs:
        return answer(Ending.MAX_RUNS)
    last = tried[-1] if tried else None
    if confirm and last is not None and last.sha not in settled:
        return Next(last.sha, again=True)  # its failure counts once it fails again
    middle = (good + bad) // 2
    # the middle commit, else (skipped) its nearest neighbours, alternately after and before
    for offset in range(bad - good):
        for index in (middle + offset, middle - offset) if offset else (middle,):
            if good < index < bad and commits[index] not in settled:
                return Next(commits[index])
    return answer(Ending.SKIPPED)
