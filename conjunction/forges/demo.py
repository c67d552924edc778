"""A simulated forge and CI for `python app.py demo`: a code host and a runner like any other
adapter, keeping everything in memory.

Repositories hold files and commits; commit statuses, check runs, comments and issues are kept
as posted, for the demo's own pages (`conjunction/web/demo.py`) to show. Pipelines — a push's own
and the ones Conjunction starts — run on a simulated clock: each finishes when its time has come and
is reported through the engine's one entry for finished pipelines, as a forge's webhook would.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from conjunction import codehost
from conjunction.codehost import CommentRef, CommitRange, CommitReport, IssueRef, ProjectInfo
from conjunction.config.repo_config import ConfigError
from conjunction.engine_api import FinishedPipeline
from conjunction.excerpts import FailureText, Source
from conjunction.models import utcnow
from conjunction.results import Result
from conjunction.runner import PipelineStarted, TriggerRequest
from conjunction.runs import Change

log = logging.getLogger(__name__)

HOST = "demo.test"
PIPELINE = "CI"


@dataclass(frozen=True)
class Outcome:
    """How a simulated pipeline ends: after how many seconds, with which result."""

    seconds: float
    result: Result
    note: str = ""  # what its log says about a failure


@dataclass
class Commit:
    project: str
    sha: str
    message: str
    at: datetime
    author: str = "demo"


@dataclass
class Run:
    """One simulated pipeline: a push's own run (`request` None) or one Conjunction started."""

    number: int
    project: str
    sha: str
    started_at: datetime
    due_at: datetime
    planned: Result
    note: str = ""
    request: TriggerRequest | None = None
    result: Result | None = None
    finished_at: datetime | None = None


@dataclass
class Issue:
    number: int
    project: str
    title: str
    body: str
    labels: list[str]
    opened_at: datetime
    state: str = "open"
    comments: list[str] = field(default_factory=list)


@dataclass
class PostedReport:
    """What Conjunction last showed on one commit, as a status and as a check run."""

    status: CommitReport | None = None
    check: CommitReport | None = None
    comment: str | None = None
    updated_at: datetime = field(default_factory=utcnow)


Planner = Callable[[str, TriggerRequest | None], Outcome]
Reporter = Callable[[FinishedPipeline], Awaitable[object]]


class DemoForge:
    """Code host and runner of the simulated forge; `plan` decides how each pipeline ends."""

    codeowners_paths: Sequence[str] = ("CODEOWNERS",)

    def __init__(self, base_url: str, plan: Planner, *, host: str = HOST) -> None:
        self.host = host
        self.base_url = base_url.rstrip("/")
        self.plan = plan
        self.files: dict[tuple[str, str], str] = {}
        self.private: set[str] = set()
        self.commits: dict[str, list[Commit]] = {}
        self.runs: list[Run] = []
        self.issues: list[Issue] = []
        self.reports: dict[str, PostedReport] = {}  # by commit sha
        self.config_reports: dict[str, str] = {}  # by commit sha: what the config check said
        self.changes: list[Commit] = []  # heads of unmerged changes, not on any default branch
        self.writers: set[str] = set()  # who may write to every project
        self._numbers = itertools.count(1)

    # the simulated repositories

    def add_project(self, name: str, files: dict[str, str], *, private: bool = False) -> Commit:
        for path, text in files.items():
            self.files[(name, path)] = text
        if private:
            self.private.add(name)
        return self.commit(name, "Initial commit")

    def commit(self, project: str, message: str, author: str = "demo") -> Commit:
        commit = Commit(project, secrets.token_hex(20), message, utcnow(), author)
        self.commits.setdefault(project, []).append(commit)
        return commit

    def change_commit(self, project: str, message: str) -> Commit:
        """A commit of an unmerged change: not on the default branch."""
        commit = Commit(project, secrets.token_hex(20), message, utcnow())
        self.changes.append(commit)
        return commit

    def head(self, project: str) -> Commit:
        return self.commits[project][-1]

    def find_commit(self, sha: str) -> Commit | None:
        for commits in [*self.commits.values(), self.changes]:
            for commit in commits:
                if commit.sha == sha:
                    return commit
        return None

    def push(self, project: str, message: str, author: str = "demo") -> Run:
        """A new commit on the default branch, and its own pipeline."""
        commit = self.commit(project, message, author)
        return self._start(project, commit.sha, None)

    def run_url(self, number: int) -> str:
        return f"{self.base_url}/demo/runs/{number}"

    # the simulated CI

    def _start(self, project: str, sha: str, request: TriggerRequest | None) -> Run:
        outcome = self.plan(project, request)
        now = utcnow()
        run = Run(
            number=next(self._numbers),
            project=project,
            sha=sha,
            started_at=now,
            due_at=now + timedelta(seconds=outcome.seconds),
            planned=outcome.result,
            note=outcome.note,
            request=request,
        )
        self.runs.append(run)
        return run

    def running(self) -> list[Run]:
        return [run for run in self.runs if run.result is None]

    async def finish_due(self, report: Reporter, now: datetime | None = None) -> int:
        """Finish every run whose time has come and report it; returns how many finished."""
        now = now or utcnow()
        due = [run for run in self.running() if run.due_at <= now]
        for run in due:
            await self.finish(run, report, run.planned)
        return len(due)

    async def finish(self, run: Run, report: Reporter, result: Result) -> None:
        run.result, run.finished_at = result, utcnow()
        finished = FinishedPipeline(
            project=run.project,
            sha=run.sha,
            ref="main",
            result=result,
            pipeline=PIPELINE,
            run_id=str(run.number),
            # a run Conjunction started names its event, as a real CI's run name does: its
            # result is its trigger's even when it ends before the start was recorded
            title=f"{PIPELINE} #{run.number}"
            + (f" (conjunction {run.request.event_id})" if run.request else ""),
            url=self.run_url(run.number),
            started_by="push" if run.request is None else "dispatch",
        )
        try:
            await report(finished)
        except Exception:
            log.exception("the result of simulated run %d was not taken", run.number)

    # Runner

    async def start_pipeline(self, request: TriggerRequest) -> PipelineStarted:
        run = self._start(request.project, self.head(request.project).sha, request)
        return PipelineStarted(url=self.run_url(run.number), run_id=str(run.number))

    async def find_started(self, request: TriggerRequest) -> PipelineStarted | None:
        for run in self.runs:
            if run.request is not None and run.request.event_id == request.event_id:
                return PipelineStarted(url=self.run_url(run.number), run_id=str(run.number))
        return None

    async def failure_text(self, project: str, run_id: str) -> FailureText | None:
        """The end of a failed run's log, as its page shows it."""
        run = next((run for run in self.runs if str(run.number) == run_id), None)
        if run is None or run.result is None or not run.result.broken or not run.note:
            return None
        lines = ["$ make test", f"FAILED {run.note}", "make: *** [test] Error 1"]
        return FailureText(Source.LOG, "\n".join(lines), self.run_url(run.number))

    # CodeHost

    async def project_info(self, project: str) -> ProjectInfo:
        return ProjectInfo(default_branch="main", private=project in self.private)

    async def read_file(self, project: str, path: str, ref: str | None = None) -> str | None:
        return self.files.get((project, path))

    async def changed_files(self, project: str, base: str, head: str) -> list[str] | None:
        return None

    async def commit_list(self, project: str, base: str, head: str) -> list[codehost.Commit] | None:
        shas = [commit.sha for commit in self.commits.get(project, [])]
        if base not in shas or head not in shas:
            return None
        return [
            codehost.Commit(item.sha, item.message, item.author, login=item.author)
            for item in self.commits[project][shas.index(base) + 1 : shas.index(head) + 1]
        ]

    async def commits_between(self, project: str, base: str, head: str) -> CommitRange | None:
        between = await self.commit_list(project, base, head)
        if between is None:
            return None
        return CommitRange(
            base,
            head,
            tuple(between[: codehost.COMMITS_LISTED]),
            total=len(between),
            url=self.compare_url(project, base, head),
        )

    async def publish_report(
        self, project: str, sha: str, report: CommitReport, *, status: bool, check: bool
    ) -> None:
        posted = self.reports.setdefault(sha, PostedReport())
        posted.status = report if status else posted.status
        posted.check = report if check else posted.check
        posted.updated_at = utcnow()

    async def comment_on_change(self, project: str, sha: str, marker: str, body: str) -> None:
        self.reports.setdefault(sha, PostedReport()).comment = body

    async def find_issue(self, project: str, marker: str) -> IssueRef | None:
        for issue in self.issues:
            if issue.project == project and issue.state == "open" and marker in issue.body:
                return IssueRef(issue.number, self.issue_url(issue.number))
        return None

    async def open_issue(
        self, project: str, title: str, body: str, labels: Sequence[str]
    ) -> IssueRef:
        number = len(self.issues) + 1
        self.issues.append(Issue(number, project, title, body, list(labels), utcnow()))
        return IssueRef(number, self.issue_url(number))

    async def comment_issue(self, project: str, number: int, body: str) -> None:
        self.issue(number).comments.append(body)

    async def close_issue(self, project: str, number: int, body: str) -> None:
        issue = self.issue(number)
        issue.comments.append(body)
        issue.state = "closed"

    async def can_write(self, project: str, user: str) -> bool:
        return user in self.writers

    async def report_config(self, project: str, sha: str, error: ConfigError | None) -> None:
        self.config_reports[sha] = str(error) if error else ".conjunction.yml is valid"

    def compare_url(self, project: str, base: str, head: str) -> str:
        return f"{self.base_url}/demo/compare/{base}...{head}"

    def profile_url(self, owner: str) -> None:
        return None  # the simulated forge has no pages of people

    async def get_change(self, project: str, number: int) -> Change | None:
        return None  # it has no pull requests

    async def react(self, comment: CommentRef, emoji: str) -> None:
        log.debug("%s: the simulated forge has no comments to react to", comment.project)

    async def reply(self, comment: CommentRef, body: str) -> None:
        self.issue(comment.number).comments.append(body)

    def issue_url(self, number: int) -> str:
        return f"{self.base_url}/demo/issues/{number}"

    def issue(self, number: int) -> Issue:
        return self.issues[number - 1]
