"""What a downstream's final result sets off — decided, not done.

`decide` takes a plain snapshot of one finished trigger event (its pair's history, the result a
re-run in the CI replaces, the failure a confirming re-run confirms) and returns a `Decision`:
which event gets which verdict, the confirming re-run to start, and the follow-ups to queue.
`conjunction.engine.results` loads the snapshot and applies the decision; nothing here touches a
database or a forge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from conjunction.results import Result, Run, Verdict, after_rerun, judge
from conjunction.runs import Step


class FollowUp(StrEnum):
    """A job queued after a verdict (`conjunction.engine.followups`)."""

    CHAIN = "chain"  # the downstream's own downstreams: started after a pass, else its fallout
    CHANGES = "changes"  # what changed since the pair last passed; the issue follows it
    ISSUES = "issues"  # open, comment on or close the breakage issue; tell the channels
    REPORTS = "reports"  # the aggregate on the upstream commit and on the chain's origin


@dataclass(frozen=True)
class Confirming:
    """The failure a confirming re-run confirms, as it stands."""

    event_id: str
    result: Result
    waits_for: Step | None  # the re-run it waits for; None once settled
    last_passed_sha: str | None
    last_passed_build_id: str | None


@dataclass(frozen=True)
class Finished:
    """One trigger event that has just been given its final result."""

    event_id: str
    current: Run  # its result and the commits it ran with
    history: Sequence[Run] = ()  # the pair's runs before it, oldest first
    replaced: Run | None = None  # the result a re-run in the CI replaces
    confirm: bool = False  # the downstream asked to confirm failures (`confirm: true`)
    has_downstreams: bool = False
    # what the pair last passed with (asked for when a failure may need confirming)
    last_passed_sha: str | None = None
    last_passed_build_id: str | None = None
    # a confirming re-run: its step and the failure it confirms
    step: Step = Step.FIRST
    confirms: Confirming | None = None


@dataclass(frozen=True)
class Rerun:
    """A confirming re-run to start: against `upstream_sha`, as `upstream_build_id` built it
    (None: against the upstream success's own commit)."""

    step: Step
    upstream_sha: str | None = None
    upstream_build_id: str | None = None


@dataclass(frozen=True)
class Decision:
    target: str  # the event whose verdict this settles
    verdict: Verdict | None = None
    hint: str | None = None
    reason: str | None = None  # kept as it was when None
    settles: bool = True  # False: the target's verdict waits (a confirmation under way)
    rerun: Rerun | None = None
    # a confirmation begins: what the pair last passed with (upstream commit, its build)
    last_passed: tuple[str | None, str | None] | None = None
    follow: frozenset[FollowUp] = field(default_factory=frozenset)
    chain_from: str | None = None  # the run whose pass continues the chain (a flake's re-run)


def decide(finished: Finished) -> Decision:
    """What one final result means and sets off."""
    if finished.confirms is not None:
        return _rerun_ended(finished, finished.confirms)
    judgement = judge(
        finished.history,
        finished.current,
        confirm=finished.confirm and finished.replaced is None,
        replaced=finished.replaced,
    )
    if judgement.confirm:
        return Decision(
            finished.event_id,
            settles=False,
            rerun=Rerun(Step.AGAIN),
            last_passed=(finished.last_passed_sha, finished.last_passed_build_id),
            follow=frozenset({FollowUp.REPORTS}),
        )
    return Decision(
        finished.event_id,
        judgement.verdict,
        judgement.hint,
        follow=after_verdict(finished.current.result, judgement.verdict, finished.has_downstreams),
        chain_from=finished.event_id,
    )


def _rerun_ended(finished: Finished, failure: Confirming) -> Decision:
    """A confirming re-run ended: the failure's verdict, or the next re-run."""
    if failure.waits_for is None or failure.waits_for != finished.step:
        # settled already (a late result after a time-out): its row only
        return Decision(failure.event_id, settles=False, follow=frozenset({FollowUp.REPORTS}))
    settled = after_rerun(
        finished.step,
        finished.current.result,
        upstream_sha=finished.current.upstream_sha,
        last_passed_sha=failure.last_passed_sha,
    )
    if settled.next_step is not None:
        rerun = Rerun(settled.next_step, failure.last_passed_sha, failure.last_passed_build_id)
        return Decision(
            failure.event_id, settles=False, rerun=rerun, follow=frozenset({FollowUp.REPORTS})
        )
    flaky = settled.verdict is Verdict.FLAKY
    return Decision(
        failure.event_id,
        settled.verdict,
        reason=settled.reason,
        follow=after_verdict(failure.result, settled.verdict, finished.has_downstreams),
        chain_from=finished.event_id if flaky else failure.event_id,
    )


def after_verdict(
    result: Result, verdict: Verdict | None, has_downstreams: bool
) -> frozenset[FollowUp]:
    """The follow-ups of a final verdict: the next link of the chain; what changed since the
    pair last passed when it is broken (not a flake), which its issue then follows; else its
    issue; and the reports its row is on."""
    follow = {FollowUp.REPORTS}
    if has_downstreams:
        follow.add(FollowUp.CHAIN)
    if result.broken and verdict is not Verdict.FLAKY:
        follow.add(FollowUp.CHANGES)
    elif result.decisive or verdict is Verdict.FLAKY:
        follow.add(FollowUp.ISSUES)
    return frozenset(follow)
