"""The engine's decisions as pure functions over plain data: no database, no forge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from conjunction.config.repo_config import Upstream
from conjunction.engine.issues import Action, issue_action
from conjunction.engine.matching import FinishedPipeline, Waiting, match_trigger
from conjunction.engine.planning import select_downstreams
from conjunction.engine.reports import aggregate
from conjunction.engine.subscriptions import Candidate
from conjunction.engine_api import UpstreamSuccess
from conjunction.models import Event, utcnow
from conjunction.results import Result, Verdict, classify
from conjunction.tally import Row

LIB = "github.com/acme/lib"
S, F, E, T = Result.SUCCESS, Result.FAILURE, Result.ERROR, Result.TIMED_OUT


@pytest.mark.parametrize(
    ("previous", "current", "verdict"),
    [
        (None, S, Verdict.PASSED),
        (S, S, Verdict.PASSED),
        (F, S, Verdict.FIXED),
        (E, S, Verdict.FIXED),
        (S, F, Verdict.NEW_REGRESSION),
        (S, E, Verdict.NEW_REGRESSION),
        (F, F, Verdict.STILL_FAILING),
        (None, F, None),
        (S, T, Verdict.TIMED_OUT),
        (F, T, Verdict.TIMED_OUT),
        (S, Result.SKIPPED, Verdict.SKIPPED),
        (S, Result.CANCELLED, None),
    ],
)
def test_classify(previous: Result | None, current: Result, verdict: Verdict | None) -> None:
    assert classify(previous, current) == verdict


def candidate(name: str, **spec: Any) -> Candidate:
    return Candidate(name.lower(), name, Upstream(project=LIB, **spec))


def select(success: UpstreamSuccess, *candidates: Candidate, **kw: Any) -> list[tuple[str, Any]]:
    options: dict[str, Any] = {
        "default_branch": "main",
        "chain": [LIB.lower()],
        "already": set(),
        "depth": 1,
        "max_depth": 5,
    }
    chosen = select_downstreams(success, candidates, **(options | kw))
    return [(choice.name, choice.skip_reason) for choice in chosen]


def test_selection_follows_filters_and_takes_each_downstream_once() -> None:
    success = UpstreamSuccess(LIB, "a" * 40, "main", pipeline="CI", changed_paths=["docs/x.md"])
    assert select(
        success,
        candidate("github.com/a/one"),
        candidate("github.com/a/one", pipelines=["CI"]),  # listed twice: one trigger
        candidate("github.com/a/dev", branches=["dev"]),
        candidate("github.com/a/rel", pipelines=["Release"]),
        candidate("github.com/a/src", paths=["src/**"]),
        candidate("github.com/a/docs", paths=["docs/"]),
    ) == [("github.com/a/one", None), ("github.com/a/docs", None)]


def test_selection_records_loops_and_depth_and_skips_what_already_ran() -> None:
    success = UpstreamSuccess(LIB, "a" * 40, None)  # no ref: the default branch
    assert select(
        success,
        candidate("github.com/a/lib2"),
        candidate("github.com/a/done"),
        chain=[LIB.lower(), "github.com/a/lib2"],
        already={"github.com/a/done"},
    ) == [("github.com/a/lib2", "loop: github.com/a/lib2 is already in this chain")]
    assert select(success, candidate("github.com/a/deep"), depth=6) == [
        ("github.com/a/deep", "chain longer than CONJUNCTION_MAX_DEPTH (5)")
    ]


SENT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def pending(
    event_id: str,
    run_id: str | None = None,
    *,
    workflow: str | None = "conjunction.yml",
    sent: datetime | None = SENT,
) -> Waiting:
    event: Any = SimpleNamespace(id=event_id, run_id=run_id, result=None, sending_at=sent)
    return Waiting(event, workflow, "main")


def run(ref: str = "main", **values: Any) -> FinishedPipeline:
    return FinishedPipeline("github.com/acme/app", "b" * 40, ref, Result.SUCCESS, **values)


def dispatched(**values: Any) -> FinishedPipeline:
    """A run of a workflow_dispatch that named no event, created a minute after SENT."""
    fields = {
        "started_by": "workflow_dispatch",
        "workflow": "conjunction.yml",
        "created_at": SENT + timedelta(minutes=1),
        **values,
    }
    return run(**fields)


def test_a_finished_run_answers_only_the_trigger_it_is_tied_to() -> None:
    first, second, started = pending("1" * 32), pending("2" * 32), pending("3" * 32, "77")
    triggers = [first, second, started]
    assert match_trigger(triggers, run(run_id="77")) is started.event
    named = run(title=f"Conjunction {'2' * 32}", started_by="push")
    assert match_trigger(triggers, named) is second.event
    # another app's status, a coverage check suite, a push build: never a trigger's result
    for started_by in ("unknown", "push", "pull_request", "dispatch"):
        assert match_trigger(triggers, run(started_by=started_by)) is None


def test_a_dispatch_that_returned_no_run_id_is_answered_by_the_run_that_fits_it_alone() -> None:
    only = pending("1" * 32)
    assert match_trigger([only], dispatched()) is only.event
    # created before the dispatch was sent, another workflow, another ref, another kind
    assert match_trigger([only], dispatched(created_at=SENT - timedelta(minutes=1))) is None
    assert match_trigger([only], dispatched(workflow="ci.yml")) is None
    assert match_trigger([only], dispatched(ref="dependabot/pip/x")) is None
    assert match_trigger([only], dispatched(started_by="repository_dispatch")) is None
    # two triggers it could answer: which one is unknowable, so neither
    assert match_trigger([only, pending("2" * 32)], dispatched()) is None
    # a repository_dispatch names no workflow
    plain = pending("4" * 32, workflow=None)
    assert match_trigger([plain], dispatched(started_by="repository_dispatch")) is plain.event
    assert match_trigger([plain], dispatched()) is None


def test_issue_actions() -> None:
    assert issue_action(F, Verdict.NEW_REGRESSION, is_open=False) is Action.OPEN
    assert issue_action(F, Verdict.STILL_FAILING, is_open=False) is None
    assert issue_action(F, None, is_open=False) is None  # never passed: nobody to blame
    assert issue_action(E, Verdict.STILL_FAILING, is_open=True) is Action.COMMENT
    assert issue_action(S, Verdict.FIXED, is_open=True) is Action.CLOSE
    assert issue_action(S, Verdict.PASSED, is_open=False) is None
    assert issue_action(T, Verdict.TIMED_OUT, is_open=True) is None


def row(result: Result | None, verdict: Verdict | None = None, required: bool = True) -> Row:
    event = Event(
        id="e",
        kind="trigger",
        project="github.com/acme/x",
        result=result,
        change=verdict,
    )
    return Row(event, "github.com/acme/x", owners=[], required=required, compare_url=None)


P, NR, SF = Verdict.PASSED, Verdict.NEW_REGRESSION, Verdict.STILL_FAILING


@pytest.mark.parametrize(
    ("rows", "state", "conclusion", "description"),
    [
        ([row(S, P), row(None)], "pending", None, "1 of 2 downstream projects passed, 1 running"),
        (
            [row(S, P), row(F, NR)],
            "failure",
            "failure",
            "1 of 2 downstream projects passed, 1 new regression",
        ),
        (
            [row(S, P), row(F, NR, required=False)],
            "success",
            "neutral",
            "1 of 2 downstream projects passed, 1 new regression; none blamed on this commit",
        ),
        (
            [row(F, SF), row(F), row(E), row(T, Verdict.TIMED_OUT)],
            "success",
            "neutral",
            "0 of 4 downstream projects passed, 1 still failing, 1 failed, 1 error, 1 timed out; "
            "none blamed on this commit",
        ),
        (
            [row(F, Verdict.FLAKY), row(F, Verdict.ALREADY_BROKEN), row(S, Verdict.FIXED)],
            "success",
            "neutral",
            "1 of 3 downstream projects passed, 1 already broken, 1 flaky; "
            "none blamed on this commit",
        ),
        (
            [row(S, P), row(S, P, required=False)],
            "success",
            "success",
            "2 of 2 downstream projects passed",
        ),
    ],
)
def test_aggregate_blames_only_a_required_new_regression(
    rows: list[Row], state: str, conclusion: str | None, description: str
) -> None:
    report = aggregate(rows, "https://t/e/1")
    assert (report.state, report.conclusion, report.description) == (state, conclusion, description)


def test_a_running_row_says_how_long_it_has_left() -> None:
    running = Row(
        Event(
            id="e",
            kind="trigger",
            project="github.com/acme/x",
            result=None,
            started_at=utcnow(),
        ),
        "github.com/acme/x",
        owners=[],
        required=True,
        compare_url=None,
        left=180,
    )
    report = aggregate([running], "https://t/e/1")
    assert "| github.com/acme/x | ⏳ running, about 3 min left |" in report.summary
    assert report.description == "0 of 1 downstream projects passed, 1 running, about 3 min left"
