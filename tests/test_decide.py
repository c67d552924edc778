"""`conjunction.verdicts.decide`: what one final result sets off, from a plain snapshot — no
database, no forge. One test per path a finished pipeline can take."""

from __future__ import annotations

from conjunction.results import Result, Run, Verdict
from conjunction.runs import Step
from conjunction.verdicts import Confirming, Decision, Finished, FollowUp, Rerun, decide

S, F, T = Result.SUCCESS, Result.FAILURE, Result.TIMED_OUT
UP, LAST = "u" * 40, "l" * 40
PASSED = [Run(S, Verdict.PASSED, upstream_sha=LAST, downstream_sha="d")]


def finished(result: Result, **values: object) -> Finished:
    return Finished("e", Run(result, upstream_sha=UP, downstream_sha="d"), **values)  # type: ignore[arg-type]


def follow(*kinds: FollowUp) -> frozenset[FollowUp]:
    return frozenset(kinds)


def test_a_pass_continues_the_chain_and_settles_the_issue() -> None:
    decision = decide(finished(S, history=PASSED, has_downstreams=True))
    assert decision == Decision(
        "e",
        Verdict.PASSED,
        follow=follow(FollowUp.CHAIN, FollowUp.ISSUES, FollowUp.REPORTS),
        chain_from="e",
    )


def test_a_new_regression_looks_up_what_changed_before_its_issue() -> None:
    decision = decide(finished(F, history=PASSED))
    assert (decision.verdict, decision.follow) == (
        Verdict.NEW_REGRESSION,
        follow(FollowUp.CHANGES, FollowUp.REPORTS),
    )


def test_a_time_out_is_only_reported() -> None:
    decision = decide(finished(T, history=PASSED))
    assert (decision.verdict, decision.follow) == (Verdict.TIMED_OUT, follow(FollowUp.REPORTS))


def test_a_would_be_new_regression_to_confirm_is_re_run_first() -> None:
    decision = decide(
        finished(F, history=PASSED, confirm=True, last_passed_sha=LAST, last_passed_build_id="b0")
    )
    assert decision == Decision(
        "e",
        settles=False,
        rerun=Rerun(Step.AGAIN),
        last_passed=(LAST, "b0"),
        follow=follow(FollowUp.REPORTS),
    )


def confirming(waits_for: Step | None) -> Confirming:
    return Confirming("failure", F, waits_for, LAST, "b0")


def test_a_confirming_re_run_that_fails_again_runs_against_the_last_passed_commit() -> None:
    decision = decide(finished(F, step=Step.AGAIN, confirms=confirming(Step.AGAIN)))
    assert (decision.target, decision.settles, decision.rerun) == (
        "failure",
        False,
        Rerun(Step.LAST_PASSED, LAST, "b0"),
    )


def test_a_confirming_re_run_that_passes_makes_a_flake_whose_pass_continues_the_chain() -> None:
    rerun = finished(S, step=Step.AGAIN, confirms=confirming(Step.AGAIN), has_downstreams=True)
    decision = decide(rerun)
    assert (decision.target, decision.verdict, decision.chain_from) == (
        "failure",
        Verdict.FLAKY,
        "e",
    )
    assert decision.follow == follow(FollowUp.CHAIN, FollowUp.ISSUES, FollowUp.REPORTS)


def test_passing_at_the_last_passed_commit_confirms_the_regression() -> None:
    decision = decide(finished(S, step=Step.LAST_PASSED, confirms=confirming(Step.LAST_PASSED)))
    assert (decision.target, decision.verdict, decision.chain_from) == (
        "failure",
        Verdict.NEW_REGRESSION,
        "failure",
    )
    assert FollowUp.CHANGES in decision.follow


def test_a_late_re_run_of_a_settled_confirmation_changes_nothing_but_its_row() -> None:
    decision = decide(finished(S, step=Step.AGAIN, confirms=confirming(None)))
    assert decision == Decision("failure", settles=False, follow=follow(FollowUp.REPORTS))


def test_a_re_run_in_the_ci_that_passes_after_a_new_regression_is_a_flake() -> None:
    replaced = Run(F, Verdict.NEW_REGRESSION)
    decision = decide(finished(S, history=PASSED, replaced=replaced, confirm=True))
    assert (decision.verdict, decision.rerun) == (Verdict.FLAKY, None)
    assert FollowUp.ISSUES in decision.follow  # the issue is closed


def test_a_re_run_in_the_ci_that_fails_after_a_pass_is_a_regression_that_may_be_a_flake() -> None:
    replaced = Run(S, Verdict.PASSED)
    decision = decide(finished(F, history=PASSED, replaced=replaced))
    assert (decision.verdict, decision.hint) == (Verdict.NEW_REGRESSION, "flaky?")
