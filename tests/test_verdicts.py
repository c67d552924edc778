"""A pair's history in, a verdict out: the classification as pure functions over plain data."""

from __future__ import annotations

import pytest

from conjunction.results import FLAKY_HINT, Judgement, Result, Run, Verdict, judge, looks_flaky

S, F, E, T, C = (
    Result.SUCCESS,
    Result.FAILURE,
    Result.ERROR,
    Result.TIMED_OUT,
    Result.CANCELLED,
)
FLAKY = Verdict.FLAKY


def runs(text: str, downstream: str | None = "d1") -> list[Run]:
    """`PF.PT` -> pass, fail, pass, time-out on one downstream commit, each on its own upstream
    commit (`.` ends nothing; it is for reading)."""
    results = {"P": S, "F": F, "E": E, "T": T, "C": C, "~": F}
    history = []
    for n, letter in enumerate(text.replace(".", "")):
        verdict = FLAKY if letter == "~" else None  # a failure whose re-run passed
        history.append(Run(results[letter], verdict, f"u{n}", downstream))
    return history


def verdict_of(text: str, current: Result, **kw: object) -> Judgement:
    history = runs(text)
    return judge(history, Run(current, upstream_sha="new", downstream_sha="d1"), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("history", "current", "expected"),
    [
        ("", S, Judgement(Verdict.PASSED)),
        ("", F, Judgement(None)),  # a first failure: nobody to blame
        ("P", F, Judgement(Verdict.NEW_REGRESSION)),
        ("P", E, Judgement(Verdict.NEW_REGRESSION)),
        ("F", F, Judgement(Verdict.STILL_FAILING)),
        ("F", S, Judgement(Verdict.FIXED)),
        ("PT", F, Judgement(Verdict.NEW_REGRESSION)),  # time-outs are never compared
        ("FTC", S, Judgement(Verdict.FIXED)),
        ("P", T, Judgement(Verdict.TIMED_OUT)),
        ("P", Result.SKIPPED, Judgement(Verdict.SKIPPED)),
        ("P", C, Judgement(None)),
        ("F~", F, Judgement(Verdict.NEW_REGRESSION)),  # a flake was a pass
        ("~", S, Judgement(Verdict.PASSED)),
        # alternating on one downstream commit: the hint, never a silent blame
        ("PFP", F, Judgement(Verdict.NEW_REGRESSION, FLAKY_HINT)),
        ("PFPF", S, Judgement(Verdict.FIXED, FLAKY_HINT)),
        ("PFPFPP", S, Judgement(Verdict.PASSED)),  # no flip now: nothing to doubt
        ("PFPFPFF", F, Judgement(Verdict.STILL_FAILING)),
        ("PF", S, Judgement(Verdict.FIXED)),  # two flips are a breakage and its fix
        ("PFPFPPPPPPPP", F, Judgement(Verdict.NEW_REGRESSION)),  # old flips left the window
    ],
)
def test_history_to_verdict(history: str, current: Result, expected: Judgement) -> None:
    assert verdict_of(history, current) == expected


def test_with_confirm_a_would_be_regression_is_re_run_first() -> None:
    assert verdict_of("P", F, confirm=True) == Judgement(None, confirm=True)
    assert verdict_of("PFP", F, confirm=True) == Judgement(None, confirm=True)
    assert verdict_of("F", F, confirm=True) == Judgement(Verdict.STILL_FAILING)
    assert verdict_of("F", S, confirm=True) == Judgement(Verdict.FIXED)


def test_flips_count_only_on_one_downstream_commit() -> None:
    moving = [Run(result, None, f"u{n}", f"d{n}") for n, result in enumerate([S, F, S])]
    assert not looks_flaky(moving, Run(F, None, "u3", "d3"))
    unknown = runs("PFP", downstream=None)
    assert not looks_flaky(unknown, Run(F, None, "u3", None))
    assert looks_flaky(runs("PFP"), Run(F, None, "u3", "d1"))


def test_the_same_commits_passing_and_failing_is_flaky_at_once() -> None:
    history = [Run(S, None, "u1", "d1")]
    assert looks_flaky(history, Run(F, None, "u1", "d1"))
    assert not looks_flaky(history, Run(F, None, "u2", "d1"))
    assert not looks_flaky([Run(S, None, "u1", None)], Run(F, None, "u1", None))


def test_a_break_a_fix_and_a_break_again_already_raise_the_question() -> None:
    assert looks_flaky(runs("PPPPPPPPFP"), Run(F, None, "new", "d1"))
