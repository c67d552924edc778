"""New adapters plug in with a few dozen lines: a code host for an unknown git host and a runner
reached by webhook, next to a GitHub upstream."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conjunction.adapters import Adapters
from conjunction.codehost import (
    CommentRef,
    Commit,
    CommitRange,
    CommitReport,
    IssueRef,
    ProjectInfo,
)
from conjunction.config.repo_config import ConfigError
from conjunction.runner import PipelineStarted, TriggerRequest
from conjunction.runs import Change
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime

LIB = "github.com/acme/lib"
CLI = "git.acme.dev/tools/cli"
SHA = "c" * 40
CLI_CONFIG = f"""
upstreams:
  - project: {LIB}
trigger:
  webhook:
    url: https://ci.acme.dev/hooks/cli
"""


class PlainGitHost:
    """A code host that serves files and nothing else (a plain git server)."""

    host = "git.acme.dev"
    codeowners_paths: Sequence[str] = ("CODEOWNERS",)

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    async def project_info(self, project: str) -> ProjectInfo:
        return ProjectInfo(default_branch="trunk", private=False)

    async def read_file(self, project: str, path: str, ref: str | None = None) -> str | None:
        return self.files.get(path)

    async def changed_files(self, project: str, base: str, head: str) -> list[str] | None:
        return None

    async def publish_report(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("nothing is reported on the downstream")

    async def comment_on_change(self, project: str, sha: str, marker: str, body: str) -> None:
        pass

    async def find_issue(self, project: str, marker: str) -> IssueRef | None:
        return None

    async def open_issue(self, project: str, title: str, body: str, labels: Any) -> IssueRef:
        raise AssertionError("no issue expected")

    async def comment_issue(self, project: str, number: int, body: str) -> None:
        pass

    async def close_issue(self, project: str, number: int, body: str) -> None:
        pass

    async def report_config(self, project: str, sha: str, error: ConfigError | None) -> None:
        pass

    def compare_url(self, project: str, base: str, head: str) -> str:
        return f"https://{self.host}/{project}/compare/{base}..{head}"

    def profile_url(self, owner: str) -> None:
        return None

    async def commits_between(self, project: str, base: str, head: str) -> CommitRange | None:
        return None

    async def commit_list(self, project: str, base: str, head: str) -> list[Commit] | None:
        return None

    async def can_write(self, project: str, user: str) -> bool:
        return False

    async def get_change(self, project: str, number: int) -> Change | None:
        return None

    async def react(self, comment: CommentRef, emoji: str) -> None:
        pass

    async def reply(self, comment: CommentRef, body: str) -> None:
        pass


class RecordingRunner:
    """A runner that only remembers what it was asked to start."""

    def __init__(self) -> None:
        self.started: list[TriggerRequest] = []

    async def start_pipeline(self, request: TriggerRequest) -> PipelineStarted:
        self.started.append(request)
        return PipelineStarted(url="https://ci.acme.dev/builds/1", run_id="1")

    async def find_started(self, request: TriggerRequest) -> PipelineStarted | None:
        return None


async def test_downstream_on_another_host_started_by_webhook_reported_on_github(
    aiohttp_client: Any, settings: Any
) -> None:
    from conjunction.app import create_app

    github = MemoryHost()
    runner = RecordingRunner()
    adapters = Adapters.of(github, PlainGitHost({".conjunction.yml": CLI_CONFIG}))
    adapters.runners["webhook"] = runner
    client = await aiohttp_client(create_app(settings, adapters=adapters, run_workers=False))
    engine = runtime(client).engine
    await engine.index_project(LIB, private=False, default_branch="main", config_text=None)
    assert await engine.refresh_project(CLI) is None

    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA))
    await run_jobs(client)

    [request] = runner.started
    assert (request.project, request.upstream, request.upstream_sha, request.default_branch) == (
        CLI,
        LIB,
        SHA,
        "trunk",
    )
    token = engine.signer.token(request.event_id)
    answer = await client.post(
        f"/api/v1/events/{request.event_id}/status",
        json={"result": "success"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status == 202
    await run_jobs(client)

    project, (sha, report) = github.of("status")[-1]
    assert (project, sha) == (LIB, SHA)
    assert isinstance(report, CommitReport)
    assert (report.state, report.description) == ("success", "1 of 1 downstream projects passed")
    assert f"| {CLI} | ✅ passed | [run](https://ci.acme.dev/builds/1)" in report.summary
