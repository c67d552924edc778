"""The fake Gitea every Gitea test uses: the REST API (`/api/v1`) on loopback that the real
client talks HTTP to. It answers from a table of expected calls, checks the bot's token and the
exact (encoded) path and the query parameters asked for, records every call, answers 501 to an
unexpected one and fails the test for it, and at teardown fails when an expected call never came.

It knows only the routes of `ROUTES`, each a method and path of Gitea's published OpenAPI
description (`templates/swagger/v1_json.tmpl`, generated from the `swagger:operation` comments
of `routers/api/v1/`); expecting any other call is an error in the test itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.forges.gitea.client import GiteaClient
from conjunction.forges.gitea.host import GiteaHost
from conjunction.forges.gitea.settings import GiteaSettings
from conjunction.forges.gitlab.client import Pacer
from testkit.memoryhost import MemoryHost
from testkit.settings import with_forge

FIXTURES = Path(__file__).with_name("fixtures") / "gitea"
TOKEN = "gitea-bot-token-for-tests"
HOST = "codeberg.org"
API = "/api/v1"
WEBHOOK_SECRET = "gitea-secret"  # the Gitea tests' GITEA_WEBHOOK_SECRET

# A job's log as Gitea serves it (`GET …/actions/jobs/{job_id}/logs`): every line as the runner
# reported it, after a UTC timestamp; the failed step's output, then the runner's closing lines
ACTIONS_LOG = "\n".join(
    [
        "2026-05-01T12:00:00.1000000Z runner-1(version:v6.3.1) received task 77 of job test,"
        " be triggered by event: workflow_dispatch",
        "2026-05-01T12:00:00.2000000Z workflow prepared",
        "2026-05-01T12:00:00.3000000Z \U0001f680  Start image=python:3.12",
        "2026-05-01T12:00:05.0000000Z ============ test session starts ============",
        "2026-05-01T12:00:05.1000000Z collected 13 items",
        "2026-05-01T12:00:06.0000000Z FAILED tests/test_api.py::test_parse"
        " - AssertionError: assert 2 == 3",
        "2026-05-01T12:00:06.0500000Z using GITEA_TOKEN=0123456789abcdef0123456789abcdef01234567",
        "2026-05-01T12:00:06.1000000Z ============ 1 failed, 12 passed in 0.41s ============",
        "2026-05-01T12:00:07.0000000Z Cleaning up container for job test",
        "2026-05-01T12:00:08.0000000Z \U0001f3c1  Job failed",
    ]
)

# (method, path under /api/v1, operationId in Gitea's OpenAPI description)
ROUTES = [
    ("GET", "/user", "userGetCurrent"),
    ("GET", "/orgs/{org}/repos", "orgListRepos"),
    ("GET", "/users/{username}/repos", "userListRepos"),
    ("GET", "/repos/{owner}/{repo}", "repoGet"),
    ("GET", "/repos/{owner}/{repo}/raw/{filepath}", "repoGetRawFile"),
    ("GET", "/repos/{owner}/{repo}/compare/{basehead}", "repoCompareDiff"),
    ("GET", "/repos/{owner}/{repo}/branches/{branch}", "repoGetBranch"),
    ("POST", "/repos/{owner}/{repo}/statuses/{sha}", "repoCreateStatus"),
    ("GET", "/repos/{owner}/{repo}/commits/{sha}/pull", "repoGetCommitPullRequest"),
    ("GET", "/repos/{owner}/{repo}/issues", "issueListIssues"),
    ("POST", "/repos/{owner}/{repo}/issues", "issueCreateIssue"),
    ("PATCH", "/repos/{owner}/{repo}/issues/{index}", "issueEditIssue"),
    ("GET", "/repos/{owner}/{repo}/issues/{index}/comments", "issueGetComments"),
    ("POST", "/repos/{owner}/{repo}/issues/{index}/comments", "issueCreateComment"),
    ("PATCH", "/repos/{owner}/{repo}/issues/comments/{id}", "issueEditComment"),
    ("GET", "/repos/{owner}/{repo}/labels", "issueListLabels"),
    ("POST", "/repos/{owner}/{repo}/labels", "issueCreateLabel"),
    ("GET", "/repos/{owner}/{repo}/hooks", "repoListHooks"),
    ("POST", "/repos/{owner}/{repo}/hooks", "repoCreateHook"),
    ("PATCH", "/repos/{owner}/{repo}/hooks/{id}", "repoEditHook"),
    ("DELETE", "/repos/{owner}/{repo}/hooks/{id}", "repoDeleteHook"),
    (
        "POST",
        "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches",
        "ActionsDispatchWorkflow",
    ),
    ("GET", "/repos/{owner}/{repo}/actions/runs", "getWorkflowRuns"),
    ("GET", "/repos/{owner}/{repo}/actions/runs/{run}/jobs", "listWorkflowRunJobs"),
    ("GET", "/repos/{owner}/{repo}/actions/jobs/{job_id}/logs", "downloadActionsRunJobLogs"),
    (
        "GET",
        "/repos/{owner}/{repo}/collaborators/{collaborator}/permission",
        "repoGetRepoPermissions",
    ),
    ("GET", "/repos/{owner}/{repo}/pulls", "repoListPullRequests"),
    ("GET", "/repos/{owner}/{repo}/pulls/{index}", "repoGetPullRequest"),
    ("POST", "/repos/{owner}/{repo}/issues/comments/{id}/reactions", "issuePostCommentReaction"),
]


# parameters that stand for one path segment; any other (`{filepath}`, `{basehead}`) for the rest
SEGMENTS = frozenset(
    ["{owner}", "{repo}", "{org}", "{username}", "{index}", "{id}", "{sha}", "{run}", "{job_id}"]
)


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[a-z_]+\})", template)
    regex = "".join(
        "[^/]+" if part in SEGMENTS else ".+" if part.startswith("{") else re.escape(part)
        for part in parts
    )
    return re.compile(regex)


_ROUTES = [(method, _pattern(path)) for method, path, _ in ROUTES]


def documented(method: str, path: str) -> bool:
    return any(m == method and pattern.fullmatch(path) for m, pattern in _ROUTES)


def repo_path(path: str) -> str:
    """`/repos/owner/repo` for `owner/repo`."""
    return f"/repos/{path}"


@dataclass
class Call:
    method: str
    path: str  # raw, after /api/v1, without the query string
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    status: int = 0


@dataclass
class _Expectation:
    method: str
    path: str
    query: Mapping[str, str]
    status: int
    body: Any
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
        if self.status == 204:
            return web.Response(status=204)
        if isinstance(self.body, str | bytes):
            return web.Response(status=self.status, body=self.body, content_type="text/plain")
        return web.json_response(self.body, status=self.status)

    def __str__(self) -> str:
        query = f"?{dict(self.query)}" if self.query else ""
        return f"{self.method} {self.path}{query} -> {self.status} (used {self.used})"


@dataclass
class FakeGitea:
    url: str = ""
    calls: list[Call] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    clients: list[GiteaClient] = field(default_factory=list)  # closed at the end of the test
    _expectations: list[_Expectation] = field(default_factory=list)

    def expect(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        status: int = 200,
        body: Any = None,
        times: int = 1,
        repeat: bool = False,
    ) -> None:
        """Answer `times` calls (or any number with `repeat`) to a raw path under /api/v1
        whose query has at least the given parameters; several for one route answer in order."""
        if not documented(method.upper(), path):
            raise AssertionError(f"{method} {path} is not a route of Gitea's API in ROUTES")
        self._expectations.append(
            _Expectation(
                method.upper(),
                path,
                {key: str(value) for key, value in (query or {}).items()},
                status,
                {} if body is None and status != 204 else body,
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
                "expected Gitea calls never made:\n" + "\n".join(f"  {e}" for e in unused)
            )

    def assert_no_unexpected(self) -> None:
        if self.unexpected:
            raise AssertionError("unexpected Gitea calls:\n  " + "\n  ".join(self.unexpected))

    async def handle(self, request: web.Request) -> web.Response:
        raw_path = request.raw_path.split("?", 1)[0]
        if not raw_path.startswith(API + "/"):
            self.unexpected.append(f"{request.method} {request.raw_path} (not under {API})")
            return web.json_response({"message": "not found"}, status=404)
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
        if request.headers.get("Authorization") != f"token {TOKEN}":
            call.status = 401
            return web.json_response({"message": "token is required"}, status=401)
        for expectation in self._expectations:
            if not expectation.exhausted and expectation.matches(
                call.method, call.path, call.query
            ):
                break
        else:
            self.unexpected.append(f"{call.method} {call.path} {call.query} {call.body}")
            call.status = 501  # never retried by the client
            return web.json_response({"message": "unexpected call"}, status=501)
        expectation.used += 1
        call.status = expectation.status
        return expectation.response()

    # answers of the routes most tests need

    def expect_repo(
        self,
        path: str,
        *,
        default_branch: str = "main",
        private: bool = False,
        permissions: dict[str, bool] | None = None,
        status: int = 200,
        times: int = 1,
    ) -> None:
        body: Any = {
            "id": 42,
            "full_name": path,
            "default_branch": default_branch,
            "private": private,
            "internal": False,
            "archived": False,
            "html_url": f"https://{HOST}/{path}",
            "permissions": permissions or {"admin": True, "push": True, "pull": True},
        }
        if status == 404:
            body = {"message": "The target couldn't be found."}
        self.expect("GET", repo_path(path), status=status, body=body, times=times)

    def expect_file(
        self, path: str, file: str, text: str | None, *, ref: str | None = "main"
    ) -> None:
        """The raw file at ref, or a 404 for None."""
        self.expect(
            "GET",
            f"{repo_path(path)}/raw/{quote(file)}",
            query={"ref": ref} if ref else None,
            status=200 if text is not None else 404,
            body=text if text is not None else {"message": "not found"},
        )

    def expect_index(
        self,
        path: str,
        config: str | None,
        *,
        codeowners: dict[str, str] | None = None,
        default_branch: str = "main",
        private: bool = False,
        repo_info: bool = True,
    ) -> None:
        """What indexing reads: the repository, `.conjunction.yml`, then CODEOWNERS where Gitea
        and Forgejo look for it, until one is found."""
        if repo_info:
            self.expect_repo(path, default_branch=default_branch, private=private)
        self.expect_file(path, ".conjunction.yml", config, ref=default_branch)
        for file in GiteaHost.codeowners_paths:
            text = (codeowners or {}).get(file)
            self.expect_file(path, file, text, ref=default_branch)
            if text is not None:
                break

    def expect_status(self, path: str, sha: str, *, repeat: bool = True) -> None:
        self.expect(
            "POST",
            f"{repo_path(path)}/statuses/{sha}",
            status=201,
            body={"id": 1, "status": "pending"},
            repeat=repeat,
        )

    def statuses(self, path: str, sha: str) -> list[dict[str, Any]]:
        """The bodies of the commit statuses posted on sha, in order."""
        return [
            call.body
            for call in self.calls_to("POST", f"{repo_path(path)}/statuses/{sha}")
            if call.status == 201
        ]

    def expect_dispatch(
        self, path: str, workflow: str, *, status: int = 204, body: Any = None
    ) -> None:
        self.expect(
            "POST",
            f"{repo_path(path)}/actions/workflows/{workflow}/dispatches",
            status=status,
            body=body,
        )

    def expect_failed_job(self, path: str, run_id: int, job_id: int, log: str) -> None:
        """Gitea's list of a run's jobs (one passed, then `job_id` failed) and that job's log
        as plain text."""
        run_page = f"https://{HOST}/{path}/actions/runs/{run_id}"
        jobs = [
            {"id": job_id - 1, "run_id": run_id, "name": "lint", "conclusion": "success"},
            {
                "id": job_id,
                "run_id": run_id,
                "name": "test",
                "status": "completed",
                "conclusion": "failure",
                "html_url": f"{run_page}/jobs/1",
            },
        ]
        self.expect(
            "GET",
            f"{repo_path(path)}/actions/runs/{run_id}/jobs",
            body={"jobs": jobs, "total_count": len(jobs)},
        )
        self.expect("GET", f"{repo_path(path)}/actions/jobs/{job_id}/logs", body=log)

    def dispatches(self, path: str, workflow: str) -> list[Call]:
        return self.calls_to("POST", f"{repo_path(path)}/actions/workflows/{workflow}/dispatches")


def gitea_host(fake: FakeGitea, token: str = TOKEN, **client: Any) -> GiteaHost:
    """The adapter as the service builds it, pointed at the fake."""

    async def no_wait(_seconds: float) -> None:
        return None

    gitea_client = GiteaClient(fake.url, token, pacer=Pacer(), sleep=no_wait, **client)
    fake.clients.append(gitea_client)
    return GiteaHost(gitea_client, host=HOST, web_url=f"https://{HOST}")


@pytest.fixture
async def fake_gitea(aiohttp_server: Any) -> AsyncIterator[FakeGitea]:
    fake = FakeGitea()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    for client in fake.clients:
        await client.close()
    fake.assert_no_unexpected()
    fake.assert_all_called()


# what Gitea and Forgejo send to Conjunction


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def _repository(path: str) -> dict[str, Any]:
    repository: dict[str, Any] = fixture("push.json")["repository"]
    repository.update(
        full_name=path,
        name=path.split("/")[1],
        html_url=f"https://{HOST}/{path}",
        default_branch="main",
    )
    return repository


def push_event(path: str, before: str, after: str, *, changed: list[str]) -> dict[str, Any]:
    """The documented push example: one commit to main changing `changed`."""
    payload = fixture("push.json")
    commit = payload["commits"][-1]
    commit.update(id=after, added=[], modified=changed, removed=[])
    payload.update(
        ref="refs/heads/main",
        before=before,
        after=after,
        commits=[commit],
        total_commits=1,
        repository=_repository(path),
    )
    return payload


def workflow_run_event(
    path: str,
    sha: str,
    *,
    run_id: int = 7,
    conclusion: str = "success",
    event: str = "push",
    branch: str = "main",
    title: str = "Webhooks Yay!",
    name: str = "CI",
    workflow: str = "build.yml",
) -> dict[str, Any]:
    """Gitea's `workflow_run` of one run of `workflow` that finished now."""
    payload = fixture("workflow_run.json")
    payload["workflow"].update(name=name, id=workflow, path=f".gitea/workflows/{workflow}")
    payload["workflow_run"].update(
        path=f"{workflow}@refs/heads/{branch}",
        started_at=now(),
        id=run_id,
        head_sha=sha,
        head_branch=branch,
        conclusion=conclusion,
        event=event,
        display_title=title,
        html_url=f"https://{HOST}/{path}/actions/runs/{run_id}",
    )
    payload["repository"] = _repository(path)
    return payload


def action_run_event(
    path: str,
    sha: str,
    *,
    run_id: int = 12345,
    status: str = "success",
    event: str = "push",
    ref: str = "refs/heads/main",
    title: str = "Webhooks Yay!",
    workflow: str = "build.yml",
) -> dict[str, Any]:
    """Forgejo's `action_run` of one run of `workflow` created and finished now."""
    payload = fixture("action_run.json")
    payload["action"] = "success" if status == "success" else "failure"
    run = payload["run"]
    run.update(
        id=run_id,
        commit_sha=sha,
        status=status,
        event=event,
        title=title,
        workflow_id=workflow,
        created=now(),
        prettyref=ref.rsplit("/", 1)[-1],
        event_payload=json.dumps({"ref": ref, "after": sha}),
        html_url=f"https://{HOST}/{path}/actions/runs/{run_id}",
        repository=_repository(path),
    )
    return payload


def status_event(
    path: str,
    sha: str,
    *,
    state: str = "success",
    context: str = "ci/woodpecker/push/test",
    description: str = "Pipeline was successful",
    target_url: str = "https://ci.example.com/repos/1/pipeline/7",
) -> dict[str, Any]:
    payload = fixture("status.json")
    payload.update(
        sha=sha,
        state=state,
        context=context,
        description=description,
        target_url=target_url,
        repository=_repository(path),
    )
    return payload


def now() -> str:
    return datetime.now(UTC).isoformat()


def signature(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post_gitea(
    client: TestClient[Any, Any],
    event: str,
    payload: dict[str, Any],
    *,
    secret: str = WEBHOOK_SECRET,
    forgejo: bool = False,
    headers: dict[str, str] | None = None,
) -> ClientResponse:
    """A delivery signed as Gitea signs it, or as Forgejo does (its `X-Forgejo-*` headers
    beside the `X-Gitea-*` ones)."""
    body = json.dumps(payload).encode()
    delivery = str(uuid.uuid4())
    sent = {
        "Content-Type": "application/json",
        "X-Gitea-Event": event,
        "X-Gitea-Delivery": delivery,
        "X-Gitea-Signature": signature(body, secret),
    }
    if forgejo:
        sent.update(
            {
                "X-Forgejo-Event": event,
                "X-Forgejo-Delivery": delivery,
                "X-Forgejo-Signature": signature(body, secret),
            }
        )
    sent.update(headers or {})
    return await client.post("/webhooks/gitea", data=body, headers=sent)


@pytest.fixture
def gitea_settings(settings: Settings) -> Settings:
    """The test settings with a Gitea bot account on codeberg.org."""
    return with_forge(
        settings,
        GiteaSettings(url=f"https://{HOST}", token=TOKEN, webhook_secret=WEBHOOK_SECRET, host=HOST),
    )


@pytest.fixture
async def gitea_both(
    aiohttp_client: Any, gitea_settings: Settings, fake_gitea: FakeGitea
) -> AsyncIterator[tuple[TestClient[Any, Any], MemoryHost]]:
    """The service with GitHub (in memory) and Gitea (the fake) side by side."""
    github = MemoryHost()
    app = create_app(
        gitea_settings, adapters=Adapters.of(github, gitea_host(fake_gitea)), run_workers=False
    )
    yield await aiohttp_client(app), github
