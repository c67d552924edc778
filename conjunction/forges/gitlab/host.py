"""`GitLabHost`: a GitLab project as a code host and its GitLab CI as a runner.

Every call goes through the one client (`conjunction.forges.gitlab.client`); projects are lazy
objects named by their path, so python-gitlab URL-encodes nested groups (`group%2Fsub%2Fapp`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import quote

import cachetools
import requests
from gitlab import GitlabAuthenticationError, GitlabError
from gitlab.v4.objects import Project

from conjunction import markdown
from conjunction.codehost import (
    COMMITS_LISTED,
    CommentRef,
    Commit,
    CommitRange,
    CommitReport,
    IssueRef,
    ProjectInfo,
)
from conjunction.config.repo_config import ConfigError
from conjunction.engine_api import CONFIG_PATH
from conjunction.excerpts import FailureText, Source
from conjunction.forges.gitlab.client import GitLabClient
from conjunction.forges.gitlab.settings import GitLabSettings
from conjunction.names import project_key, split_project
from conjunction.queue import PermanentError
from conjunction.runner import Artifact, PipelineStarted, TriggerError, TriggerRequest
from conjunction.runs import Change
from conjunction.texts import ISSUE_LABEL, ISSUE_LABEL_COLOR, ISSUE_LABEL_DESCRIPTION

log = logging.getLogger(__name__)

CONFIG_STATUS = "conjunction/config"
DESCRIPTION_LIMIT = 255  # GitLab refuses a longer commit status description
BODY_LIMIT = 1_000_000  # a note's body or an issue's description
TITLE_LIMIT = 255
REFUSED_WRITES = frozenset({400, 404, 410, 422})  # no retry of the same write can pass
DIFF_FILE_LIMIT = 1000  # GitLab's default diff limit: a compare lists at most this many files
FIND_STARTED_LOOKBACK = 10  # recent API pipelines searched for an event's variable
EVENT_VARIABLE = "CONJUNCTION_EVENT"
STATES = {"pending": "running", "success": "success", "failure": "failed"}
DEVELOPER = 30  # the access level that may command Conjunction in a comment (and higher)
CHANGE_STATES: dict[str, Literal["open", "closed", "merged"]] = {
    "opened": "open",
    "merged": "merged",
}
TRANSIENT = (requests.ConnectionError, requests.Timeout)
# GitLab's refusals of a pipeline: its variables (the project's "Minimum role to use pipeline
# variables" is above the bot's role, "No one allowed" on gitlab.com projects since GitLab 17.7),
# and a protected branch the bot may not merge into
VARIABLES_REFUSED = "Insufficient permissions to set pipeline variables"
PROTECTED_REF = "sufficient permission to run a pipeline on"


def cut(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """Text within limit characters, cut at a word with an ellipsis when it is longer."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    if " " in head[limit // 2 :]:
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(" ,;:") + "…"


def message_of(exc: GitlabError) -> str:
    """GitLab's error message as one line (it is sometimes a mapping of field to problems)."""
    message: Any = exc.error_message
    if isinstance(message, bytes):
        message = message.decode("utf-8", errors="replace")
    if isinstance(message, dict):
        message = "; ".join(
            f"{' '.join(map(str, value)) if isinstance(value, list) else value}"
            if key == "base"
            else f"{key} {' '.join(map(str, value)) if isinstance(value, list) else value}"
            for key, value in message.items()
        )
    return " ".join(str(message).split())


class RequestRefused(GitlabError, PermanentError):
    """GitLab refused a write for what it holds (400, 404, 410, 422): the same write would be
    refused again, so the job ends at once with GitLab's reason."""


def refused(exc: GitlabError, what: str) -> GitlabError:
    """`exc` as a `RequestRefused` naming what was written, when no retry could pass."""
    if exc.response_code not in REFUSED_WRITES:
        return exc
    message = f"GitLab refused {what} ({exc.response_code}): {message_of(exc)}"
    return RequestRefused(message, exc.response_code, exc.response_body)


def refuses_token(exc: GitlabError) -> bool:
    """GitLab refused the token itself: revoked or expired (401), or without the `api` scope
    that every write needs (403 `insufficient_scope`)."""
    return isinstance(exc, GitlabAuthenticationError) or (
        exc.response_code == 403 and message_of(exc) == "insufficient_scope"
    )


def is_transient(exc: BaseException) -> bool:
    """Worth another try later: GitLab overloaded or out of reach (its own retries spent)."""
    if isinstance(exc, TRANSIENT):
        return True
    code = getattr(exc, "response_code", None)
    return isinstance(exc, GitlabError) and (code is None or code == 429 or code >= 500)


def pipeline_variables(request: TriggerRequest) -> list[dict[str, str]]:
    """The CONJUNCTION_* variables a downstream pipeline is created with (CONTRACT §5)."""
    values = {
        EVENT_VARIABLE: request.event_id,
        "CONJUNCTION_UPSTREAM": request.upstream,
        "CONJUNCTION_UPSTREAM_SHA": request.upstream_sha,
        "CONJUNCTION_UPSTREAM_REF": request.upstream_ref,
        "CONJUNCTION_CALLBACK_URL": request.callback_url,
    }
    if request.artifacts:
        values["CONJUNCTION_UPSTREAM_ARTIFACTS"] = json.dumps(list(request.artifacts))
    for name, value in request.run_fields().items():
        values[f"CONJUNCTION_{name.upper()}"] = value
    return [
        {"key": key, "value": value, "variable_type": "env_var"} for key, value in values.items()
    ]


def _archive_of(job: dict[str, Any]) -> str | None:
    """The file name of a job's artifacts archive, if it kept one (a job's log is listed among
    its artifacts too, as file type `trace`)."""
    archive = (job.get("artifacts_file") or {}).get("filename")
    if archive:
        return str(archive)
    for artifact in job.get("artifacts") or []:
        if artifact.get("file_type") == "archive" and artifact.get("filename"):
            return str(artifact["filename"])
    return None


def _commit(item: dict[str, Any]) -> Commit:
    """One commit of a compare answer: GitLab names its author, not their account."""
    return Commit(
        str(item["id"]),
        str(item.get("title") or ""),
        str(item.get("author_name") or ""),
        item.get("web_url"),
    )


class GitLabHost:
    """`conjunction.codehost.CodeHost` and `conjunction.runner.Runner` for one GitLab instance."""

    # GitLab reads the first of these that exists
    codeowners_paths = ("CODEOWNERS", "docs/CODEOWNERS", ".gitlab/CODEOWNERS")
    owner_syntax = "gitlab"  # how its users and groups are spelled (`parse_config`'s `forge`)

    @classmethod
    def from_settings(cls, settings: GitLabSettings) -> GitLabHost:
        """The bot account's adapter for GITLAB_URL, naming projects with GITLAB_HOST."""
        assert settings.token
        client = GitLabClient(settings.url, settings.token)
        return cls(client, host=settings.host, web_url=settings.url)

    def __init__(self, client: GitLabClient, *, host: str, web_url: str) -> None:
        self.client = client
        self._host = host.lower()
        self._web_url = web_url.rstrip("/")
        self._labels: cachetools.TTLCache[str, bool] = cachetools.TTLCache(4096, ttl=24 * 3600)

    @property
    def host(self) -> str:
        return self._host

    def path_of(self, project: str) -> str:
        host, path = split_project(project)
        if host != self._host or "/" not in path:
            raise ValueError(f"{project} is not a project on {self._host}")
        return path

    def _project(self, project: str) -> Project:
        return self.client.project(self.path_of(project))

    def web_url(self, project: str) -> str:
        return f"{self._web_url}/{self.path_of(project)}"

    async def project_info(self, project: str) -> ProjectInfo:
        data = await self.client.run(self.client.gl.projects.get, self.path_of(project))
        return ProjectInfo(
            default_branch=data.default_branch or "main",
            # internal projects are visible to every signed-in user, not to the public
            private=data.visibility != "public",
        )

    async def read_file(self, project: str, path: str, ref: str | None = None) -> str | None:
        files = self._project(project).files
        try:
            raw = await self.client.run(files.raw, path, ref=ref)
        except GitlabError as exc:
            if exc.response_code == 404:
                return None
            raise
        return bytes(raw).decode("utf-8", errors="replace")

    async def _compare(self, project: str, base: str, head: str) -> dict[str, Any] | None:
        try:
            compared: Any = await self.client.run(
                self._project(project).repository_compare, base, head
            )
        except GitlabError as exc:
            log.info("cannot compare %s %s...%s: %s", project, base, head, exc)
            return None
        return dict(compared)

    async def changed_files(self, project: str, base: str, head: str) -> list[str] | None:
        compared = await self._compare(project, base, head)
        if compared is None:
            return None
        diffs = compared.get("diffs") or []
        if compared.get("compare_timeout") or len(diffs) >= DIFF_FILE_LIMIT:
            return None  # GitLab stopped listing: the rest is unknown
        return sorted({path for diff in diffs for path in (diff["old_path"], diff["new_path"])})

    async def commits_between(self, project: str, base: str, head: str) -> CommitRange | None:
        compared = await self._compare(project, base, head)
        if compared is None:
            return None
        commits = compared.get("commits") or []  # oldest first
        return CommitRange(
            base,
            head,
            tuple(_commit(item) for item in commits[:COMMITS_LISTED]),
            total=len(commits),
            url=self.compare_url(project, base, head),
        )

    async def commit_list(self, project: str, base: str, head: str) -> list[Commit] | None:
        """Every commit of the range, from one repository compare (GitLab lists them all)."""
        compared = await self._compare(project, base, head)
        if compared is None:
            return None
        return [_commit(item) for item in compared.get("commits") or []]

    def compare_url(self, project: str, base: str, head: str) -> str:
        return f"{self.web_url(project)}/-/compare/{base}...{head}"

    def profile_url(self, owner: str) -> str:
        """A user's or a group's page (`group/subgroup` for a subgroup)."""
        return f"{self._web_url}/{quote(owner, safe='/')}"

    # reports

    async def publish_report(
        self, project: str, sha: str, report: CommitReport, *, status: bool, check: bool
    ) -> None:
        """A commit status; GitLab has no check runs, so `check` asks for nothing more."""
        if status:
            await self._set_status(
                project,
                sha,
                report.status_context,
                STATES[report.state],
                report.description,
                report.target_url,
            )

    async def _set_status(
        self, project: str, sha: str, name: str, state: str, description: str, url: str | None
    ) -> None:
        statuses = self._project(project).commits.get(sha, lazy=True).statuses
        data = {"state": state, "name": name, "description": cut(description)}
        if url:
            data["target_url"] = url
        try:
            await self.client.run(statuses.create, data)
        except GitlabError as exc:
            # GitLab refuses to move a running (or pending) status to the same state again;
            # the status shown is already the one asked for.
            if exc.response_code == 400 and "Cannot transition status" in message_of(exc):
                log.info("%s on %s in %s is already %s", name, sha, project, state)
                return
            raise refused(exc, "a commit status") from exc

    async def report_config(self, project: str, sha: str, error: ConfigError | None) -> None:
        """A commit status `conjunction/config`: failed, naming the first problem's line and
        key and linking to that line, or success once the file is valid again."""
        url = f"{self.web_url(project)}/-/blob/{sha}/{CONFIG_PATH}"
        if error is None:
            await self._set_status(
                project, sha, CONFIG_STATUS, "success", f"{CONFIG_PATH} is valid", url
            )
            return
        first, *rest = error.problems
        description = f"{CONFIG_PATH} {first}"
        if rest:
            description = f"{cut(description, DESCRIPTION_LIMIT - 20)} (+{len(rest)} more)"
        if first.line is not None:
            url += f"#L{first.line}"
        await self._set_status(project, sha, CONFIG_STATUS, "failed", description, url)

    async def comment_on_change(self, project: str, sha: str, marker: str, body: str) -> None:
        """One note, found by its marker and edited in place, on the merge request that
        brought sha."""
        gl_project = self._project(project)
        commit = gl_project.commits.get(sha, lazy=True)
        changes = await self.client.run(commit.merge_requests, get_all=True)
        if not changes:
            return
        merged = [change for change in changes if change.get("state") == "merged"]
        iid = (merged or list(changes))[0]["iid"]
        if marker not in body:
            body = f"{marker}\n{body}"
        body = markdown.fit(body, BODY_LIMIT)
        notes = gl_project.mergerequests.get(iid, lazy=True).notes
        existing = await self.client.run(notes.list, get_all=True)
        mine = next((note for note in existing if marker in (note.body or "")), None)
        try:
            if mine is None:
                await self.client.run(notes.create, {"body": body})
            else:
                await self.client.run(notes.update, mine.id, {"body": body})
        except GitlabError as exc:
            raise refused(exc, "a merge request note") from exc

    # issues

    async def _ensure_label(self, project: str, name: str) -> None:
        key = f"{project_key(project)}:{name.lower()}"
        if key in self._labels:
            return
        labels = self._project(project).labels
        try:
            await self.client.run(
                labels.create,
                {
                    "name": name,
                    "color": f"#{ISSUE_LABEL_COLOR}",
                    "description": ISSUE_LABEL_DESCRIPTION,
                },
            )
        except GitlabError as exc:
            if exc.response_code != 409:  # 409: the label exists
                raise
        self._labels[key] = True

    async def find_issue(self, project: str, marker: str) -> IssueRef | None:
        issues = self._project(project).issues
        found = await self.client.run(
            issues.list, labels=[ISSUE_LABEL], state="opened", get_all=True
        )
        for issue in found:
            if marker in (issue.description or ""):
                return IssueRef(number=int(issue.iid), url=issue.web_url)
        return None

    async def open_issue(
        self, project: str, title: str, body: str, labels: Sequence[str]
    ) -> IssueRef:
        for label in labels:
            await self._ensure_label(project, label)
        issues = self._project(project).issues
        data = {
            "title": markdown.cut_line(title, TITLE_LIMIT),
            "description": markdown.fit(body, BODY_LIMIT),
            "labels": ",".join(labels),
        }
        try:
            issue = await self.client.run(issues.create, data)
        except GitlabError as exc:
            raise refused(exc, "an issue") from exc
        return IssueRef(number=int(issue.iid), url=issue.web_url)

    async def comment_issue(self, project: str, number: int, body: str) -> None:
        notes = self._project(project).issues.get(number, lazy=True).notes
        try:
            await self.client.run(notes.create, {"body": markdown.fit(body, BODY_LIMIT)})
        except GitlabError as exc:
            raise refused(exc, "an issue note") from exc

    async def close_issue(self, project: str, number: int, body: str) -> None:
        await self.comment_issue(project, number, body)
        issues = self._project(project).issues
        await self.client.run(issues.update, number, {"state_event": "close"})

    # commands in comments

    async def can_write(self, project: str, user: str, user_id: int | None = None) -> bool:
        """Developer or higher, inherited from groups included (`members/all`). A Note Hook
        names its author's id; without it the user is looked up by username."""
        if user_id is None:
            found = await self.client.run(self.client.gl.users.list, username=user, get_all=False)
            if not found:
                return False
            user_id = int(found[0].id)
        members = self._project(project).members_all
        try:
            member = await self.client.run(members.get, user_id)
        except GitlabError as exc:
            if exc.response_code == 404:
                return False  # not a member
            raise
        return int(member.access_level) >= DEVELOPER

    async def get_change(self, project: str, number: int) -> Change | None:
        try:
            change = await self.client.run(self._project(project).mergerequests.get, number)
        except GitlabError as exc:
            if exc.response_code == 404:
                return None
            raise
        refs = change.diff_refs or {}
        return Change(
            project=project,
            number=number,
            url=str(change.web_url),
            head_sha=str(change.sha or ""),
            base_sha=str(refs.get("base_sha") or ""),
            author=(change.author or {}).get("username"),
            fork=change.source_project_id != change.target_project_id,
            state=CHANGE_STATES.get(change.state, "closed"),
            title=str(change.title or ""),
        )

    def _notes_of(self, comment: CommentRef) -> Any:
        project = self._project(comment.project)
        noteable = project.mergerequests if comment.on_change else project.issues
        return noteable.get(comment.number, lazy=True).notes

    async def react(self, comment: CommentRef, emoji: str) -> None:
        note = self._notes_of(comment).get(comment.id, lazy=True)
        try:
            await self.client.run(note.awardemojis.create, {"name": emoji})
        except GitlabError as exc:
            if is_transient(exc) or refuses_token(exc):
                raise
            # given already (a job that ran before), or refused: the command goes on
            log.info("no %s on note %s of %s: %s", emoji, comment.id, comment.project, exc)

    async def reply(self, comment: CommentRef, body: str) -> None:
        await self.client.run(self._notes_of(comment).create, {"body": body})

    # the runner

    async def start_pipeline(self, request: TriggerRequest) -> PipelineStarted:
        """A pipeline on trigger.ref (default branch) with the CONJUNCTION_* variables.

        Sent once: python-gitlab does not repeat it after a 5xx, a time-out or a lost
        connection, any of which may come after GitLab created the pipeline; the job's retry
        looks for it first (`find_started`). A 429 (nothing created) is still waited out."""
        path = self.path_of(request.project)
        ref = request.trigger.ref or request.default_branch
        pipelines = self._project(request.project).pipelines
        try:
            pipeline = await self.client.run(
                pipelines.create,
                {"ref": ref, "variables": pipeline_variables(request)},
                retry_transient_errors=False,
            )
        except (GitlabError, *TRANSIENT) as exc:
            raise self._trigger_error(exc, path, ref) from exc
        return PipelineStarted(url=pipeline.web_url, run_id=str(pipeline.id))

    def _trigger_error(self, exc: BaseException, path: str, ref: str) -> TriggerError:
        if is_transient(exc):
            return TriggerError(f"GitLab is unavailable ({exc})", permanent=False)
        assert isinstance(exc, GitlabError)
        code, message = exc.response_code, message_of(exc)
        if refuses_token(exc):
            reason = (
                "GitLab refused the bot account's token (GITLAB_TOKEN): revoked, expired, or "
                "without the api scope"
            )
        elif VARIABLES_REFUSED in message:
            reason = (
                f"GitLab refuses pipeline variables on {path}: set Settings > CI/CD > Variables "
                "> Minimum role to use pipeline variables to Developer"
            )
        elif PROTECTED_REF in message:
            reason = (
                f"the GitLab bot account may not run pipelines on {ref} of {path}, a protected "
                f"branch: give it a role allowed to merge into {ref} (Maintainer by default), "
                "or set trigger.ref to a branch that is not protected"
            )
        elif code == 403:
            reason = (
                f"the GitLab bot account may not create pipelines in {path}: it needs the "
                "Developer role there (or use trigger.webhook with a pipeline trigger token)"
            )
        elif code == 404:
            reason = f"{path} not found on {self._host}, or the bot account is not a member"
        else:
            reason = f"GitLab refused a pipeline on {ref} of {path}: {message}"
        return TriggerError(reason)

    async def pipeline_artifacts(self, project: str, pipeline_id: str) -> list[Artifact]:
        """The job artifacts a pipeline kept, for its downstreams: per job with an artifacts
        archive, its name, the archive's download link (`/-/jobs/ID/artifacts/download`, for
        people and for anyone the project lets download it) and its API URL (for a CI job's
        token or an access token). None when GitLab will not list the jobs; a transient error
        is raised, so the delivery is processed again."""
        jobs = self._project(project).pipelines.get(int(pipeline_id), lazy=True).jobs
        try:
            listed = await self.client.run(jobs.list, get_all=True)
        except (GitlabError, *TRANSIENT) as exc:
            if is_transient(exc):
                raise
            log.info("no artifacts of %s pipeline %s: %s", project, pipeline_id, exc)
            return []
        api = f"{self.client.gl.api_url}/projects/{quote(self.path_of(project), safe='')}/jobs"
        return [
            {
                "name": str(job.name),
                "url": f"{self.web_url(project)}/-/jobs/{job.id}/artifacts/download",
                "api_url": f"{api}/{job.id}/artifacts",
                "job_id": job.id,
                "pipeline_id": str(pipeline_id),
                "repository": project,
                "file": archive,
            }
            for job in listed
            if (archive := _archive_of(job.attributes))
        ]

    async def failure_text(self, project: str, run_id: str) -> FailureText | None:
        """The trace of the pipeline's first failed job that was not allowed to fail (`run_id`:
        the pipeline's id), with the job's page; None when no job failed, or when GitLab
        refuses or fails (an excerpt is worth one try)."""
        try:
            return await self._failure_text(project, run_id)
        except (GitlabError, *TRANSIENT) as exc:
            log.info("no excerpt of %s pipeline %s: %s", project, run_id, exc)
            return None

    async def _failure_text(self, project: str, run_id: str) -> FailureText | None:
        gl_project = self._project(project)
        jobs = gl_project.pipelines.get(int(run_id), lazy=True).jobs
        failed = await self.client.run(jobs.list, scope="failed", get_all=False)
        blamed = [job for job in failed if not job.attributes.get("allow_failure")]
        if not blamed:
            return None
        job = blamed[0]
        trace = await self.client.run(gl_project.jobs.get(job.id, lazy=True).trace)
        text = trace.decode(errors="replace") if isinstance(trace, bytes) else str(trace or "")
        return FailureText(Source.LOG, text, job.attributes.get("web_url"))

    async def find_started(self, request: TriggerRequest) -> PipelineStarted | None:
        """A recent API pipeline whose CONJUNCTION_EVENT variable is this event."""
        gl_project = self._project(request.project)
        recent = await self.client.run(
            gl_project.pipelines.list,
            source="api",
            ref=request.trigger.ref or request.default_branch,
            per_page=FIND_STARTED_LOOKBACK,
            get_all=False,
        )
        for pipeline in recent:
            variables = await self.client.run(pipeline.variables.list, get_all=True)
            if any(v.key == EVENT_VARIABLE and v.value == request.event_id for v in variables):
                return PipelineStarted(url=pipeline.web_url, run_id=str(pipeline.id))
        return None
