"""The shape of each GitLab webhook Conjunction takes (by its `X-Gitlab-Event` header): exactly
the fields its handler in `events/` reads, with the types it relies on and the lengths the
database can store.

Checked when a delivery arrives, as for GitHub (conjunction/forges/github/payloads.py): one that
does not fit is answered "ignored" instead of being queued. Models are strict and ignore other
fields; where a handler uses `.get()`, the field is optional here too.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, model_validator

from conjunction.limits import Branch, FullName, Name, Ref, Sha, Text, Url


class Strict(BaseModel):
    model_config = ConfigDict(strict=True)


class PushedProject(Strict):
    path_with_namespace: FullName | None = None
    default_branch: Branch | None = None
    visibility_level: int | None = None


class ChangedFiles(Strict):
    added: list[str] | None = None
    modified: list[str] | None = None
    removed: list[str] | None = None


class PushHook(Strict):
    project: PushedProject | None = None
    ref: Ref | None = None
    before: Sha | None = None
    after: Sha | None = None
    commits: list[ChangedFiles] | None = None
    total_commits_count: int | None = None


class Variable(Strict):
    key: str
    value: Text | None = None


class Pipeline(Strict):
    id: int | None = None
    status: str | None = None
    source: str | None = None
    name: Name | None = None
    sha: Sha | None = None
    ref: Ref | None = None
    tag: bool | None = None
    url: Url | None = None
    variables: list[Variable] | None = None


class PipelineProject(Strict):
    path_with_namespace: FullName


class PipelineHook(Strict):
    object_attributes: Pipeline
    project: PipelineProject


class SystemHook(PushHook):
    """Instance-wide events: pushes of every project (read as a Push Hook), and projects
    destroyed, renamed or moved. Most name themselves in `event_name`, some in `object_kind`."""

    event_name: str | None = None
    object_kind: str | None = None
    path_with_namespace: FullName | None = None
    old_path_with_namespace: FullName | None = None

    @model_validator(mode="after")
    def _named(self) -> SystemHook:
        if self.event_name is None and self.object_kind is None:
            raise ValueError("neither event_name nor object_kind is given")
        return self


class LastCommit(Strict):
    id: Sha


class DiffRefs(Strict):
    base_sha: Sha | None = None


class MergeRequest(Strict):
    iid: int
    url: Url
    action: str | None = None
    state: str | None = None
    title: Text | None = None
    source_project_id: int | None = None
    target_project_id: int | None = None
    last_commit: LastCommit
    oldrev: Sha | None = None
    diff_refs: DiffRefs | None = None


class MergeRequestUser(Strict):
    username: Name | None = None


class MergeRequestHook(Strict):
    object_attributes: MergeRequest
    project: PipelineProject
    user: MergeRequestUser | None = None


class Note(Strict):
    id: int
    note: Text | None = None
    noteable_type: str  # MergeRequest, Issue, Commit, Snippet
    action: str | None = None  # `create` or `update` (GitLab 16.11 and later)
    system: bool | None = None


class NoteUser(Strict):
    id: int
    username: Name


class Noted(Strict):
    """The merge request or issue a note is on."""

    iid: int


class NoteHook(Strict):
    object_attributes: Note
    project: PipelineProject
    user: NoteUser
    merge_request: Noted | None = None
    issue: Noted | None = None


# Deliveries of events not listed are ignored at once.
PAYLOADS: dict[str, type[BaseModel]] = {
    "Push Hook": PushHook,
    "Pipeline Hook": PipelineHook,
    "Note Hook": NoteHook,
    "System Hook": SystemHook,
    "Merge Request Hook": MergeRequestHook,
}
