"""The shape of each Gitea and Forgejo webhook Conjunction takes (by its `X-Gitea-Event`
header): exactly the fields its handler in `events/` reads, with the types it relies on and the
lengths the database can store.

Checked when a delivery arrives, as for GitHub and GitLab: one that does not fit is answered
"ignored" instead of being queued. Models are strict and ignore other fields.

Gitea sends an Actions run as `workflow_run` (with `workflow_run` and `repository`), Forgejo as
`action_run` (with `run`, whose `repository` is inside it). Forgejo sends no commit status event.

Gitea sends every action on a pull request (opened, synchronized, closed, assigned, …) as
`pull_request`, and a comment on an issue or a pull request as `issue_comment` (`is_pull` says
which); Forgejo sends the same bodies.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from conjunction.limits import INT32, Branch, FullName, Name, Ref, Sha, Text, Url


class Strict(BaseModel):
    model_config = ConfigDict(strict=True)


class Repository(Strict):
    full_name: FullName
    default_branch: Branch | None = None
    private: bool | None = None
    internal: bool | None = None


class ChangedFiles(Strict):
    added: list[str] | None = None
    modified: list[str] | None = None
    removed: list[str] | None = None


class Push(Strict):
    repository: Repository
    ref: Ref | None = None
    before: Sha | None = None
    after: Sha | None = None
    commits: list[ChangedFiles] | None = None
    total_commits: int | None = None


class Status(Strict):
    repository: Repository
    sha: Sha
    state: str | None = None
    context: Name | None = None
    description: Text | None = None
    target_url: Url | None = None


class Workflow(Strict):
    name: Name | None = None


class WorkflowRun(Strict):
    id: int
    display_title: Text | None = None
    event: str | None = None
    head_sha: Sha | None = None
    head_branch: Ref | None = None
    status: str | None = None
    conclusion: str | None = None
    html_url: Url | None = None


class GiteaWorkflowRun(Strict):
    """Gitea's `workflow_run`."""

    action: str
    workflow_run: WorkflowRun
    workflow: Workflow | None = None
    repository: Repository


class ActionRun(Strict):
    id: int
    repository: Repository
    title: Text | None = None
    workflow_id: Name | None = None
    commit_sha: Sha | None = None
    prettyref: Ref | None = None
    event: str | None = None
    status: str | None = None
    html_url: Url | None = None
    event_payload: Text | None = None


class ForgejoActionRun(Strict):
    """Forgejo's `action_run` (Success, Failure, Recover)."""

    action: str | None = None
    run: ActionRun


class User(Strict):
    login: Name


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
    title: Text | None = None
    user: User | None = None
    head: PullRequestSide
    base: PullRequestSide


class PullRequestEvent(Strict):
    action: str
    pull_request: PullRequest
    repository: Repository


class Commented(Strict):
    """The issue or pull request a comment is on."""

    number: Annotated[int, Field(ge=1, le=INT32)]


class Comment(Strict):
    id: Annotated[int, Field(ge=1)]
    body: Text | None = None
    user: User


class IssueCommentEvent(Strict):
    action: str
    issue: Commented
    comment: Comment
    repository: Repository
    is_pull: bool | None = None


# Deliveries of events not listed are answered 200 "ignored" at once.
PAYLOADS: dict[str, type[BaseModel]] = {
    "push": Push,
    "status": Status,
    "workflow_run": GiteaWorkflowRun,
    "action_run": ForgejoActionRun,
    "action_run_success": ForgejoActionRun,
    "action_run_failure": ForgejoActionRun,
    "action_run_recover": ForgejoActionRun,
    "pull_request": PullRequestEvent,
    "issue_comment": IssueCommentEvent,
}
