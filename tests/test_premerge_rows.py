"""The pure decisions of pre-merge runs (`conjunction.premerge`): a row per case, which downstreams
a change runs against, whether it starts by itself, and what the head commit shows."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from conjunction.config.repo_config import ConjunctionConfig, Upstream, parse_config
from conjunction.forges.gitlab.host import pipeline_variables
from conjunction.forges.webhook import placeholder_values, trigger_event
from conjunction.premerge import (
    Candidate,
    Row,
    Runs,
    Shown,
    describe,
    row_of,
    select_downstreams,
    start_refusal,
    state_of,
)
from conjunction.results import Result
from conjunction.runner import TriggerRequest
from conjunction.runs import Change
from tests.fakegithub import FakeGitHub
from tests.test_artifacts import DISPATCHES, WORKFLOW, contents, forge_on, request

OK, FAIL = Result.SUCCESS, Result.FAILURE


@pytest.mark.parametrize(
    ("runs", "row"),
    [
        (Runs(None), Row.RUNNING),
        (Runs(OK, OK, base_known=True), Row.PASSES),
        (Runs(OK), Row.PASSES),  # no baseline needed to pass
        (Runs(FAIL, OK, base_known=True), Row.BREAKS),
        (Runs(OK, FAIL, base_known=True), Row.FIXES),
        (Runs(Result.ERROR, FAIL, base_known=True), Row.ALREADY_BROKEN),
        (Runs(FAIL), Row.FAILED),  # no baseline to be had
        (Runs(FAIL, Result.TIMED_OUT, base_known=True), Row.FAILED),
        (Runs(FAIL, None, base_known=True), Row.RUNNING),  # the baseline still runs
        (Runs(OK, None, base_known=True), Row.RUNNING),
        (Runs(Result.TIMED_OUT, OK, base_known=True), Row.TIMED_OUT),
        (Runs(Result.SKIPPED), Row.SKIPPED),
        (Runs(Result.CANCELLED, OK, base_known=True), Row.SKIPPED),
        # confirm: true: a `breaks` runs once more before it counts
        (Runs(FAIL, OK, base_known=True, confirm=True), Row.RUNNING),
        (Runs(FAIL, OK, base_known=True, confirm=True, again_started=True), Row.RUNNING),
        (Runs(FAIL, OK, True, True, True, OK), Row.FLAKY),
        (Runs(FAIL, OK, True, True, True, FAIL), Row.BREAKS),
        (Runs(FAIL, FAIL, base_known=True, confirm=True), Row.ALREADY_BROKEN),
    ],
)
def test_row(runs: Runs, row: Row) -> None:
    assert row_of(runs).row is row


def test_a_breaks_to_confirm_asks_for_its_rerun_once() -> None:
    assert row_of(Runs(FAIL, OK, base_known=True, confirm=True)).run_again
    assert not row_of(Runs(FAIL, OK, True, True, again_started=True)).run_again
    assert not row_of(Runs(FAIL, OK, base_known=True)).run_again


def candidate(name: str, **spec: object) -> Candidate:
    return Candidate(
        name, name, Upstream.model_validate({"project": "github.com/acme/lib", **spec})
    )


def test_selection_needs_the_upstreams_choice_and_the_downstreams_consent() -> None:
    config = ConjunctionConfig.model_validate({"premerge": {"downstreams": ["github.com/*"]}})
    candidates = [
        candidate("github.com/acme/app"),  # same owner: consents by default
        candidate("github.com/acme/off", premerge=False),
        candidate("github.com/other/ext"),  # another owner: not unless it says so
        candidate("github.com/other/yes", premerge=True),
        candidate("gitlab.com/other/elsewhere", premerge=True),  # not selected upstream
    ]
    chosen, unknown = select_downstreams("github.com/acme/lib", config, candidates)
    assert [c.name for c in chosen] == ["github.com/acme/app", "github.com/other/yes"]
    assert unknown == []

    # by default the upstream selects those matching report.required: its own owner's
    chosen, _ = select_downstreams("github.com/acme/lib", ConjunctionConfig(), candidates)
    assert [c.name for c in chosen] == ["github.com/acme/app"]

    # a command names them by project name or last path part
    chosen, unknown = select_downstreams(
        "github.com/acme/lib", config, candidates, ["YES", "github.com/acme/app", "nope"]
    )
    assert [c.name for c in chosen] == ["github.com/acme/app", "github.com/other/yes"]
    assert unknown == ["nope"]


LIB = "github.com/acme/lib"


@pytest.mark.parametrize(
    ("change", "when", "commanded", "allowed"),
    [
        (Change(LIB, 1, "u/pull/1", "h", "b"), "members", False, True),
        (Change(LIB, 1, "u/pull/1", "h", "b"), "command", False, False),
        (Change(LIB, 1, "u/pull/1", "h", "b"), "command", True, True),
        (Change(LIB, 1, "u/pull/1", "h", "b"), "off", True, False),
        (Change(LIB, 1, "u/pull/1", "h", "b", fork=True), "members", False, False),
        (Change(LIB, 1, "u/pull/1", "h", "b", fork=True), "members", True, True),
        (Change(LIB, 1, "u/pull/1", "h", "b", state="closed"), "members", True, False),
        (Change(LIB, 1, "u/pull/1", "h", "b", state="merged"), "members", False, False),
    ],
)
def test_whether_a_change_may_start(
    change: Change, when: str, commanded: bool, allowed: bool
) -> None:
    assert (start_refusal(change, when, commanded=commanded) is None) is allowed  # type: ignore[arg-type]


def test_the_head_fails_only_for_a_required_breaks() -> None:
    breaks = Shown("github.com/other/ext", Row.BREAKS, required=False)
    passes = Shown("github.com/acme/app", Row.PASSES, required=True)
    assert state_of([breaks, passes]) == "success"
    assert state_of([Shown("a", Row.BREAKS, required=True), passes]) == "failure"
    assert state_of([Shown("a", Row.RUNNING, required=True), passes]) == "pending"
    assert state_of([Shown("a", Row.ALREADY_BROKEN, required=True)]) == "success"
    assert describe([breaks, passes, Shown("b", Row.FIXES, True)]) == (
        "2 of 3 downstream projects pass with this change, 1 breaks, 1 fixes"
    )


# -- what a pre-merge run is sent (CONTRACT §8) --

PREMERGE = {"change": "https://github.com/acme/lib/pull/7", "kind": "premerge", "step": "baseline"}


def premerge_request(**trigger: Any) -> TriggerRequest:
    return replace(
        request(**trigger),
        upstream_ref="refs/pull/7/head",
        artifacts=(),
        change=PREMERGE["change"],
        kind=PREMERGE["kind"],
        step=PREMERGE["step"],
    )


async def test_workflow_inputs_only_where_the_workflow_declares_them(
    fake_github: FakeGitHub,
) -> None:
    declared = WORKFLOW + "      conjunction_change: {required: false}\n"
    declared += "      conjunction_step: {required: false}\n"
    fake_github.expect(
        "GET",
        "/repos/acme/app/contents/.github/workflows/conjunction.yml?ref=main",
        body=contents(declared),
    )
    fake_github.expect("POST", DISPATCHES, status=204)
    await forge_on(fake_github).start_pipeline(premerge_request(workflow="conjunction.yml"))
    [call] = fake_github.calls_to("POST", DISPATCHES)
    inputs = call.body["inputs"]
    assert inputs["conjunction_change"] == PREMERGE["change"]
    assert inputs["conjunction_step"] == "baseline"
    assert "conjunction_kind" not in inputs  # not declared: GitHub would refuse it
    assert inputs["upstream_ref"] == "refs/pull/7/head"


async def test_repository_dispatch_carries_change_kind_and_step(fake_github: FakeGitHub) -> None:
    fake_github.expect("POST", "/repos/acme/app/dispatches", status=204)
    await forge_on(fake_github).start_pipeline(premerge_request())
    [call] = fake_github.calls_to("POST", "/repos/acme/app/dispatches")
    payload = call.body["client_payload"]
    assert {key: payload[key] for key in PREMERGE} == PREMERGE
    # an ordinary run is sent none of them
    fake_github.expect("POST", "/repos/acme/app/dispatches", status=204)
    await forge_on(fake_github).start_pipeline(request())
    ordinary = fake_github.calls_to("POST", "/repos/acme/app/dispatches")[-1].body
    assert not set(PREMERGE) & set(ordinary["client_payload"])


def test_gitlab_variables_and_the_webhook_body_carry_them() -> None:
    variables = {v["key"]: v["value"] for v in pipeline_variables(premerge_request())}
    assert variables["CONJUNCTION_CHANGE"] == PREMERGE["change"]
    assert (variables["CONJUNCTION_KIND"], variables["CONJUNCTION_STEP"]) == (
        "premerge",
        "baseline",
    )
    body = trigger_event(premerge_request())
    assert {key: body[key] for key in PREMERGE} == PREMERGE
    values = placeholder_values(premerge_request())
    assert {key: values[key] for key in PREMERGE} == PREMERGE
    assert placeholder_values(request())["change"] == ""


def test_the_placeholders_are_known_to_the_config() -> None:
    config = parse_config(
        "trigger:\n  webhook:\n    url: https://ci.example.com/build\n"
        "    body: {pr: '${change}', kind: '${kind}', step: '${step}'}\n"
    )
    assert config.trigger.webhook is not None
