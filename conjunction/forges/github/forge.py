"""The GitHub adapter, a code host and a runner: reads repositories, starts workflows, and posts
results back through the REST API."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import quote

import cachetools
import gidgethub
import yaml

from conjunction import excerpts, markdown
from conjunction.codehost import (
    COMMITS_LISTED,
    CommentRef,
    Commit,
    CommitRange,
    CommitReport,
    IssueRef,
    ProjectInfo,
)
from conjunction.config import bounded_yaml
from conjunction.config.repo_config import ConfigError
from conjunction.excerpts import FailureText, Source
from conjunction.forges.github.checks import CONFIG_CHECK_NAME, config_check_outputs
from conjunction.forges.github.client import TRANSIENT_ERRORS, PolicyAPI
from conjunction.forges.github.payloads import timestamp
from conjunction.names import project_key, split_project
from conjunction.queue import RetryLater
from conjunction.runner import CLOCK_SLACK, PipelineStarted, TriggerError, TriggerRequest
from conjunction.runs import Change
from conjunction.texts import ISSUE_LABEL, ISSUE_LABEL_COLOR, ISSUE_LABEL_DESCRIPTION

log = logging.getLogger(__name__)

# Who may command Conjunction in a comment: a collaborator's permission (`maintain` is reported
# as `write` in `permission`, and by name in `role_name`, as a custom role may be)
WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})
COMPARE_FILE_LIMIT = 300
COMPARE = "/repos/{owner}/{repo}/compare/{base}...{head}"
COMPARE_PAGE = COMPARE + "{?per_page,page}"
COMPARE_PER_PAGE = 100  # commits a page of the compare API; more than one page is paginated
COMMIT_LIST_LIMIT = 10_000  # commits of a culprit search's range, at most

STATUS_DESCRIPTION_LIMIT = 140
# GitHub refuses a check run's summary of 65,535 characters or more, an issue's body or a
# comment over 65,536, a title over 256: a longer text is cut, saying how much was left out
CHECK_SUMMARY_LIMIT = 65_534
BODY_LIMIT = 65_536
TITLE_LIMIT = 256
CHECK_TITLE_LIMIT = 255
PERMISSION_REASON = (
    "the Conjunction app lacks permission (actions: write for workflow_dispatch, "
    "contents: write for repository_dispatch)"
)


ARTIFACTS_INPUT = "upstream_artifacts"
RUN_INPUTS = "conjunction_"  # conjunction_change, conjunction_kind, conjunction_step when declared
WORKFLOW_CACHE_SECONDS = 600
MAX_WORKFLOW_BYTES = 64 * 1024  # a workflow file read for its inputs; a larger one declares none


def _dispatch_inputs(workflow_text: str) -> set[str]:
    """The workflow_dispatch inputs a workflow file declares: none when it does not parse, is
    over MAX_WORKFLOW_BYTES, or over the bounded loader's depth, value or text budgets (the
    downstream's file is anyone's text, and this runs on the event loop)."""
    if len(workflow_text.encode(errors="surrogatepass")) > MAX_WORKFLOW_BYTES:
        return set()
    try:
        workflow, _ = bounded_yaml.load(workflow_text)
    except (yaml.YAMLError, RecursionError, ValueError):
        return set()
    if not isinstance(workflow, dict):
        return set()
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    dispatch = on.get("workflow_dispatch") if isinstance(on, dict) else None
    inputs = dispatch.get("inputs") if isinstance(dispatch, dict) else None
    return set(map(str, inputs)) if isinstance(inputs, dict) else set()


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _commit(item: dict[str, Any]) -> Commit:
    """One commit of a compare answer (its `author` is null for an unknown e-mail address)."""
    written = item.get("commit") or {}
    message = str(written.get("message") or "")
    login = (item.get("author") or {}).get("login")
    return Commit(
        sha=str(item["sha"]),
        title=_cut(message.split("\n", 1)[0], 120),
        author=str(login or (written.get("author") or {}).get("name") or "unknown"),
        url=item.get("html_url"),
        login=str(login) if login else None,
    )


class GitHubForge:
    """`conjunction.codehost.CodeHost` and `conjunction.runner.Runner` for GitHub (github.com or an
    Enterprise Server).

    `clients` gives the policy client (`conjunction.forges.github.client`) for a project, which
    paces, retries and postpones on rate limits.
    """

    codeowners_paths = ("CODEOWNERS", ".github/CODEOWNERS", "docs/CODEOWNERS")
    owner_syntax = "github"  # how its users and teams are spelled (`parse_config`'s `forge`)

    def __init__(
        self,
        clients: Callable[[str], Awaitable[PolicyAPI]],
        *,
        host: str = "github.com",
        web_url: str = "https://github.com",
    ) -> None:
        self._clients = clients
        self._host = host.lower()
        self._web_url = web_url.rstrip("/")
        # (project, sha, check name) -> id of our check run of that name on that commit
        self._check_runs: cachetools.TTLCache[tuple[str, str, str], int] = cachetools.TTLCache(
            maxsize=4096, ttl=24 * 3600
        )
        self._check_run_locks: cachetools.LRUCache[tuple[str, str, str], asyncio.Lock] = (
            cachetools.LRUCache(maxsize=4096)
        )
        # (project, label name) known to exist
        self._labels: cachetools.TTLCache[tuple[str, str], bool] = cachetools.TTLCache(
            maxsize=4096, ttl=24 * 3600
        )
        # (project, workflow, ref) -> the workflow_dispatch inputs the workflow declares
        self._inputs: cachetools.TTLCache[tuple[str, str, str], set[str]] = cachetools.TTLCache(
            maxsize=4096, ttl=WORKFLOW_CACHE_SECONDS
        )

    def _repo(self, project: str) -> tuple[str, str]:
        host, path = split_project(project)
        owner, _, repo = path.partition("/")
        if host != self._host or not owner or not repo:
            raise ValueError(f"{project} is not a repository on {self._host}")
        return owner, repo

    async def _call(
        self,
        project: str,
        method: Literal["GET", "POST", "PATCH"],
        url: str,
        *,
        data: Any = None,
        paged: bool = False,
        **url_vars: Any,
    ) -> Any:
        """One REST call for project, with `{owner}` and `{repo}` filled in from it."""
        owner, repo = self._repo(project)
        url_vars = {"owner": owner, "repo": repo, **url_vars}
        gh = await self._clients(project)
        if method == "GET" and paged:
            return [item async for item in gh.getiter(url, url_vars)]
        if method == "GET":
            return await gh.getitem(url, url_vars)
        send = gh.patch if method == "PATCH" else gh.post
        return await send(url, url_vars, data=data)

    @property
    def host(self) -> str:
        return self._host

    async def project_info(self, project: str) -> ProjectInfo:
        data = await self._call(project, "GET", "/repos/{owner}/{repo}")
        return ProjectInfo(
            default_branch=str(data["default_branch"]), private=bool(data["private"])
        )

    async def read_file(self, project: str, path: str, ref: str | None = None) -> str | None:
        try:
            data = await self._call(
                project, "GET", "/repos/{owner}/{repo}/contents/{+path}{?ref}", path=path, ref=ref
            )
        except gidgethub.BadRequest as exc:
            if exc.status_code == 404:
                return None
            raise
        if not isinstance(data, dict) or data.get("type", "file") != "file":
            return None  # a directory or a submodule
        return base64.b64decode(data.get("content") or "").decode("utf-8", errors="replace")

    async def start_pipeline(self, request: TriggerRequest) -> PipelineStarted:
        try:
            if request.trigger.workflow:
                return await self._dispatch_workflow(request, request.trigger.workflow)
            return await self._dispatch_repository(request)
        except TRANSIENT_ERRORS as exc:
            problem = str(exc) or type(exc).__name__
            raise TriggerError(f"GitHub is unavailable ({problem})", permanent=False) from exc
        except LookupError as exc:  # from the client factory: the app is not installed
            raise TriggerError(str(exc)) from exc

    async def find_started(self, request: TriggerRequest) -> PipelineStarted | None:
        """A recent dispatched run whose title names the event (`run-name` with the event id,
        as the README's workflow example does); else, when the name does not say, the one run
        of the dispatched workflow on the dispatched ref created since the dispatch was sent —
        none when there are several, which would be a guess."""
        event = "workflow_dispatch" if request.trigger.workflow else "repository_dispatch"
        data = await self._call(
            request.project,
            "GET",
            "/repos/{owner}/{repo}/actions/runs{?event,per_page}",
            event=event,
            per_page=50,
        )
        runs = data.get("workflow_runs") or []
        named = [run for run in runs if request.event_id in (run.get("display_title") or "")]
        fitting = named or [run for run in runs if _fits(run, request)]
        if len(fitting) != 1:
            return None
        return PipelineStarted(url=fitting[0].get("html_url"), run_id=str(fitting[0]["id"]))

    async def _dispatch_workflow(self, request: TriggerRequest, workflow: str) -> PipelineStarted:
        owner, repo = self._repo(request.project)
        ref = request.trigger.ref or request.default_branch
        inputs = {
            "conjunction_event": request.event_id,
            "upstream": request.upstream,
            "upstream_sha": request.upstream_sha,
            "upstream_ref": request.upstream_ref,
        }
        if request.artifacts and await self._takes_input(
            request.project, workflow, ref, ARTIFACTS_INPUT
        ):
            inputs[ARTIFACTS_INPUT] = json.dumps(list(map(dict, request.artifacts)))
        for name, value in request.run_fields().items():
            if await self._takes_input(request.project, workflow, ref, RUN_INPUTS + name):
                inputs[RUN_INPUTS + name] = value
        body = {"ref": ref, "inputs": inputs, "return_run_details": True}
        try:
            data = await self._call(
                request.project,
                "POST",
                "/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches",
                data=body,
                workflow=workflow,
            )
        except gidgethub.BadRequest as exc:
            message = str(exc)
            if exc.status_code == 404:
                reason = f"workflow {workflow} not found in {owner}/{repo} on {ref}"
            elif exc.status_code == 422 and "workflow_dispatch" in message:
                reason = (
                    f"{workflow} has no workflow_dispatch trigger: "
                    "add `on: workflow_dispatch` with the conjunction inputs"
                )
            elif exc.status_code == 422 and "Unexpected inputs" in message:
                reason = (
                    f"{workflow} does not declare the inputs "
                    "conjunction_event, upstream, upstream_sha, upstream_ref"
                )
            elif exc.status_code == 403:
                reason = PERMISSION_REASON
            else:
                reason = message
            raise TriggerError(reason) from exc
        if not isinstance(data, dict) or data.get("workflow_run_id") is None:
            return PipelineStarted()  # an older GitHub answers 204 without run details
        run_id = str(data["workflow_run_id"])
        url = data.get("html_url") or f"{self._web_url}/{owner}/{repo}/actions/runs/{run_id}"
        return PipelineStarted(url=url, run_id=run_id)

    async def _takes_input(self, project: str, workflow: str, ref: str, name: str) -> bool:
        """Whether the workflow file declares the input (`upstream_artifacts`,
        `conjunction_change`, ...): GitHub refuses a dispatch with an input the workflow does
        not declare. The file is read once for all of them."""
        key = (project_key(project), workflow, ref)
        if key not in self._inputs:
            text = await self.read_file(project, f".github/workflows/{workflow}", ref)
            self._inputs[key] = _dispatch_inputs(text or "")
        return name in self._inputs[key]

    async def _dispatch_repository(self, request: TriggerRequest) -> PipelineStarted:
        owner, repo = self._repo(request.project)
        payload: dict[str, Any] = {
            "event": request.event_id,
            "upstream": request.upstream,
            "upstream_sha": request.upstream_sha,
            "upstream_ref": request.upstream_ref,
            "upstream_url": request.upstream_url,
            "callback_url": request.callback_url,
        }
        if request.artifacts:
            payload["artifacts"] = list(map(dict, request.artifacts))
        payload.update(request.run_fields())
        body = {"event_type": "conjunction", "client_payload": payload}
        try:
            await self._call(request.project, "POST", "/repos/{owner}/{repo}/dispatches", data=body)
        except gidgethub.BadRequest as exc:
            if exc.status_code == 404:
                reason = f"repository {owner}/{repo} not found or app not installed"
            elif exc.status_code == 403:
                reason = PERMISSION_REASON
            else:
                reason = str(exc)
            raise TriggerError(reason) from exc
        return PipelineStarted()

    async def failure_text(self, project: str, run_id: str) -> FailureText | None:
        """Why the workflow run failed: its first failed job's check run annotations of level
        `failure` (GitHub's own `Process completed with exit code N.` left out), else that
        job's log (GitHub answers with a redirect to the plain text); None when no job failed,
        or when GitHub refuses or fails (an excerpt is worth one try)."""
        try:
            return await self._failure_text(project, run_id)
        except (gidgethub.HTTPException, RetryLater, *TRANSIENT_ERRORS) as exc:
            log.info("no excerpt of %s run %s: %r", project, run_id, exc)
            return None

    async def _failure_text(self, project: str, run_id: str) -> FailureText | None:
        listed = await self._call(
            project,
            "GET",
            "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs?filter=latest&per_page=100",
            run_id=run_id,
        )
        failed = [
            job
            for job in listed.get("jobs") or []
            if job.get("conclusion") in ("failure", "timed_out")
        ]
        if not failed:
            return None
        job = failed[0]
        # a job is a check run of the same id; its `check_run_url` says so
        check_run = str(job.get("check_run_url") or "").rsplit("/", 1)[-1] or job["id"]
        annotations = await self._call(
            project,
            "GET",
            "/repos/{owner}/{repo}/check-runs/{check_run}/annotations",
            check_run=check_run,
        )
        page = job.get("html_url")
        found = excerpts.annotations_text(annotations or [])
        if found:
            return FailureText(Source.ANNOTATIONS, found, page)
        log_text = await self._call(
            project, "GET", "/repos/{owner}/{repo}/actions/jobs/{job_id}/logs", job_id=job["id"]
        )
        return FailureText(Source.LOG, log_text if isinstance(log_text, str) else "", page)

    async def publish_report(
        self, project: str, sha: str, report: CommitReport, *, status: bool, check: bool
    ) -> None:
        if status:
            await self._set_commit_status(project, sha, report)
        if check:
            await self._upsert_check(project, sha, report)

    async def _set_commit_status(self, project: str, sha: str, report: CommitReport) -> None:
        await self._call(
            project,
            "POST",
            "/repos/{owner}/{repo}/statuses/{sha}",
            data={
                "state": report.state,
                "target_url": report.target_url,
                "description": _cut(report.description, STATUS_DESCRIPTION_LIMIT),
                "context": report.status_context,
            },
            sha=sha,
        )

    async def _upsert_check(self, project: str, sha: str, report: CommitReport) -> None:
        body: dict[str, Any] = {
            "details_url": report.target_url,
            "output": {
                "title": _cut(report.title, CHECK_TITLE_LIMIT),
                "summary": markdown.fit(report.summary, CHECK_SUMMARY_LIMIT, report.target_url),
            },
        }
        if report.completed:
            body.update(status="completed", conclusion=report.conclusion)
        else:
            body["status"] = "in_progress"
        key = (project_key(project), sha, report.check_name)
        # two reports of one commit at once (a progress report beside another) find or make
        # one check run between them, never two
        async with self._check_run_locks.setdefault(key, asyncio.Lock()):
            run_id = self._check_runs.get(key)
            if run_id is None:
                found = await self._call(
                    project,
                    "GET",
                    "/repos/{owner}/{repo}/commits/{sha}/check-runs{?check_name}",
                    sha=sha,
                    check_name=report.check_name,
                )
                runs = found.get("check_runs") or []
                if runs:
                    run_id = self._check_runs[key] = int(runs[0]["id"])
            if run_id is None:
                created = await self._call(
                    project,
                    "POST",
                    "/repos/{owner}/{repo}/check-runs",
                    data={"name": report.check_name, "head_sha": sha, **body},
                )
                self._check_runs[key] = int(created["id"])
                return
        await self._call(
            project, "PATCH", "/repos/{owner}/{repo}/check-runs/{id}", data=body, id=run_id
        )

    async def comment_on_change(self, project: str, sha: str, marker: str, body: str) -> None:
        pulls = await self._call(
            project, "GET", "/repos/{owner}/{repo}/commits/{sha}/pulls", sha=sha
        )
        if not pulls:
            return
        number = pulls[0]["number"]
        if marker not in body:
            body = f"{marker}\n{body}"
        body = markdown.fit(body, BODY_LIMIT)
        comments = await self._call(
            project,
            "GET",
            "/repos/{owner}/{repo}/issues/{number}/comments",
            paged=True,
            number=number,
        )
        mine = next((c for c in comments if marker in (c.get("body") or "")), None)
        if mine is None:
            await self.comment_issue(project, number, body)
        else:
            await self._call(
                project,
                "PATCH",
                "/repos/{owner}/{repo}/issues/comments/{id}",
                data={"body": body},
                id=mine["id"],
            )

    async def _ensure_label(self, project: str, name: str) -> None:
        key = (project_key(project), name.lower())
        if key in self._labels:
            return
        try:
            await self._call(project, "GET", "/repos/{owner}/{repo}/labels/{name}", name=name)
        except gidgethub.BadRequest as exc:
            if exc.status_code != 404:
                raise
            try:
                await self._call(
                    project,
                    "POST",
                    "/repos/{owner}/{repo}/labels",
                    data={
                        "name": name,
                        "color": ISSUE_LABEL_COLOR,
                        "description": ISSUE_LABEL_DESCRIPTION,
                    },
                )
            except gidgethub.BadRequest as create_exc:
                if create_exc.status_code != 422:  # 422: created meanwhile by someone else
                    raise
        self._labels[key] = True

    async def find_issue(self, project: str, marker: str) -> IssueRef | None:
        issues = await self._call(
            project,
            "GET",
            "/repos/{owner}/{repo}/issues{?labels,state}",
            paged=True,
            labels=ISSUE_LABEL,
            state="open",
        )
        for issue in issues:
            if "pull_request" not in issue and marker in (issue.get("body") or ""):
                return IssueRef(number=int(issue["number"]), url=issue.get("html_url"))
        return None

    async def open_issue(
        self, project: str, title: str, body: str, labels: Sequence[str]
    ) -> IssueRef:
        for label in labels:
            await self._ensure_label(project, label)
        data = await self._call(
            project,
            "POST",
            "/repos/{owner}/{repo}/issues",
            data={
                "title": markdown.cut_line(title, TITLE_LIMIT),
                "body": markdown.fit(body, BODY_LIMIT),
                "labels": list(labels),
            },
        )
        return IssueRef(number=int(data["number"]), url=data.get("html_url"))

    async def comment_issue(self, project: str, number: int, body: str) -> None:
        await self._call(
            project,
            "POST",
            "/repos/{owner}/{repo}/issues/{number}/comments",
            data={"body": markdown.fit(body, BODY_LIMIT)},
            number=number,
        )

    async def close_issue(self, project: str, number: int, body: str) -> None:
        await self.comment_issue(project, number, body)
        await self._call(
            project,
            "PATCH",
            "/repos/{owner}/{repo}/issues/{number}",
            data={"state": "closed", "state_reason": "completed"},
            number=number,
        )

    async def can_write(self, project: str, user: str) -> bool:
        try:
            data = await self._call(
                project,
                "GET",
                "/repos/{owner}/{repo}/collaborators/{username}/permission",
                username=user,
            )
        except gidgethub.BadRequest as exc:
            if exc.status_code in (403, 404):  # not a collaborator, or no such user
                return False
            raise
        granted = {data.get("permission"), data.get("role_name")}
        return bool(granted & WRITE_PERMISSIONS)

    async def get_change(self, project: str, number: int) -> Change | None:
        try:
            pull = await self._call(
                project, "GET", "/repos/{owner}/{repo}/pulls/{number}", number=number
            )
        except gidgethub.BadRequest as exc:
            if exc.status_code == 404:
                return None
            raise
        return Change.of_pull(project, pull)

    async def react(self, comment: CommentRef, emoji: str) -> None:
        await self._call(
            comment.project,
            "POST",
            "/repos/{owner}/{repo}/issues/comments/{id}/reactions",
            data={"content": emoji},
            id=comment.id,
        )

    async def reply(self, comment: CommentRef, body: str) -> None:
        # a pull request's conversation is its issue's
        await self.comment_issue(comment.project, comment.number, body)

    async def changed_files(self, project: str, base: str, head: str) -> list[str] | None:
        try:
            compared = await self._call(project, "GET", COMPARE, base=base, head=head)
        except (gidgethub.BadRequest, LookupError) as exc:  # LookupError: app not installed
            log.info("cannot compare %s %s...%s: %s", project, base, head, exc)
            return None
        files = compared.get("files") or []
        if len(files) >= COMPARE_FILE_LIMIT:
            return None  # GitHub lists at most 300 files: the rest is unknown
        return [entry["filename"] for entry in files]

    def compare_url(self, project: str, base: str, head: str) -> str:
        owner, repo = self._repo(project)
        return f"{self._web_url}/{owner}/{repo}/compare/{base}...{head}"

    def profile_url(self, owner: str) -> str:
        """A user's or organization's page, or a team's (`org/team`)."""
        organization, slash, team = owner.partition("/")
        if slash:
            return f"{self._web_url}/orgs/{quote(organization)}/teams/{quote(team)}"
        return f"{self._web_url}/{quote(owner)}"

    async def commits_between(self, project: str, base: str, head: str) -> CommitRange | None:
        """From the compare API: titles, authors (login, else the commit's author name) and
        links of the first COMMITS_LISTED commits, and `total_commits`."""
        try:
            compared = await self._call(project, "GET", COMPARE, base=base, head=head)
        except (gidgethub.BadRequest, LookupError) as exc:  # LookupError: app not installed
            log.info("cannot compare %s %s...%s: %s", project, base, head, exc)
            return None
        commits = compared.get("commits") or []
        return CommitRange(
            base=base,
            head=head,
            commits=tuple(_commit(item) for item in commits[:COMMITS_LISTED]),
            total=int(compared.get("total_commits", len(commits))),
            url=self.compare_url(project, base, head),
        )

    async def commit_list(self, project: str, base: str, head: str) -> list[Commit] | None:
        """Every commit of the range from the compare API, a page of COMPARE_PER_PAGE at a time
        (unpaginated, it lists 250 at most): the pages hold the commits oldest first, and
        `total_commits` says when the last one came."""
        listed: list[Commit] = []
        for page in range(1, COMMIT_LIST_LIMIT // COMPARE_PER_PAGE + 1):
            try:
                compared = await self._call(
                    project,
                    "GET",
                    COMPARE_PAGE,
                    base=base,
                    head=head,
                    per_page=COMPARE_PER_PAGE,
                    page=page,
                )
            except (gidgethub.BadRequest, LookupError) as exc:  # LookupError: not installed
                log.info("cannot list commits %s %s...%s: %s", project, base, head, exc)
                return None
            commits = compared.get("commits") or []
            listed += [_commit(item) for item in commits]
            total = int(compared.get("total_commits", len(listed)))
            if len(listed) >= total or len(commits) < COMPARE_PER_PAGE:
                return listed if len(listed) == total else None
        return None  # longer than a search is worth

    async def report_config(self, project: str, sha: str, error: ConfigError | None) -> None:
        """A completed check run on sha: failing with the problems as annotations, else passing.

        GitHub takes at most 50 annotations per call: the rest follow in PATCHes.
        """
        first, *more = config_check_outputs(error)
        conclusion = "success" if error is None else "failure"
        created = await self._call(
            project,
            "POST",
            "/repos/{owner}/{repo}/check-runs",
            data={
                "name": CONFIG_CHECK_NAME,
                "head_sha": sha,
                "status": "completed",
                "conclusion": conclusion,
                "output": first,
            },
        )
        for output in more:
            await self._call(
                project,
                "PATCH",
                "/repos/{owner}/{repo}/check-runs/{id}",
                data={"output": output},
                id=created["id"],
            )


def _fits(run: dict[str, Any], request: TriggerRequest) -> bool:
    """A dispatched run that names no event may be this request's: its workflow on its ref,
    created since it was sent (by GitHub's clock, which may differ by a second or two)."""
    created = timestamp(run.get("created_at"))
    if request.sent_at is None or created is None or created < request.sent_at - CLOCK_SLACK:
        return False
    ref = request.trigger.ref or request.default_branch
    workflow = request.trigger.workflow
    path = PurePosixPath(str(run.get("path") or "")).name
    return run.get("head_branch") == ref and (workflow is None or path == workflow)
