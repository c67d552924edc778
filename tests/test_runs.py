"""The run model's table of trigger states (conjunction/runs.py): every move it allows, and that
every other one is refused."""

from __future__ import annotations

import pytest

from conjunction.runs import TRANSITIONS, InvalidTransition, Step, TriggerState, move

S = TriggerState
ALLOWED = {
    (S.PLANNED, S.SENDING),  # the runner is asked to start it
    (S.PLANNED, S.FINISHED),  # a result before the start was recorded
    (S.PLANNED, S.TIMED_OUT),
    (S.PLANNED, S.SKIPPED),  # a loop, the depth limit, an upstream that failed
    (S.PLANNED, S.SUPERSEDED),  # a newer success of the same upstream and ref came first
    (S.SENDING, S.STARTED),
    (S.SENDING, S.PLANNED),  # held back by pacing: nothing started
    (S.SENDING, S.FINISHED),
    (S.SENDING, S.TIMED_OUT),
    (S.STARTED, S.FINISHED),
    (S.STARTED, S.TIMED_OUT),
    (S.FINISHED, S.FINISHED),  # a re-run in the CI replaces the result
    (S.TIMED_OUT, S.FINISHED),  # a late result replaces the time-out
}


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("new", list(S))
def test_each_move_of_a_trigger(current: TriggerState, new: TriggerState) -> None:
    if (current, new) in ALLOWED:
        assert move(current, new) is new
    else:
        with pytest.raises(InvalidTransition):
            move(current, new)


def test_the_table_holds_every_state_and_only_skipped_and_superseded_are_ends() -> None:
    assert set(TRANSITIONS) == set(S)
    assert {state for state, moves in TRANSITIONS.items() if not moves} == {
        S.SKIPPED,
        S.SUPERSEDED,
    }
    assert {state for state in S if state.waiting} == {S.PLANNED, S.SENDING, S.STARTED}


def test_the_step_a_ci_is_sent() -> None:
    assert [step.sent for step in Step] == [
        None,
        "confirm",
        "confirm",
        "baseline",
        "retry",
        "bisect",
    ]
