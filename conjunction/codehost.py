"""The code host interface: where a project's repository lives and where results are shown.

GitHub, GitLab and plain git servers implement it (`conjunction/forges/`); the engine reaches code
hosts only through this Protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from conjunction.config.repo_config import ConfigError
from conjunction.runs import Change

REPORT_NAME = "Conjunction: downstream"  # check run name
STATUS_CONTEXT = "conjunction/downstream"  # commit status context
PREMERGE_REPORT_NAME = "Conjunction: downstream (pre-merge)"  # of a change's head (CONTRACT §8)
PREMERGE_STATUS_CONTEXT = "conjunction/premerge"
COMMITS_LISTED = 20  # of a range, the rest is counted ("and N more")


@dataclass(frozen=True)
class ProjectInfo:
    default_branch: str
    private: bool


@dataclass(frozen=True)
class CommitReport:
    """The aggregate posted on an upstream commit, as a status and/or a check."""

    state: Literal["pending", "success", "failure"]
    conclusion: Literal["success", "failure", "neutral"] | None
    description: str
    target_url: str
    title: str
    summary: str
    # which check run and status it is: a merged commit's, or a change's pre-merge one
    check_name: str = REPORT_NAME
    status_context: str = STATUS_CONTEXT

    @property
    def completed(self) -> bool:
        return self.conclusion is not None


@dataclass(frozen=True)
class Commit:
    sha: str
    title: str  # the first line of its message
    author: str  # the forge user when known, else the name in the commit
    url: str | None = None
    login: str | None = None  # the forge user, when the host knows who wrote it


@dataclass(frozen=True)
class CommitRange:
    """The commits after `base` up to `head`, oldest first: at most COMMITS_LISTED of them,
    and how many there are in all."""

    base: str
    head: str
    commits: tuple[Commit, ...]
    total: int
    url: str | None = None  # the host's compare page

    @property
    def more(self) -> int:
        return max(self.total - len(self.commits), 0)


@dataclass(frozen=True)
class IssueRef:
    number: int
    url: str | None = None


@dataclass(frozen=True)
class CommentRef:
    """A comment on a change (pull or merge request) or an issue: where a command was written."""

    project: str
    number: int  # of the pull or merge request, or the issue (GitLab: its iid)
    id: int  # of the comment (GitLab: the note)
    on_change: bool  # on a pull or merge request; else on an issue


class CodeHost(Protocol):
    @property
    def host(self) -> str:
        """The host in this code host's project names, e.g. `github.com`."""
        ...

    @property
    def codeowners_paths(self) -> Sequence[str]:
        """Where CODEOWNERS may live, in the order the host looks."""
        ...

    async def project_info(self, project: str) -> ProjectInfo:
        """Default branch and visibility of a project the bot can reach."""
        ...

    async def read_file(self, project: str, path: str, ref: str | None = None) -> str | None:
        """A file's text at ref (default branch when None), or None when it does not exist."""
        ...

    async def changed_files(self, project: str, base: str, head: str) -> list[str] | None:
        """Paths changed from base to head, or None when they cannot all be known."""
        ...

    async def publish_report(
        self, project: str, sha: str, report: CommitReport, *, status: bool, check: bool
    ) -> None:
        """Show the report on the commit: as a commit status and/or a check, as the host has."""
        ...

    async def comment_on_change(self, project: str, sha: str, marker: str, body: str) -> None:
        """Keep one comment (found by its hidden marker) on the change that brought sha."""
        ...

    async def find_issue(self, project: str, marker: str) -> IssueRef | None:
        """An open issue of the bot's whose body carries the hidden marker."""
        ...

    async def open_issue(
        self, project: str, title: str, body: str, labels: Sequence[str]
    ) -> IssueRef: ...

    async def comment_issue(self, project: str, number: int, body: str) -> None: ...

    async def close_issue(self, project: str, number: int, body: str) -> None: ...

    async def report_config(self, project: str, sha: str, error: ConfigError | None) -> None:
        """Show on sha whether its `.conjunction.yml` is valid (problems with their lines)."""
        ...

    def compare_url(self, project: str, base: str, head: str) -> str: ...

    def profile_url(self, owner: str) -> str | None:
        """The page of a user, team or group (an owner of a project here), where the host has
        one: how an owner is named on another forge, where `@` would ping someone else."""
        ...

    async def commits_between(self, project: str, base: str, head: str) -> CommitRange | None:
        """The commits after base up to head (COMMITS_LISTED of them at most, with the total),
        or None when the host cannot tell."""
        ...

    async def commit_list(self, project: str, base: str, head: str) -> list[Commit] | None:
        """Every commit after base up to head, oldest first (a culprit search's range), or None
        when the host cannot tell."""
        ...

    async def can_write(self, project: str, user: str) -> bool:
        """Whether the user may write to the repository, as the host's permission API says
        (GitHub `admin`, `maintain` or `write`; GitLab Developer or higher): who may command
        Conjunction in a comment there."""
        ...

    async def get_change(self, project: str, number: int) -> Change | None:
        """The pull or merge request `number` of project, or None when there is none."""
        ...

    async def react(self, comment: CommentRef, emoji: str) -> None:
        """An emoji reaction on the comment (`eyes`: a command seen)."""
        ...

    async def reply(self, comment: CommentRef, body: str) -> None:
        """A comment beside it, on the same pull or merge request or issue."""
        ...
