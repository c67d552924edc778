"""`GiteaHost`: a repository on Gitea or Forgejo as a code host, and its Actions as a runner.

Every call goes through the one client (`conjunction.forges.gitea.client`). Projects are named by
the instance's host and `owner/repo` (`codeberg.org/acme/lib`).

Where Gitea and Forgejo differ, both are handled here:

- Starting a workflow: both take `POST …/actions/workflows/{workflow}/dispatches` with `ref` and
  `inputs`. Gitea returns the new run's id when asked with `?return_run_details=true` (200
  `{"workflow_run_id", "html_url"}`), Forgejo when asked with `"return_run_info": true` in the
  body (201 `{"id", "run_number"}`); each ignores the other's flag, and older versions of either
  answer 204 with no id.
- Listing runs (`GET …/actions/runs`): Gitea's runs carry `display_title`, Forgejo's `title`.
- Why a run failed (`failure_text`): Gitea lists a run's jobs (`GET …/actions/runs/{run}/jobs`,
  `{"jobs": [{"id", "conclusion", "html_url"}]}`) and serves a job's log as plain text
  (`GET …/actions/jobs/{job_id}/logs`); Forgejo has neither route and answers 404, as a Gitea
  from before them does: no excerpt.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

import cachetools

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
from conjunction.forges.gitea.client import (
    PAGE_SIZE,
    TRANSIENT,
    GiteaClient,
    GiteaError,
    is_transient,
)
from conjunction.forges.gitea.settings import GiteaSettings
from conjunction.names import project_key, split_project
from conjunction.runner import CLOCK_SLACK, PipelineStarted, TriggerError, TriggerRequest
from conjunction.runs import Change
from conjunction.texts import ISSUE_LABEL, ISSUE_LABEL_COLOR, ISSUE_LABEL_DESCRIPTION

log = logging.getLogger(__name__)

CONFIG_STATUS = "conjunction/config"
DESCRIPTION_LIMIT = 255
TITLE_LIMIT = 255  # an issue's title
FIND_STARTED_LOOKBACK = 20  # recent dispatched runs searched for an event's id
STATES = {"pending": "pending", "success": "success", "failure": "failure"}
# Who may command Conjunction in a comment: a collaborator's permission (an owner is `owner`)
WRITE_PERMISSIONS = frozenset({"owner", "admin", "write"})


def cut(text: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """Text within limit characters, cut at a word with an ellipsis when it is longer."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    if " " in head[limit // 2 :]:
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(" ,;:") + "…"


def workflow_inputs(request: TriggerRequest) -> dict[str, str]:
    """The workflow_dispatch inputs of CONTRACT §5. Gitea and Forgejo read only the inputs a
    workflow declares and ignore the others, so `upstream_artifacts` is always sent when the
    upstream build kept artifacts, and a pre-merge run's `conjunction_change`, `_kind` and
    `_step` whenever they say something."""
    inputs = {
        "conjunction_event": request.event_id,
        "upstream": request.upstream,
        "upstream_sha": request.upstream_sha,
        "upstream_ref": request.upstream_ref,
    }
    if request.artifacts:
        inputs["upstream_artifacts"] = json.dumps(list(request.artifacts))
    for name, value in request.run_fields().items():
        inputs[f"conjunction_{name}"] = value
    return inputs


class GiteaHost:
    """`conjunction.codehost.CodeHost` and `conjunction.runner.Runner` for one Gitea or Forgejo
    instance."""

    # where Gitea looks for CODEOWNERS, then Forgejo's own folder
    codeowners_paths = (
        "CODEOWNERS",
        "docs/CODEOWNERS",
        ".gitea/CODEOWNERS",
        ".forgejo/CODEOWNERS",
    )
    owner_syntax = "gitlab"  # users `john.doe`, teams `org/team`: spelled as on GitLab

    @classmethod
    def from_settings(cls, settings: GiteaSettings) -> GiteaHost:
        """The bot account's adapter for GITEA_URL, naming projects with GITEA_HOST."""
        assert settings.url and settings.token and settings.host
        client = GiteaClient(settings.url, settings.token)
        return cls(client, host=settings.host, web_url=settings.url)

    def __init__(self, client: GiteaClient, *, host: str, web_url: str) -> None:
        self.client = client
        self._host = host.lower()
        self._web_url = web_url.rstrip("/")
        self._labels: cachetools.TTLCache[str, int] = cachetools.TTLCache(4096, ttl=24 * 3600)

    @property
    def host(self) -> str:
        return self._host

    def path_of(self, project: str) -> str:
        """`owner/repo` of a project on this instance."""
        host, path = split_project(project)
        if host != self._host or path.count("/") != 1:
            raise ValueError(f"{project} is not a repository on {self._host}")
        return path

    def _repo(self, project: str) -> str:
        """The API path of a repository: `/repos/owner/repo`."""
        return f"/repos/{quote(self.path_of(project), safe='/')}"

    def web_url(self, project: str) -> str:
        return f"{self._web_url}/{self.path_of(project)}"

    async def project_info(self, project: str) -> ProjectInfo:
        data = await self.client.get(self._repo(project))
        return ProjectInfo(
            default_branch=data.get("default_branch") or "main",
            # an internal repository is visible to every signed-in user, not to the public
            private=bool(data.get("private") or data.get("internal")),
        )

    async def read_file(self, project: str, path: str, ref: str | None = None) -> str | None:
        params = {"ref": ref} if ref else None
        try:
            answer = await self.client.request(
                "GET", f"{self._repo(project)}/raw/{quote(path)}", params=params
            )
        except GiteaError as exc:
            if exc.status == 404:
                return None
            raise
        return answer.text

    async def _compare(
        self, project: str, base: str, head: str, *, files: bool
    ) -> dict[str, Any] | None:
        try:
            data = await self.client.get(
                f"{self._repo(project)}/compare/{quote(base)}...{quote(head)}",
                files=str(files).lower(),
                verification="false",
            )
        except GiteaError as exc:
            log.info("cannot compare %s %s...%s: %s", project, base, head, exc)
            return None
        return data if isinstance(data, dict) else None

    async def changed_files(self, project: str, base: str, head: str) -> list[str] | None:
        compared = await self._compare(project, base, head, files=True)
        if compared is None:
            return None
        commits = compared.get("commits") or []
        if len(commits) < (compared.get("total_commits") or 0):
            return None
        paths: set[str] = set()
        for commit in commits:
            files = commit.get("files")
            if files is None:
                return None  # a server that does not list a commit's files
            paths.update(str(item["filename"]) for item in files if item.get("filename"))
        return sorted(paths)

    async def commits_between(self, project: str, base: str, head: str) -> CommitRange | None:
        compared = await self._compare(project, base, head, files=False)
        if compared is None:
            return None
        commits = list(reversed(compared.get("commits") or []))  # Gitea lists newest first
        return CommitRange(
            base,
            head,
            tuple(_commit(item) for item in commits[:COMMITS_LISTED]),
            total=int(compared.get("total_commits") or len(commits)),
            url=self.compare_url(project, base, head),
        )

    async def commit_list(self, project: str, base: str, head: str) -> list[Commit] | None:
        """Every commit of the range, oldest first, from one compare; None when Gitea listed
        fewer than it counted."""
        compared = await self._compare(project, base, head, files=False)
        if compared is None:
            return None
        commits = compared.get("commits") or []
        if len(commits) < (compared.get("total_commits") or 0):
            return None
        return [_commit(item) for item in reversed(commits)]  # Gitea lists newest first

    async def branch_head(self, project: str, branch: str) -> str | None:
        """The commit a branch points at, or None when it does not exist."""
        try:
            data = await self.client.get(f"{self._repo(project)}/branches/{quote(branch)}")
        except GiteaError as exc:
            if exc.status == 404:
                return None
            raise
        commit = data.get("commit") if isinstance(data, dict) else None
        return str(commit["id"]) if isinstance(commit, dict) and commit.get("id") else None

    def compare_url(self, project: str, base: str, head: str) -> str:
        return f"{self.web_url(project)}/compare/{base}...{head}"

    def profile_url(self, owner: str) -> str:
        """A user's or an organization's page; `org/team` for a team."""
        if "/" in owner:
            org, team = owner.split("/", 1)
            return f"{self._web_url}/org/{quote(org)}/teams/{quote(team)}"
        return f"{self._web_url}/{quote(owner)}"

    # reports

    async def publish_report(
        self, project: str, sha: str, report: CommitReport, *, status: bool, check: bool
    ) -> None:
        """A commit status; Gitea has no check runs, so `check` asks for nothing more."""
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
        self, project: str, sha: str, context: str, state: str, description: str, url: str | None
    ) -> None:
        body = {"state": state, "context": context, "description": cut(description)}
        if url:
            body["target_url"] = url
        await self.client.request("POST", f"{self._repo(project)}/statuses/{sha}", body=body)

    async def report_config(self, project: str, sha: str, error: ConfigError | None) -> None:
        """A commit status `conjunction/config`: failure, naming the first problem's line and
        key and linking to that line, or success once the file is valid again."""
        url = f"{self.web_url(project)}/src/commit/{sha}/{CONFIG_PATH}"
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
        await self._set_status(project, sha, CONFIG_STATUS, "failure", description, url)

    async def comment_on_change(self, project: str, sha: str, marker: str, body: str) -> None:
        """One comment, found by its marker and edited in place, on the pull request that
        brought sha: the merged one (Gitea's `commits/{sha}/pull` knows only those), else the
        open one whose head it is (a pre-merge run's)."""
        repo = self._repo(project)
        number = await self._pull_of(repo, sha)
        if number is None:
            return  # pushed directly, or on no pull request
        if marker not in body:
            body = f"{marker}\n{body}"
        comments = await self.client.pages(f"{repo}/issues/{number}/comments")
        mine = next((c for c in comments if marker in (c.get("body") or "")), None)
        if mine is None:
            await self.client.request(
                "POST", f"{repo}/issues/{number}/comments", body={"body": body}
            )
        else:
            await self.client.request(
                "PATCH", f"{repo}/issues/comments/{mine['id']}", body={"body": body}
            )

    async def _pull_of(self, repo: str, sha: str) -> int | None:
        try:
            merged = await self.client.get(f"{repo}/commits/{sha}/pull")
        except GiteaError as exc:
            if exc.status != 404:
                raise
        else:
            number = merged.get("number") if isinstance(merged, dict) else None
            return None if number is None else int(number)
        pulls = await self.client.pages(f"{repo}/pulls", state="open")
        head = next((pull for pull in pulls if (pull.get("head") or {}).get("sha") == sha), None)
        return None if head is None else int(head["number"])

    # issues

    async def _label_id(self, project: str, name: str) -> int:
        """The repository label's id (Gitea takes label ids, not names, on a new issue),
        created when the repository has none of that name."""
        key = f"{project_key(project)}:{name.lower()}"
        if key in self._labels:
            return self._labels[key]
        repo = self._repo(project)
        labels = await self.client.pages(f"{repo}/labels")
        found = next((label for label in labels if label["name"].lower() == name.lower()), None)
        if found is None:
            found = (
                await self.client.request(
                    "POST",
                    f"{repo}/labels",
                    body={
                        "name": name,
                        "color": f"#{ISSUE_LABEL_COLOR}",
                        "description": ISSUE_LABEL_DESCRIPTION,
                    },
                )
            ).data
        self._labels[key] = int(found["id"])
        return self._labels[key]

    async def find_issue(self, project: str, marker: str) -> IssueRef | None:
        issues = await self.client.pages(
            f"{self._repo(project)}/issues", state="open", type="issues", labels=ISSUE_LABEL
        )
        for issue in issues:
            if marker in (issue.get("body") or ""):
                return IssueRef(number=int(issue["number"]), url=issue.get("html_url"))
        return None

    async def open_issue(
        self, project: str, title: str, body: str, labels: Sequence[str]
    ) -> IssueRef:
        ids = [await self._label_id(project, label) for label in labels]
        issue = (
            await self.client.request(
                "POST",
                f"{self._repo(project)}/issues",
                body={"title": markdown.cut_line(title, TITLE_LIMIT), "body": body, "labels": ids},
            )
        ).data
        return IssueRef(number=int(issue["number"]), url=issue.get("html_url"))

    async def comment_issue(self, project: str, number: int, body: str) -> None:
        await self.client.request(
            "POST", f"{self._repo(project)}/issues/{number}/comments", body={"body": body}
        )

    async def close_issue(self, project: str, number: int, body: str) -> None:
        await self.comment_issue(project, number, body)
        await self.client.request(
            "PATCH", f"{self._repo(project)}/issues/{number}", body={"state": "closed"}
        )

    # commands in comments

    async def can_write(self, project: str, user: str) -> bool:
        try:
            data = await self.client.get(
                f"{self._repo(project)}/collaborators/{quote(user, safe='')}/permission"
            )
        except GiteaError as exc:
            if exc.status in (403, 404):  # not a collaborator, or no such user
                return False
            raise
        return isinstance(data, dict) and data.get("permission") in WRITE_PERMISSIONS

    async def get_change(self, project: str, number: int) -> Change | None:
        try:
            pull = await self.client.get(f"{self._repo(project)}/pulls/{number}")
        except GiteaError as exc:
            if exc.status == 404:
                return None
            raise
        return Change.of_pull(project, pull)

    async def react(self, comment: CommentRef, emoji: str) -> None:
        await self.client.request(
            "POST",
            f"{self._repo(comment.project)}/issues/comments/{comment.id}/reactions",
            body={"content": emoji},
        )

    async def reply(self, comment: CommentRef, body: str) -> None:
        # a pull request's conversation is its issue's
        await self.comment_issue(comment.project, comment.number, body)

    # the runner

    async def start_pipeline(self, request: TriggerRequest) -> PipelineStarted:
        """Actions `workflow_dispatch` of trigger.workflow on trigger.ref (default branch).

        Sent once: not repeated after a 5xx, a time-out or a lost connection, any of which may
        come after the run was created; the job's retry looks for it first (`find_started`)."""
        path = self.path_of(request.project)
        workflow = request.trigger.workflow
        if not workflow:
            raise TriggerError(
                f"{path} on {self._host} is started through Actions: set trigger.workflow to "
                "the workflow file that declares workflow_dispatch (or use trigger.webhook)"
            )
        ref = request.trigger.ref or request.default_branch
        try:
            answer = await self.client.request(
                "POST",
                f"{self._repo(request.project)}/actions/workflows/{quote(workflow)}/dispatches",
                params={"return_run_details": "true"},  # Gitea
                body={
                    "ref": ref,
                    "inputs": workflow_inputs(request),
                    "return_run_info": True,  # Forgejo
                },
                retry=False,
            )
        except (GiteaError, *TRANSIENT) as exc:
            raise self._trigger_error(exc, path, workflow, ref) from exc
        return self._started(request.project, answer.data, workflow)

    def _started(self, project: str, data: Any, workflow: str) -> PipelineStarted:
        if isinstance(data, dict) and data.get("workflow_run_id"):  # Gitea
            return PipelineStarted(url=data.get("html_url"), run_id=str(data["workflow_run_id"]))
        if isinstance(data, dict) and data.get("id"):  # Forgejo
            number = data.get("run_number")
            url = f"{self.web_url(project)}/actions/runs/{number}" if number else None
            return PipelineStarted(url=url, run_id=str(data["id"]))
        # an older server: no id; the run is matched by its title or as the next dispatch
        return PipelineStarted(url=f"{self.web_url(project)}/actions?workflow={quote(workflow)}")

    def _trigger_error(
        self, exc: BaseException, path: str, workflow: str, ref: str
    ) -> TriggerError:
        if is_transient(exc):
            return TriggerError(f"{self._host} is unavailable ({exc})", permanent=False)
        assert isinstance(exc, GiteaError)
        if exc.status == 401:
            reason = (
                f"{self._host} refused the bot account's token (GITEA_TOKEN): revoked or expired"
            )
        elif exc.status == 403:
            reason = (
                f"the bot account may not start workflows in {path}: it needs write access "
                "to the repository, and the token the write:repository scope"
            )
        elif exc.status == 404:
            reason = (
                f"{workflow} not found on {ref} of {path} (or the bot account cannot see "
                f"{path}, or this {self._host} has no workflow dispatch API)"
            )
        else:
            reason = f"{self._host} refused to start {workflow} on {ref} of {path}: {exc.message}"
        return TriggerError(reason)

    async def failure_text(self, project: str, run_id: str) -> FailureText | None:
        """The log of the run's first failed job (`run_id`: the run's id), with the job's page;
        None when no job failed, when the server has no such routes (Forgejo, an older Gitea:
        404), or when it refuses or fails (an excerpt is worth one try)."""
        try:
            return await self._failure_text(project, run_id)
        except (GiteaError, *TRANSIENT) as exc:
            log.info("no excerpt of %s run %s: %s", project, run_id, exc)
            return None

    async def _failure_text(self, project: str, run_id: str) -> FailureText | None:
        repo = self._repo(project)
        listed = await self.client.get(
            f"{repo}/actions/runs/{quote(run_id, safe='')}/jobs", limit=PAGE_SIZE
        )
        job = first_failed_job(listed)
        if job is None:
            return None
        job_id = quote(str(job["id"]), safe="")
        answer = await self.client.request("GET", f"{repo}/actions/jobs/{job_id}/logs")
        return FailureText(Source.LOG, answer.text, job.get("html_url"))

    async def find_started(self, request: TriggerRequest) -> PipelineStarted | None:
        """A recent dispatched run whose title names the event (`run-name` with the event id);
        else, when no title does, the one run of the dispatched workflow on the dispatched ref
        created since the dispatch was sent — none when there are several, which would be a
        guess. Gitea and Forgejo both list runs (`GET …/actions/runs`), with other fields:
        Gitea's `display_title`, `path` and `head_branch`, Forgejo's `title`, `workflow_id`,
        `prettyref` and `created`. A server without that API: None."""
        try:
            data = await self.client.get(
                f"{self._repo(request.project)}/actions/runs",
                event="workflow_dispatch",
                page=1,
                limit=FIND_STARTED_LOOKBACK,
            )
        except GiteaError as exc:
            if exc.status in (404, 405):
                return None
            raise
        runs = [run for run in (data or {}).get("workflow_runs") or [] if isinstance(run, dict)]
        named = [
            run
            for run in runs
            if request.event_id in f"{run.get('display_title') or ''} {run.get('title') or ''}"
        ]
        fitting = named or [run for run in runs if _fits(run, request)]
        if len(fitting) != 1:
            return None
        return PipelineStarted(url=fitting[0].get("html_url"), run_id=str(fitting[0]["id"]))


def first_failed_job(listed: object) -> dict[str, Any] | None:
    """The first job of Gitea's list of a run's jobs that failed (a timed-out job is one),
    or None: none failed, or the answer is not such a list."""
    jobs = listed.get("jobs") if isinstance(listed, dict) else None
    if not isinstance(jobs, list):
        return None
    failed = (
        job
        for job in jobs
        if isinstance(job, dict) and job.get("conclusion") == "failure" and job.get("id")
    )
    return next(failed, None)


def _fits(run: dict[str, Any], request: TriggerRequest) -> bool:
    """A dispatched run that names no event may be this request's: its workflow on its ref,
    created (Gitea: started) since it was sent, by the server's clock."""
    created = timestamp(run.get("created") or run.get("started_at"))
    if request.sent_at is None or created is None or created < request.sent_at - CLOCK_SLACK:
        return False
    ref = request.trigger.ref or request.default_branch
    workflow = workflow_file(run.get("workflow_id") or run.get("path"))
    branch = run.get("head_branch") or run.get("prettyref")
    return branch == ref and workflow == request.trigger.workflow


def timestamp(value: object) -> datetime | None:
    """An RFC 3339 time as Gitea and Forgejo write it, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def workflow_file(path: object) -> str | None:
    """`build.yml` of `.gitea/workflows/build.yml` or of Gitea's `build.yml@refs/heads/main`."""
    if not isinstance(path, str) or not path:
        return None
    return PurePosixPath(path.split("@", 1)[0]).name or None


def _commit(item: dict[str, Any]) -> Commit:
    details = item.get("commit") or {}
    user = item.get("author") or {}
    login = user.get("login")
    author = login or (details.get("author") or {}).get("name") or ""
    title = str(details.get("message") or "").split("\n", 1)[0]
    return Commit(
        str(item["sha"]), title, str(author), item.get("html_url"), str(login) if login else None
    )
