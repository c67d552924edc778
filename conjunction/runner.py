"""The runner interface: how a downstream pipeline is started.

A code host's own CI (GitHub Actions, GitLab CI) is one; a CI system reached by its webhook is
another. Which one starts a downstream is decided by its `trigger:` (`conjunction.adapters`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from conjunction.config.repo_config import Trigger

Artifact = Mapping[str, Any]
"""What an upstream build made: `name` and `url`, and whatever its CI adds (GitHub: `id`,
`run_id`, `repository`)."""


@dataclass(frozen=True)
class TriggerRequest:
    """What a downstream pipeline is started with (CONTRACT §5)."""

    event_id: str
    project: str
    upstream: str
    upstream_sha: str
    upstream_ref: str
    upstream_url: str | None
    callback_url: str
    callback_token: str = field(repr=False)
    trigger: Trigger
    default_branch: str
    owners: Sequence[str] = ()
    parent_id: str | None = None
    root_id: str | None = None
    depth: int = 1
    artifacts: Sequence[Artifact] = ()  # of the upstream build
    # when an earlier attempt asked the runner to start it (a retry after a crash asks
    # `find_started` first): runs created before then are not its own
    sent_at: datetime | None = None
    # a pre-merge run (CONTRACT §8): the change's URL, the run's kind and step (`Step.sent`);
    # None for an ordinary run
    change: str | None = None
    kind: str | None = None
    step: str | None = None

    def run_fields(self) -> dict[str, str]:
        """`change`, `kind` and `step` where they are set: sent only when they say something."""
        fields = {"change": self.change, "kind": self.kind, "step": self.step}
        return {name: value for name, value in fields.items() if value}


# A run that names no trigger event is taken as a dispatch's only when it was created after the
# dispatch was sent: this much earlier still counts, for the two clocks' difference.
CLOCK_SLACK = timedelta(seconds=2)


@dataclass(frozen=True)
class PipelineStarted:
    url: str | None = None
    run_id: str | None = None


class TriggerError(Exception):
    """Starting a downstream failed; `reason` is shown on that downstream's row."""

    def __init__(self, reason: str, *, permanent: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@runtime_checkable
class Runner(Protocol):
    async def start_pipeline(self, request: TriggerRequest) -> PipelineStarted:
        """Start the downstream pipeline; raise TriggerError with a reason a person can act on."""
        ...

    async def find_started(self, request: TriggerRequest) -> PipelineStarted | None:
        """The pipeline an earlier attempt started for this event, if the runner can tell;
        asked before starting again when that attempt's outcome was never recorded."""
        ...
