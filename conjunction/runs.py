"""The run model: where a run comes from, which step of its pair a trigger is, and the life of a
trigger event. Plain enums and one table of transitions; the engine stores them as columns.

An upstream *build* (an `Event` of kind "build") has an `Origin` — the branch, tag or change
(an unmerged pull or merge request) it ran on — and `Via`, how Conjunction learned of it. Every
*trigger* (kind "trigger") under it has a `Step` (why it runs) and a `TriggerState`:

    planned ──▶ sending ──▶ started ──▶ finished
       │  ▲        │           │            ▲  │ (a re-run in the CI replaces the result)
       │  └────────┘           └─▶ timed out ┘  ▼
       ├─▶ skipped       (held back by pacing: back to planned)
       └─▶ superseded    (a newer upstream success came before it was sent)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal


class Origin(StrEnum):
    """What an upstream build ran on (stored as `Event.ref_type`)."""

    BRANCH = "branch"
    TAG = "tag"
    CHANGE = "change"  # the head of an unmerged pull request (GitHub) or merge request (GitLab)


class Via(StrEnum):
    """How Conjunction learned of an upstream build."""

    FORGE = "forge"  # a webhook of the forge (workflow_run, check_suite, status, pipeline hook)
    API = "api"  # `POST /api/v1/builds`
    POLLER = "poller"  # the GitHub poller, for upstreams no installation covers
    CHAIN = "chain"  # a downstream that passed, continuing a chain


class Step(StrEnum):
    """Why a trigger event runs its downstream."""

    FIRST = "first"  # the upstream build's own run of it
    AGAIN = "again"  # confirming a failure: against the same upstream commit
    LAST_PASSED = "last passed"  # confirming: against the upstream commit the pair last passed
    BASELINE = "baseline"  # a change's base commit, to compare a pre-merge run with
    RETRY = "retry"  # `/conjunction retry`: again, replacing the failure's result
    BISECT = "bisect"  # one commit of a culprit search

    @property
    def sent(self) -> str | None:
        """The `step` a CI system is sent (CONTRACT §8): absent for an ordinary run."""
        if self is Step.FIRST:
            return None
        return "confirm" if self in (Step.AGAIN, Step.LAST_PASSED) else self.value

    @property
    def confirming(self) -> bool:
        return self in (Step.AGAIN, Step.LAST_PASSED)


class TriggerState(StrEnum):
    PLANNED = "planned"  # created, its start not asked of the runner yet
    SENDING = "sending"  # the runner was asked; a crash now may leave it started or not
    STARTED = "started"  # the runner said it started (a run id, or an accepted webhook)
    FINISHED = "finished"  # a result came back
    TIMED_OUT = "timed_out"  # no result within CONJUNCTION_RESULT_TIMEOUT
    SKIPPED = "skipped"  # never run: a loop, the depth limit, an upstream that failed
    SUPERSEDED = "superseded"  # never sent: a newer success of the same upstream and ref came

    @property
    def waiting(self) -> bool:
        """Still waiting for a result."""
        return self in (TriggerState.PLANNED, TriggerState.SENDING, TriggerState.STARTED)


_S = TriggerState
TRANSITIONS: dict[TriggerState, frozenset[TriggerState]] = {
    # a result may come before the start was recorded (a quick CI, a callback racing the answer)
    _S.PLANNED: frozenset({_S.SENDING, _S.FINISHED, _S.TIMED_OUT, _S.SKIPPED, _S.SUPERSEDED}),
    _S.SENDING: frozenset({_S.STARTED, _S.PLANNED, _S.FINISHED, _S.TIMED_OUT}),
    _S.STARTED: frozenset({_S.FINISHED, _S.TIMED_OUT}),
    _S.FINISHED: frozenset({_S.FINISHED}),  # a re-run in the CI replaces the result
    _S.TIMED_OUT: frozenset({_S.FINISHED}),  # a late real result replaces the time-out
    _S.SKIPPED: frozenset(),
    _S.SUPERSEDED: frozenset(),
}


class InvalidTransition(ValueError):
    pass


def can_move(current: TriggerState, new: TriggerState) -> bool:
    return new in TRANSITIONS[current]


def move(current: TriggerState, new: TriggerState) -> TriggerState:
    """The state after `current` becomes `new`, or InvalidTransition."""
    if not can_move(current, new):
        raise InvalidTransition(f"a trigger cannot go from {current} to {new}")
    return new


@dataclass(frozen=True)
class Change:
    """An unmerged pull request (GitHub, Gitea) or merge request (GitLab) of an upstream: the
    origin of pre-merge runs (CONTRACT §8)."""

    project: str  # the upstream it would merge into, e.g. "github.com/acme/lib"
    number: int
    url: str  # its page on the forge
    head_sha: str
    base_sha: str  # the commit it is compared with (GitHub base.sha, GitLab diff_refs.base_sha)
    author: str | None = None  # the author's login
    fork: bool = False  # its head is in another repository
    state: Literal["open", "closed", "merged"] = "open"
    title: str = ""

    @classmethod
    def of_pull(cls, project: str, pull: Mapping[str, Any]) -> Change:
        """A pull request as GitHub, Gitea and Forgejo show it (their API and their
        `pull_request` webhook alike), as a change of `project`, the repository it would merge
        into."""
        head, base = pull.get("head") or {}, pull.get("base") or {}
        # a fork deleted since leaves `head.repo` null: its head is not in this repository
        head_repo = (head.get("repo") or {}).get("full_name")
        base_repo = (base.get("repo") or {}).get("full_name") or project.partition("/")[2]
        state: Literal["open", "closed", "merged"] = (
            "merged"
            if pull.get("merged") or pull.get("merged_at")
            else "open"
            if pull.get("state") == "open"
            else "closed"
        )
        return cls(
            project=project,
            number=int(pull["number"]),
            url=str(pull.get("html_url") or ""),
            head_sha=str(head.get("sha") or ""),
            base_sha=str(base.get("sha") or ""),
            author=(pull.get("user") or {}).get("login"),
            fork=head_repo is None or str(head_repo).casefold() != str(base_repo).casefold(),
            state=state,
            title=str(pull.get("title") or ""),
        )

    @property
    def ref(self) -> str:
        """The ref a downstream fetches the change's head from: GitHub's, Gitea's and Forgejo's
        pull request ref (`/pull/`, `/pulls/` in its URL), or GitLab's merge request ref."""
        if "/pull/" in self.url or "/pulls/" in self.url:
            return f"refs/pull/{self.number}/head"
        return f"refs/merge-requests/{self.number}/head"
