"""The small interface every forge adapter (GitHub, GitLab, tests' fake) implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from config.repo_config import Trigger

CHECK_NAME = "Conjunction: downstream"
STATUS_CONTEXT = "conjunction/downstream"


def project_key(name: str) -> str:
    """Project names compare case-insensitively (`github.com/Acme/Lib` is `github.com/acme/lib`)."""
    return name.strip().strip("/").lower()


def split_project(name: str) -> tuple[str, str]:
    """`github.com/acme/lib` -> (`github.com`, `acme/lib`)."""
    host, _, path = name.partition("/")
    return host.lower(), path


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


@dataclass(frozen=True)
class CommitReport:
    """The aggregate posted on an upstream commit, as a status and a check run."""

    state: Literal["pending", "success", "failure"]
    conclusion: Literal["success", "failure", "neutral"] | None
    description: str
    target_url: str
    title: str
    summary: str

    @property
    def completed(self) -> bool:
        return self.conclusion is not None


@dataclass(frozen=True)
class IssueRef:
    number: int
    url: str | None = None


class Forge(Protocol):
    async def read_file(self, project: str, path: str, ref: str | None = None) -> str | None:
        """A file's text at ref (default branch when None), or None when it does not exist."""

    async def start_pipeline(self, request: TriggerRequest) -> PipelineStarted:
        """Start the downstream pipeline; raise TriggerError with a reason a person can act on."""

    async def set_commit_status(self, project: str, sha: str, report: CommitReport) -> None: ...

    async def upsert_check(self, project: str, sha: str, report: CommitReport) -> None: ...

    async def comment_on_change(self, project: str, sha: str, marker: str, body: str) -> None:
        """Keep one comment (found by its hidden marker) on the change that brought sha."""

    async def open_issue(
        self, project: str, title: str, body: str, labels: Sequence[str]
    ) -> IssueRef: ...

    async def comment_issue(self, project: str, number: int, body: str) -> None: ...

    async def close_issue(self, project: str, number: int, body: str) -> None: ...

    async def changed_files(self, project: str, base: str, head: str) -> list[str] | None:
        """Paths changed from base to head, or None when they cannot all be known."""

    def compare_url(self, project: str, base: str, head: str) -> str: ...
