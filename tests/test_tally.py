"""One count and one set of words for an upstream commit's downstream runs (`conjunction.tally`):
its direct downstreams, the whole tree in brackets when it differs; a failure being confirmed is
`confirming`, never failed; a green status beside a neutral check says why in its words."""

from __future__ import annotations

from datetime import UTC, datetime

from conjunction.engine.reports import aggregate
from conjunction.models import Event
from conjunction.results import Result, Verdict
from conjunction.runs import Step
from conjunction.tally import Count, Row, Tally, count_of, describe, outcome, rows_below, shown_as

S, F = Result.SUCCESS, Result.FAILURE
SOURCE = "build"


def run(
    number: int,
    result: Result | None,
    verdict: Verdict | None = None,
    *,
    parent: str = SOURCE,
    confirming: Step | None = None,
) -> Event:
    return Event(
        id=f"run{number}",
        kind="trigger",
        project=f"github.com/acme/p{number}",
        parent_id=parent,
        result=result,
        change=verdict,
        confirming=confirming,
    )


def rows(*events: Event, required: bool = True) -> list[Row]:
    return [
        Row(event, event.project, (), required, None, direct=event.parent_id == SOURCE)
        for event in events
    ]


def test_direct_downstreams_are_counted_and_the_tree_follows_in_brackets() -> None:
    chain = rows(
        run(1, S, Verdict.PASSED),
        run(2, S, Verdict.PASSED),
        run(3, S, Verdict.PASSED, parent="run1"),
        run(4, F, Verdict.NEW_REGRESSION, parent="run1"),
    )
    count = count_of(chain)
    assert count == Count(direct=Tally(2, 2), tree=Tally(3, 4))
    assert count.words() == "2 of 2 downstream projects passed (3 of 4 in the tree)"
    assert count.short() == "2 of 2 passed (3 of 4 in the tree)"
    assert describe(chain) == (
        "2 of 2 downstream projects passed (3 of 4 in the tree), 1 new regression"
    )


def test_without_a_deeper_run_there_are_no_brackets() -> None:
    assert count_of(rows(run(1, S), run(2, None))).words() == "1 of 2 downstream projects passed"


def test_skipped_runs_are_not_among_those_that_ran_and_are_counted_after() -> None:
    fallout = rows(run(1, F, Verdict.NEW_REGRESSION), run(2, Result.SKIPPED, parent="run1"))
    assert describe(fallout) == "0 of 1 downstream projects passed, 1 new regression, 1 skipped"
    assert describe(rows(run(1, Result.SKIPPED))) == (
        "no downstream projects ran, 1 skipped; none blamed on this commit"
    )


def test_a_failure_being_confirmed_is_confirming_never_failed() -> None:
    confirming = run(1, F, confirming=Step.AGAIN)
    shown = rows(confirming, run(2, S, Verdict.PASSED))
    assert shown_as(confirming) == "confirming"
    assert count_of(shown).direct == Tally(passed=1, total=2, running=0, confirming=1)
    assert count_of(shown).short() == "1 of 2 passed, 1 confirming"
    assert outcome(shown) == ("pending", None)
    assert describe(shown) == "1 of 2 downstream projects passed, confirming 1 failure"
    assert "failed" not in describe(shown)


def test_what_each_run_is_shown_as() -> None:
    assert shown_as(run(1, None)) == "running"
    assert shown_as(run(1, S)) == "passed"
    assert shown_as(run(1, F)) == "failed"
    assert shown_as(run(1, Result.TIMED_OUT)) == "timed out"
    assert shown_as(run(1, F, Verdict.STILL_FAILING)) == "still failing"


def test_a_green_status_and_a_neutral_check_say_why_in_the_same_words() -> None:
    still = rows(run(1, S, Verdict.PASSED), run(2, F, Verdict.STILL_FAILING))
    report = aggregate(still, "https://conjunction.test/events/1")
    assert (report.state, report.conclusion) == ("success", "neutral")
    assert (
        report.description
        == report.title
        == ("1 of 2 downstream projects passed, 1 still failing; none blamed on this commit")
    )
    blamed = aggregate(
        rows(run(1, S, Verdict.PASSED), run(2, F, Verdict.NEW_REGRESSION)), "https://t/e/1"
    )
    assert (blamed.state, blamed.conclusion) == ("failure", "failure")
    assert (
        blamed.description
        == blamed.title
        == ("1 of 2 downstream projects passed, 1 new regression")
    )
    optional = rows(run(1, S, Verdict.PASSED), run(2, F, Verdict.NEW_REGRESSION), required=False)
    assert outcome(optional) == ("success", "neutral")
    assert describe(optional).endswith("1 new regression; none blamed on this commit")


def test_the_rows_below_a_commit_are_its_whole_tree_without_confirming_reruns() -> None:
    source = Event(id=SOURCE, kind="build", project="github.com/acme/lib")
    first = run(1, F, confirming=Step.AGAIN)
    rerun = run(2, None, parent=SOURCE)
    rerun.confirms_id = first.id
    deeper = run(3, None, parent="run1")
    for number, event in enumerate((first, rerun, deeper)):
        event.created_at = datetime.fromtimestamp(number, UTC)
    below = rows_below(source, [first, rerun, deeper], lambda name: name.endswith("p1"))
    assert [(row.event.id, row.direct, row.required) for row in below] == [
        ("run1", True, True),
        ("run3", False, False),
    ]
