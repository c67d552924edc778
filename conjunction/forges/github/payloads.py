"""The shape of each GitHub event family Conjunction handles: exactly the fields its handlers in
`events/` read, with the types they rely on and the lengths the database can store.

A delivery is checked against its family's model when it arrives; one that does not fit can
never be processed, so it is answered "ignored" instead of being queued and retried. Models are
strict (no "1" for 1) because the handlers read the raw payload, not these models; fields other
than those listed are ignored. Where a handler uses `.get()`, the field is optional here too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from conjunction.limits import INT32, Branch, FullName, Name, Ref, Sha, Text, Url


class Strict(BaseModel):
    model_config = ConfigDict(strict=True)


class Installation(Strict):
    id: Annotated[int, Field(ge=1, le=INT32)]


class Envelope(Strict):
    """What every delivery is read for: the routers' `action` and the app's installation."""

    action: str | None = None
    installation: Installation | None = None


class Repository(Strict):
    full_name: FullName


class IndexedRepository(Repository):
    """A repository as an installation lists it: indexed with its visibility."""

    private: bool
    default_branch: Branch | None = None


class PushedRepository(Repository):
    private: bool
    default_branch: Branch


class ChangedFiles(Strict):
    added: list[str] | None = None
    modified: list[str] | None = None
    removed: list[str] | None = None


class Push(Envelope):
    ref: Ref
    after: Sha
    deleted: bool | None = None
    commits: list[ChangedFiles] | None = None
    head_commit: ChangedFiles | None = None
    repository: PushedRepository


class InstallationEvent(Envelope):
    installation: Installation
    repositories: list[IndexedRepository] | None = None


class InstallationRepositories(Envelope):
    installation: Installation
    repositories_added: list[IndexedRepository] | None = None
    repositories_removed: list[Repository] | None = None

    @model_validator(mode="after")
    def _list_of_its_action(self) -> InstallationRepositories:
        listed = {"added": self.repositories_added, "removed": self.repositories_removed}
        if self.action in listed and listed[self.action] is None:
            raise ValueError(f"repositories_{self.action} is missing")
        return self


class WorkflowRun(Strict):
    id: int | None = None
    name: Name | None = None
    display_title: str | None = None
    event: str | None = None
    conclusion: str | None = None
    head_sha: Sha | None = None
    head_branch: Ref | None = None
    html_url: Url | None = None
    run_attempt: Annotated[int, Field(ge=1, le=INT32)] | None = None
    path: Name | None = None
    created_at: str | None = None  # read with `timestamp`: a time that does not parse is None


class WorkflowRunEvent(Envelope):
    workflow_run: WorkflowRun
    repository: Repository


class App(Strict):
    slug: str | None = None
    name: Name | None = None


class HeadCommit(Strict):
    message: str | None = None


class CheckSuite(Strict):
    app: App | None = None
    conclusion: str | None = None
    head_sha: Sha | None = None
    head_branch: Ref | None = None
    head_commit: HeadCommit | None = None


class RepositoryWithPage(Repository):
    html_url: Url


class CheckSuiteEvent(Envelope):
    check_suite: CheckSuite
    repository: RepositoryWithPage


class StatusBranch(Strict):
    name: Ref


class Status(Envelope):
    sha: Sha | None = None
    state: str | None = None
    context: Name | None = None
    description: str | None = None
    target_url: Url | None = None
    branches: list[StatusBranch] | None = None
    repository: Repository


class User(Strict):
    login: Name | None = None


class PullRequestRepository(Strict):
    full_name: FullName | None = None


class PullRequestSide(Strict):
    sha: Sha
    repo: PullRequestRepository | None = None  # null once a fork is deleted


class PullRequest(Strict):
    number: Annotated[int, Field(ge=1, le=INT32)]
    html_url: Url
    state: str
    merged: bool | None = None
    title: str | None = None
    user: User | None = None
    head: PullRequestSide
    base: PullRequestSide


class PullRequestEvent(Envelope):
    pull_request: PullRequest


class Commented(Strict):
    """The issue or pull request a comment is on: a pull request carries `pull_request`."""

    number: Annotated[int, Field(ge=1, le=INT32)]
    pull_request: dict[str, Any] | None = None


class Login(Strict):
    login: Name


class Comment(Strict):
    id: Annotated[int, Field(ge=1)]
    body: Text | None = None
    user: Login


class IssueCommentEvent(Envelope):
    issue: Commented
    comment: Comment
    repository: Repository


# Deliveries of events not listed are ignored at once.
PAYLOADS: dict[str, type[Envelope]] = {
    "check_suite": CheckSuiteEvent,
    "installation": InstallationEvent,
    "installation_repositories": InstallationRepositories,
    "issue_comment": IssueCommentEvent,
    "ping": Envelope,
    "pull_request": PullRequestEvent,
    "push": Push,
    "status": Status,
    "workflow_run": WorkflowRunEvent,
}


def timestamp(value: str | None) -> datetime | None:
    """GitHub's `2024-01-02T03:04:05Z`, or None when absent or not a time."""
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
