"""The fake GitLab every GitLab test uses: a REST API on loopback that python-gitlab really talks
HTTP to. It answers from a table of expected calls, checks the bot's token, the exact (encoded)
path — a nested group must arrive as `group%2Fsub%2Fapp` — and the query parameters asked for,
records every call, answers 501 to an unexpected one and fails the test for it, and at
teardown fails when an expected call never came.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.forges.gitlab.client import GitLabClient, Pacer
from conjunction.forges.gitlab.host import GitLabHost
from testkit.memoryhost import MemoryHost

FIXTURES = Path(__file__).with_name("fixtures") / "gitlab"
TOKEN = "glpat-bot-token-for-tests"
HOST = "gitlab.com"
API = "/api/v4"


def encoded(path: str) -> str:
    """A project or file path as GitLab wants it in a URL: `group%2Fsub%2Fapp`."""
    return quote(path, safe="")


@dataclass
class Call:
    method: str
    path: str  # raw, after /api/v4, without the query string
    query: dict[str, str]
    body: Any  # decoded JSON, or None
    headers: dict[str, str]
    status: int = 0


@dataclass
class _Expectation:
    method: str
    path: str
    query: Mapping[str, str]
    status: int
    body: Any
    headers: dict[str, str]
    times: int
    repeat: bool
    used: int = 0

    @property
    def exhausted(self) -> bool:
        return not self.repeat and self.used >= self.times

    def matches(self, method: str, path: str, query: Mapping[str, str]) -> bool:
        return (
            method == self.method
            and path == self.path
            and all(query.get(key) == str(value) for key, value in self.query.items())
        )

    def response(self) -> web.Response:
        if isinstance(self.body, str | bytes):
            return web.Response(
                status=self.status, body=self.body, headers=self.headers, content_type="text/plain"
            )
        return web.json_response(self.body, status=self.status, headers=self.headers)

    def __str__(self) -> str:
        query = f"?{dict(self.query)}" if self.query else ""
        return f"{self.method} {self.path}{query} -> {self.status} (used {self.used})"


@dataclass
class FakeGitLab:
    url: str = ""
    calls: list[Call] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    _expectations: list[_Expectation] = field(default_factory=list)

    def expect(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        status: int = 200,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        repeat: bool = False,
    ) -> None:
        """Answer `times` calls (or any number with `repeat`) to a raw path under /api/v4
        whose query has at least the given parameters; several for one route answer in order."""
        self._expectations.append(
            _Expectation(
                method.upper(),
                path,
                dict(query or {}),
                status,
                {} if body is None and status != 204 else body,
                headers or {},
                times,
                repeat,
            )
        )

    def calls_to(self, method: str, path: str) -> list[Call]:
        return [call for call in self.calls if call.method == method and call.path == path]

    def assert_all_called(self) -> None:
        unused = [e for e in self._expectations if (e.used == 0 if e.repeat else e.used < e.times)]
        if unused:
            raise AssertionError(
                "expected GitLab calls never made:\n" + "\n".join(f"  {e}" for e in unused)
            )

    def assert_no_unexpected(self) -> None:
        if self.unexpected:
            raise AssertionError("unexpected GitLab calls:\n  " + "\n  ".join(self.unexpected))

    async def handle(self, request: web.Request) -> web.Response:
        raw_path = request.raw_path.split("?", 1)[0]
        if not raw_path.startswith(API + "/"):
            self.unexpected.append(f"{request.method} {request.raw_path} (not under {API})")
            return web.json_response({"message": "404 Not Found"}, status=404)
        path = raw_path[len(API) :]
        text = await request.text()
        call = Call(
            request.method,
            path,
            dict(request.query),
            json.loads(text) if text else None,
            {key.lower(): value for key, value in request.headers.items()},
        )
        self.calls.append(call)
        if request.headers.get("PRIVATE-TOKEN") != TOKEN:
            call.status = 401
            return web.json_response({"message": "401 Unauthorized"}, status=401)
        for expectation in self._expectations:
            if not expectation.exhausted and expectation.matches(
                call.method, call.path, call.query
            ):
                break
        else:
            self.unexpected.append(f"{call.method} {call.path} {call.query} {call.body}")
            call.status = 501  # python-gitlab does not retry it
            return web.json_response({"message": "unexpected call"}, status=501)
        expectation.used += 1
        call.status = expectation.status
        return expectation.response()

    # answers of the routes most tests need

    def expect_project(
        self,
        path: str,
        *,
        default_branch: str = "main",
        visibility: str = "public",
        status: int = 200,
        times: int = 1,
    ) -> None:
        body: Any = {
            "id": 42,
            "path_with_namespace": path,
            "default_branch": default_branch,
            "visibility": visibility,
            "web_url": f"https://{HOST}/{path}",
        }
        if status == 404:
            body = {"message": "404 Project Not Found"}
        self.expect("GET", f"/projects/{encoded(path)}", status=status, body=body, times=times)

    def expect_file(
        self, path: str, file: str, text: str | None, *, ref: str | None = "main"
    ) -> None:
        """The raw file at ref, or a 404 for None."""
        self.expect(
            "GET",
            f"/projects/{encoded(path)}/repository/files/{encoded(file)}/raw",
            query={"ref": ref} if ref else None,
            status=200 if text is not None else 404,
            body=text if text is not None else {"message": "404 File Not Found"},
        )

    def expect_index(
        self,
        path: str,
        config: str | None,
        *,
        codeowners: dict[str, str] | None = None,
        default_branch: str = "main",
        visibility: str = "public",
        project_info: bool = True,
    ) -> None:
        """What indexing reads: the project, `.conjunction.yml`, then CODEOWNERS where GitLab
        looks for it, until one is found."""
        if project_info:
            self.expect_project(path, default_branch=default_branch, visibility=visibility)
        self.expect_file(path, ".conjunction.yml", config, ref=default_branch)
        for file in GitLabHost.codeowners_paths:
            text = (codeowners or {}).get(file)
            self.expect_file(path, file, text, ref=default_branch)
            if text is not None:
                break

    def expect_pipeline(
        self, path: str, pipeline_id: int, *, status: int = 201, body: Any = None
    ) -> None:
        self.expect(
            "POST",
            f"/projects/{encoded(path)}/pipeline",
            status=status,
            body=body
            if body is not None
            else {
                "id": pipeline_id,
                "status": "created",
                "web_url": f"https://{HOST}/{path}/-/pipelines/{pipeline_id}",
            },
        )

    def expect_jobs(self, path: str, pipeline_id: int, jobs: list[dict[str, Any]]) -> None:
        """A pipeline's jobs, as listed for the artifacts they kept (`job` makes one)."""
        self.expect("GET", f"/projects/{encoded(path)}/pipelines/{pipeline_id}/jobs", body=jobs)

    def expect_failure(
        self, path: str, pipeline_id: int, trace: str | None = None, *, job_id: int = 900
    ) -> None:
        """What Conjunction asks of a failed pipeline for its excerpt: its failed jobs (one
        job, whose trace is `trace`; none when it is None), then that job's trace."""
        jobs = []
        if trace is not None:
            jobs = [
                {
                    "id": job_id,
                    "name": "test",
                    "status": "failed",
                    "stage": "test",
                    "allow_failure": False,
                    "web_url": f"https://{HOST}/{path}/-/jobs/{job_id}",
                }
            ]
        self.expect(
            "GET",
            f"/projects/{encoded(path)}/pipelines/{pipeline_id}/jobs",
            query={"scope[]": "failed"},  # python-gitlab sends a list
            body=jobs,
        )
        if trace is not None:
            self.expect("GET", f"/projects/{encoded(path)}/jobs/{job_id}/trace", body=trace)

    def expect_status(self, path: str, sha: str, *, repeat: bool = True) -> None:
        self.expect(
            "POST",
            f"/projects/{encoded(path)}/statuses/{sha}",
            status=201,
            body={"id": 1, "status": "running"},
            repeat=repeat,
        )

    def statuses(self, path: str, sha: str) -> list[dict[str, Any]]:
        """The bodies of the commit statuses posted on sha, in order."""
        return [
            call.body
            for call in self.calls_to("POST", f"/projects/{encoded(path)}/statuses/{sha}")
            if call.status == 201
        ]


def job(job_id: int, name: str, archive: str | None = "artifacts.zip") -> dict[str, Any]:
    """A finished job as GitLab lists it: its log is always among its artifacts, an archive
    only when the job kept one."""
    artifacts = [{"file_type": "trace", "size": 1024, "filename": "job.log", "file_format": None}]
    answer: dict[str, Any] = {"id": job_id, "name": name, "status": "success", "stage": "build"}
    if archive is not None:
        artifacts.insert(
            0, {"file_type": "archive", "size": 4096, "filename": archive, "file_format": "zip"}
        )
        answer["artifacts_file"] = {"filename": archive, "size": 4096}
    return {**answer, "artifacts": artifacts}


def gitlab_host(fake: FakeGitLab, token: str = TOKEN, **client: Any) -> GitLabHost:
    """The adapter as the service builds it, pointed at the fake."""
    gitlab_client = GitLabClient(fake.url, token, pacer=Pacer(), **client)
    return GitLabHost(gitlab_client, host=HOST, web_url=f"https://{HOST}")


@pytest.fixture
async def fake_gitlab(aiohttp_server: Any) -> AsyncIterator[FakeGitLab]:
    fake = FakeGitLab()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    fake.assert_no_unexpected()
    fake.assert_all_called()


# what GitLab sends to Conjunction

WEBHOOK_TOKEN = "gitlab-secret"  # the settings fixture's GITLAB_WEBHOOK_SECRET


def pipeline_hook(
    path: str,
    sha: str,
    *,
    pipeline_id: int = 1,
    status: str = "success",
    source: str = "push",
    ref: str = "main",
    tag: bool = False,
    event: str | None = None,
    name: str = "CI",
) -> dict[str, Any]:
    """GitLab's documented Pipeline Hook example, pointed at one project and pipeline; `event`
    is the CONJUNCTION_EVENT variable a pipeline Conjunction created carries."""
    payload: dict[str, Any] = json.loads(FIXTURES.joinpath("pipeline_hook.json").read_text())
    pipeline = payload["object_attributes"]
    pipeline.update(
        id=pipeline_id,
        sha=sha,
        ref=ref,
        tag=tag,
        status=status,
        source=source,
        name=name,
        url=f"https://{HOST}/{path}/-/pipelines/{pipeline_id}",
        variables=[{"key": "CONJUNCTION_EVENT", "value": event}] if event else [],
    )
    payload["project"].update(
        path_with_namespace=path, web_url=f"https://{HOST}/{path}", default_branch="main"
    )
    return payload


def push_hook(path: str, before: str, after: str, *, changed: list[str]) -> dict[str, Any]:
    """GitLab's documented Push Hook example: one commit to main changing `changed`."""
    payload: dict[str, Any] = json.loads(FIXTURES.joinpath("push_hook.json").read_text())
    commit = payload["commits"][-1]
    commit.update(id=after, added=[], modified=changed, removed=[])
    payload.update(
        ref="refs/heads/main",
        before=before,
        after=after,
        checkout_sha=after,
        commits=[commit],
        total_commits_count=1,
    )
    payload["project"].update(path_with_namespace=path, default_branch="main")
    return payload


async def post_gitlab(
    client: TestClient[Any, Any],
    event: str,
    payload: dict[str, Any],
    *,
    token: str = WEBHOOK_TOKEN,
    headers: dict[str, str] | None = None,
) -> ClientResponse:
    return await client.post(
        "/webhooks/gitlab",
        data=json.dumps(payload).encode(),
        headers={
            "Content-Type": "application/json",
            "X-Gitlab-Event": event,
            "X-Gitlab-Token": token,
            "X-Gitlab-Event-UUID": str(uuid.uuid4()),
            **(headers or {}),
        },
    )


@pytest.fixture
async def both(
    aiohttp_client: Any, settings: Settings, fake_gitlab: FakeGitLab
) -> AsyncIterator[tuple[TestClient[Any, Any], MemoryHost]]:
    """The service with GitHub (in memory) and GitLab (the fake) side by side."""
    github = MemoryHost()
    app = create_app(
        settings, adapters=Adapters.of(github, gitlab_host(fake_gitlab)), run_workers=False
    )
    yield await aiohttp_client(app), github
