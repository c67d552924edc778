"""An in-memory code host and runner for engine tests: files to read, issues that live in a dict,
and a record of every call Conjunction made."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
from conjunction.excerpts import FailureText
from conjunction.runner import PipelineStarted, TriggerError, TriggerRequest
from conjunction.runs import Change


@dataclass
class MemoryHost:
    host: str = "github.com"
    codeowners_paths: Sequence[str] = ("CODEOWNERS", ".github/CODEOWNERS")
    files: dict[tuple[str, str], str] = field(default_factory=dict)
    default_branches: dict[str, str] = field(default_factory=dict)
    start_errors: dict[str, TriggerError] = field(default_factory=dict)
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    changes: dict[str, list[str]] = field(default_factory=dict)  # head sha -> changed paths
    history: dict[str, list[Commit]] = field(default_factory=dict)  # project -> commits, in order
    remembers_runs: bool = True  # find_started finds what start_pipeline started
    writers: set[str] = field(default_factory=set)
    pulls: dict[tuple[str, int], Change] = field(default_factory=dict)  # (project, number)
    # (project, run id) -> why that run failed, as its CI tells; an exception is raised
    failures: dict[tuple[str, str], FailureText | Exception] = field(default_factory=dict)

    def of(self, op: str) -> list[tuple[str, Any]]:
        """(project, details) of every call of one kind, in order."""
        return [(project, details) for name, project, details in self.calls if name == op]

    async def project_info(self, project: str) -> ProjectInfo:
        self.calls.append(("project_info", project, None))
        return ProjectInfo(self.default_branches.get(project, "main"), private=False)

    async def read_file(self, project: str, path: str, ref: str | None = None) -> str | None:
        self.calls.append(("read_file", project, path))
        return self.files.get((project, path))

    async def start_pipeline(self, request: TriggerRequest) -> PipelineStarted:
        self.calls.append(("start_pipeline", request.project, request))
        if request.project in self.start_errors:
            raise self.start_errors[request.project]
        run = len(self.of("start_pipeline"))
        return PipelineStarted(url=f"https://ci.test/{request.project}/runs/{run}", run_id=str(run))

    async def find_started(self, request: TriggerRequest) -> PipelineStarted | None:
        self.calls.append(("find_started", request.project, request.event_id))
        starts = [r for _, r in self.of("start_pipeline") if r.event_id == request.event_id]
        if not starts or not self.remembers_runs:
            return None
        return PipelineStarted(url=f"https://ci.test/{request.project}/runs/again", run_id="again")

    async def failure_text(self, project: str, run_id: str) -> FailureText | None:
        self.calls.append(("failure_text", project, run_id))
        found = self.failures.get((project, run_id))
        if isinstance(found, Exception):
            raise found
        return found

    async def publish_report(
        self, project: str, sha: str, report: CommitReport, *, status: bool, check: bool
    ) -> None:
        if status:
            self.calls.append(("status", project, (sha, report)))
        if check:
            self.calls.append(("check", project, (sha, report)))

    async def comment_on_change(self, project: str, sha: str, marker: str, body: str) -> None:
        self.calls.append(("comment_on_change", project, (sha, body)))

    async def find_issue(self, project: str, marker: str) -> IssueRef | None:
        self.calls.append(("find_issue", project, marker))
        for number, issue in self.issues.items():
            if issue["project"] == project and issue["state"] == "open" and marker in issue["body"]:
                return IssueRef(number, f"https://{self.host}/issues/{number}")
        return None

    async def open_issue(
        self, project: str, title: str, body: str, labels: Sequence[str]
    ) -> IssueRef:
        number = len(self.issues) + 1
        self.issues[number] = {
            "project": project,
            "title": title,
            "body": body,
            "state": "open",
            "labels": list(labels),
            "comments": [],
        }
        self.calls.append(("open_issue", project, number))
        return IssueRef(number, f"https://{self.host}/issues/{number}")

    async def comment_issue(self, project: str, number: int, body: str) -> None:
        self.issues[number]["comments"].append(body)
        self.calls.append(("comment_issue", project, number))

    async def close_issue(self, project: str, number: int, body: str) -> None:
        self.issues[number]["comments"].append(body)
        self.issues[number]["state"] = "closed"
        self.calls.append(("close_issue", project, number))

    async def can_write(self, project: str, user: str) -> bool:
        return user in self.writers

    async def report_config(self, project: str, sha: str, error: ConfigError | None) -> None:
        self.calls.append(("report_config", project, (sha, error)))

    async def changed_files(self, project: str, base: str, head: str) -> list[str] | None:
        self.calls.append(("changed_files", project, (base, head)))
        return self.changes.get(head)

    def compare_url(self, project: str, base: str, head: str) -> str:
        return f"https://{project}/compare/{base}...{head}"

    def profile_url(self, owner: str) -> str:
        return f"https://{self.host}/{owner}"

    async def commit_list(self, project: str, base: str, head: str) -> list[Commit] | None:
        self.calls.append(("commit_list", project, (base, head)))
        shas = [commit.sha for commit in self.history.get(project, [])]
        if base not in shas or head not in shas:
            return None
        return self.history[project][shas.index(base) + 1 : shas.index(head) + 1]

    async def commits_between(self, project: str, base: str, head: str) -> CommitRange | None:
        self.calls.append(("commits_between", project, (base, head)))
        shas = [commit.sha for commit in self.history.get(project, [])]
        if base not in shas or head not in shas:
            return None
        between = self.history[project][shas.index(base) + 1 : shas.index(head) + 1]
        return CommitRange(
            base,
            head,
            tuple(between[:COMMITS_LISTED]),
            len(between),
            self.compare_url(project, base, head),
        )

    async def get_change(self, project: str, number: int) -> Change | None:
        self.calls.append(("get_change", project, number))
        return self.pulls.get((project, number))

    async def react(self, comment: CommentRef, emoji: str) -> None:
        self.calls.append(("react", comment.project, (comment.number, comment.id, emoji)))

    async def reply(self, comment: CommentRef, body: str) -> None:
        self.calls.append(("reply", comment.project, (comment.number, body)))
