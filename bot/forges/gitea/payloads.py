"""The shape of each Gitea and Forgejo webhook Conjunction takes (by its `X-Gitea-Event`
header): exactly the fields its handler in handlers/gitea/ reads, with the types it relies on and
the lengths the database can store.

Checked when a delivery arrives, as for GitHub and GitLab: one that does not fit is answered
"ignored" instead of being queued. Models are strict and ignore other fields.

Gitea sends an Actions run as `workflow_run` (with `workflow_run` and `repository`), Forgejo as
`action_run` (with `run`, whose `repository` is inside it). Forgejo sends no commit status event.

Pull requests and comments (`pull_request`, `issue_comment`) are answered 200 "ignored" for
now; pre-merge runs and commands take them by adding a model here and a handler in
handlers/gitea/.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from bot.limits import Branch, FullName, Name, Ref, Sha, Text, Url


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


# Deliveries of events not listed are answered 200 "ignored" at once.
PAYLOADS: dict[str, type[BaseModel]] = {
    "push": Push,
    "status": Status,
    "workflow_run": GiteaWorkflowRun,
    "action_run": ForgejoActionRun,
    "action_run_success": ForgejoActionRun,
    "action_run_failure": ForgejoActionRun,
    "action_run_recover": ForgejoActionRun,
}
