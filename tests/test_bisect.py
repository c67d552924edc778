"""Culprit finding's pure core (`conjunction.bisect`): the binary search, skips, the runs allowed
and flakes with `confirm: true` (CONTRACT §10)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from conjunction.bisect import Answer, Ending, Next, Outcome, Tried, next_move, outcome_of
from conjunction.results import Result

COMMITS = [f"c{n}" for n in range(8)]

Oracle = Callable[[str, int], Outcome]  # (commit, how many times it ran before) -> outcome


def search(
    commits: list[str], oracle: Oracle, *, max_runs: int = 10, confirm: bool = False
) -> tuple[Answer, list[Tried]]:
    """Run the search to its answer against an oracle standing for the CI."""
    tried: list[Tried] = []
    while True:
        move = next_move(commits, tried, max_runs=max_runs, confirm=confirm)
        if isinstance(move, Answer):
            return move, tried
        assert move.again == (confirm and bool(tried) and tried[-1].sha == move.sha)
        ran = sum(run.sha == move.sha for run in tried)
        tried.append(Tried(move.sha, oracle(move.sha, ran)))


def broken_from(commits: list[str], culprit: int) -> Oracle:
    return lambda sha, _: Outcome.BAD if commits.index(sha) >= culprit else Outcome.GOOD


@pytest.mark.parametrize("culprit", range(8))
def test_eight_commits_take_three_runs_wherever_the_culprit_is(culprit: int) -> None:
    answer, tried = search(COMMITS, broken_from(COMMITS, culprit))
    assert answer.ending is Ending.FOUND
    assert answer.culprit == COMMITS[culprit]
    assert answer.suspects == (COMMITS[culprit],)
    assert answer.good == (COMMITS[culprit - 1] if culprit else None)
    assert len(tried) <= 3 and answer.runs == len(tried)
    assert COMMITS[-1] not in [run.sha for run in tried], "the failing commit is known bad"


@pytest.mark.parametrize("size", [2, 3, 5, 16, 17, 100, 1000])
def test_at_most_log2_n_runs(size: int) -> None:
    commits = [f"c{n}" for n in range(size)]
    for culprit in {0, 1, size // 3, size // 2, size - 2, size - 1}:
        answer, tried = search(commits, broken_from(commits, culprit), max_runs=100)
        assert answer.culprit == commits[culprit]
        assert len(tried) <= math.ceil(math.log2(size))


def test_a_range_of_one_needs_no_run() -> None:
    assert next_move(["c0"]) == Answer(Ending.FOUND, ("c0",), None, 0)


def test_the_first_run_is_the_middle() -> None:
    assert next_move(COMMITS) == Next("c3")
    assert next_move(COMMITS, [Tried("c3", Outcome.GOOD)]) == Next("c5")
    assert next_move(COMMITS, [Tried("c3", Outcome.BAD)]) == Next("c1")


def test_a_skipped_step_tries_a_neighbour() -> None:
    # c3 times out: c4 is tried instead, then the search goes on around the hole
    assert next_move(COMMITS, [Tried("c3", Outcome.SKIP)]) == Next("c4")

    def oracle(sha: str, _: int) -> Outcome:
        if sha == "c3":
            return Outcome.SKIP
        return Outcome.BAD if COMMITS.index(sha) >= 5 else Outcome.GOOD

    answer, tried = search(COMMITS, oracle)
    assert answer.culprit == "c5"
    assert [run.sha for run in tried] == ["c3", "c4", "c5"]


def test_skips_that_leave_no_choice_give_a_range() -> None:
    def oracle(sha: str, _: int) -> Outcome:
        if sha in ("c2", "c3"):
            return Outcome.SKIP
        return Outcome.BAD if COMMITS.index(sha) >= 3 else Outcome.GOOD

    answer, _ = search(COMMITS, oracle)
    assert answer.ending is Ending.SKIPPED
    assert answer.culprit is None
    assert (answer.good, answer.suspects, answer.skipped) == (
        "c1",
        ("c2", "c3", "c4"),
        ("c2", "c3"),
    )


def test_every_step_skipped_leaves_the_whole_range() -> None:
    answer, tried = search(COMMITS, lambda sha, _: Outcome.SKIP)
    assert answer.ending is Ending.SKIPPED
    assert answer.suspects == tuple(COMMITS) and answer.good is None
    assert len(tried) == 7


def test_max_runs_reached_gives_the_narrowest_range() -> None:
    commits = [f"c{n}" for n in range(1000)]
    answer, tried = search(commits, broken_from(commits, 613), max_runs=4)
    assert answer.ending is Ending.MAX_RUNS
    assert len(tried) == 4
    assert "c613" in answer.suspects and len(answer.suspects) <= 1000 // 2**4 + 1
    assert answer.suspects[-1] != "c999", "the range narrowed"


def test_a_thousand_commits_take_ten_runs() -> None:
    commits = [f"c{n}" for n in range(1000)]
    answer, tried = search(commits, broken_from(commits, 777))
    assert (answer.ending, answer.culprit, len(tried)) == (Ending.FOUND, "c777", 10)


def test_with_confirm_a_failing_step_runs_again_before_it_counts() -> None:
    assert next_move(COMMITS, [Tried("c3", Outcome.BAD)], confirm=True) == Next("c3", again=True)
    answer, tried = search(COMMITS, broken_from(COMMITS, 2), confirm=True)
    assert answer.culprit == "c2"
    assert [run.sha for run in tried] == ["c3", "c3", "c1", "c2", "c2"]
    assert answer.flaky == ()


def test_with_confirm_a_flaky_step_counts_as_good_and_is_named() -> None:
    def oracle(sha: str, ran: int) -> Outcome:
        if sha == "c3" and ran == 0:
            return Outcome.BAD  # a flake: it passes when run again
        return Outcome.BAD if COMMITS.index(sha) >= 6 else Outcome.GOOD

    answer, tried = search(COMMITS, oracle, confirm=True)
    assert answer.culprit == "c6"
    assert answer.flaky == ("c3",)
    assert [run.sha for run in tried][:2] == ["c3", "c3"]


def test_without_confirm_a_flake_is_blamed() -> None:
    def oracle(sha: str, ran: int) -> Outcome:
        return Outcome.BAD if sha == "c3" and ran == 0 else broken_from(COMMITS, 6)(sha, ran)

    answer, _ = search(COMMITS, oracle)
    assert answer.culprit == "c3"


def test_what_each_result_says() -> None:
    assert outcome_of(Result.SUCCESS) is Outcome.GOOD
    assert outcome_of("failure") is Outcome.BAD
    for result in (Result.ERROR, Result.CANCELLED, Result.TIMED_OUT, Result.SKIPPED):
        assert outcome_of(result) is Outcome.SKIP


def test_an_empty_range_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one commit"):
        next_move([])
