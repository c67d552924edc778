"""The fake GitHub as an HTTP server on loopback, for a real `python app.py`.

    with GitHubServer() as github:
        env = {"GITHUB_API_URL": github.url, ...}        # the server calls it
        github.inject("POST", "/dispatches", [Fault.status(502), None, Fault.reset()])
        ...
        github.dispatches                                   # every workflow_dispatch received

It runs in its own thread and event loop, so it keeps answering while a test waits, and what
reached it stays recorded when the server calling it is killed. It answers what Conjunction
asks of GitHub to start downstream workflows and report on commits:

- installation tokens (`POST /app/installations/{id}/access_tokens`);
- `workflow_dispatch`: each one received is a run titled `conjunction <event id>`, as the
  README's `run-name` makes it, listed by `GET /repos/{owner}/{repo}/actions/runs` (unless
  `lists_runs` is off);
- commit statuses, check runs (created, found by name, updated) and the pull requests of a
  commit (none);
- why a run failed (`fail_job`): a run's jobs, a job's check run annotations and its log (a
  run nothing was said of has no failed job);
- for polling an upstream: a repository (`add_repository`), runs finished on it
  (`publish_run`, filtered by `branch` and `status` when listed) and their artifacts, answered
  304 to a request whose `If-None-Match` names the answer's ETag.

Any other route answers 404 and is kept in `unexpected`. Faults are injected per route: the
next requests matching it take the given faults in turn (`None` answers normally).

For benchmarks it can answer every call after `latency` seconds and enforce GitHub's documented
limits per installation token (`limits=GitHubLimits()`): 5,000 requests an hour, and 80
content-creating requests (POST, PATCH, PUT, DELETE) a minute and 500 an hour; a request over
a limit is answered 403 as GitHub does, and counted in `limit_errors`.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import itertools
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class Fault:
    """What GitHub does to one request instead of answering it at once.

    `status`: answers with this status (and headers) without acting on the request.
    `reset`: drops the connection (TCP reset); with `after`, once the request was acted on,
    as when GitHub did the work and its answer was lost.
    `delay`: waits this long first (a slow answer; longer than the client's timeout, a
    time-out); with `reset`, the connection is dropped after the wait.
    `hold`: acts on the request, then answers only once `release()` is called.
    """

    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    reset: bool = False
    after: bool = False
    delay: float = 0.0
    hold: bool = False

    @classmethod
    def answer(cls, status: int, retry_after: float | None = None) -> Fault:
        headers = () if retry_after is None else (("Retry-After", f"{retry_after:g}"),)
        return cls(status=status, headers=headers)

    @classmethod
    def drop(cls, *, after: bool = False) -> Fault:
        return cls(reset=True, after=after)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        return cls(delay=seconds)

    @classmethod
    def timeout(cls, seconds: float) -> Fault:
        """No answer for `seconds` (set it past the client's time-out), then a dropped line."""
        return cls(delay=seconds, reset=True)

    def __str__(self) -> str:
        if self.hold:
            return "held"
        if self.status is not None:
            return f"{self.status}" + "".join(f" {name}: {value}" for name, value in self.headers)
        kind = "timeout" if self.reset and self.delay else "reset" if self.reset else "slow"
        return kind + (" after acting" if self.after else "")


HOLD = Fault(hold=True)

MESSAGES = {
    403: "You have exceeded a secondary rate limit. Please wait a few minutes and try again.",
    429: "API rate limit exceeded",
}


@dataclass(frozen=True)
class Dispatch:
    """A `workflow_dispatch` GitHub received, and the run it made."""

    repo: str  # owner/name
    workflow: str
    event_id: str
    run_id: int
    inputs: dict[str, Any]
    authorization: str


@dataclass
class _Injection:
    method: str
    path: re.Pattern[str]
    faults: list[Fault | None]


@dataclass
class Call:
    method: str
    path: str
    fault: str = ""  # the fault injected, if any
    authorization: str = ""  # the Authorization header, "" for an anonymous request
    at: float = 0.0  # time.monotonic() when it arrived


CONTENT_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass(frozen=True)
class GitHubLimits:
    """GitHub's documented limits for one installation token: (window in seconds, calls)."""

    primary: tuple[tuple[float, int], ...] = ((3600.0, 5000),)
    content: tuple[tuple[float, int], ...] = ((60.0, 80), (3600.0, 500))

    def refusal(
        self, history: list[float], content: list[float], now: float
    ) -> dict[str, str] | None:
        """The headers of GitHub's refusal of one more call now, or None when it is allowed."""
        for calls, windows in ((history, self.primary), (content, self.content)):
            for window, limit in windows:
                in_window = len(calls) - bisect.bisect_right(calls, now - window)
                if in_window >= limit:
                    wait = calls[-limit] + window - now
                    if windows is self.primary:
                        reset = time.time() + wait
                        return {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": f"{reset:.0f}"}
                    return {"Retry-After": str(max(1, round(wait)))}
        return None


@dataclass
class _State:
    dispatches: list[Dispatch] = field(default_factory=list)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    repositories: dict[str, dict[str, Any]] = field(default_factory=dict)
    artifacts: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    # run id -> its failed job: id, annotations, log
    failed_jobs: dict[int, tuple[int, list[dict[str, Any]], str]] = field(default_factory=dict)
    statuses: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


class GitHubServer:
    """A recording fake GitHub API on 127.0.0.1, in a thread of its own."""

    def __init__(
        self,
        *,
        lists_runs: bool = True,
        names_runs: bool = True,
        latency: float = 0.0,
        limits: GitHubLimits | None = None,
    ) -> None:
        """lists_runs=False: dispatched runs are not listed yet, as GitHub's list of runs can
        lag a dispatch by a few seconds. names_runs=False: a run's title does not carry the
        event id (a workflow without the recipe's `run-name`)."""
        self.lists_runs = lists_runs
        self.names_runs = names_runs
        self.latency = latency
        self.limits = limits
        self.limit_errors = 0
        self._spent: dict[str, tuple[list[float], list[float]]] = {}  # token: (all, content)
        self._state = _State()
        self._injections: list[_Injection] = []
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()
        self._released = threading.Event()
        self.holding = threading.Event()  # set while a held request waits for release()
        self.held: list[bytes] = []  # the answers held back, in the order they were held
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-github")
        self.url = ""

    # -- what it received ---------------------------------------------------------------

    @property
    def dispatches(self) -> list[Dispatch]:
        with self._lock:
            return list(self._state.dispatches)

    @property
    def statuses(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(repository, sha, body) of every commit status posted, in order."""
        with self._lock:
            return list(self._state.statuses)

    @property
    def check_runs(self) -> dict[int, dict[str, Any]]:
        with self._lock:
            return {number: dict(run) for number, run in self._state.check_runs.items()}

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._state.calls)

    @property
    def unexpected(self) -> list[str]:
        with self._lock:
            return list(self._state.unexpected)

    # -- what happens on it -----------------------------------------------------------------

    def add_repository(self, repo: str, *, default_branch: str = "main") -> None:
        """A public repository, `owner/name`, answered by `GET /repos/{owner}/{repo}`."""
        with self._lock:
            self._state.repositories[repo] = {
                "full_name": repo,
                "default_branch": default_branch,
                "private": False,
            }

    def publish_run(
        self,
        repo: str,
        sha: str,
        *,
        conclusion: str = "success",
        branch: str = "main",
        artifacts: Sequence[str] = (),
    ) -> int:
        """A push run that finished on repo, with artifacts of these names; returns its id."""
        run_id = next(self._ids)
        run = {
            "id": run_id,
            "name": "CI",
            "display_title": f"commit {sha[:7]}",
            "event": "push",
            "status": "completed",
            "conclusion": conclusion,
            "head_sha": sha,
            "head_branch": branch,
            "html_url": f"https://github.com/{repo}/actions/runs/{run_id}",
        }
        with self._lock:
            self._state.runs.setdefault(repo, []).insert(0, run)
            self._state.artifacts[run_id] = [
                {"id": next(self._ids), "name": name, "expired": False} for name in artifacts
            ]
        return run_id

    def fail_job(self, run_id: int, log: str, annotations: Sequence[dict[str, Any]] = ()) -> int:
        """The run's one job failed, with these check run annotations and this log; returns the
        job's id."""
        job_id = next(self._ids)
        with self._lock:
            self._state.failed_jobs[run_id] = (job_id, list(annotations), log)
        return job_id

    # -- how it misbehaves ---------------------------------------------------------------

    def inject(self, method: str, path: str, faults: Sequence[Fault | None]) -> None:
        """The next requests of `method` whose path matches the regular expression `path`
        take `faults` in turn (`None`: answered normally); later ones are answered."""
        with self._lock:
            self._injections.append(_Injection(method.upper(), re.compile(path), list(faults)))

    def unused_faults(self) -> list[str]:
        """Injected faults no request has taken yet."""
        with self._lock:
            return [
                f"{injection.method} {injection.path.pattern}: {fault}"
                for injection in self._injections
                for fault in injection.faults
                if fault is not None
            ]

    def release(self) -> None:
        """Let every held request answer (the server that sent it may be gone)."""
        self._released.set()

    # -- life cycle --------------------------------------------------------------------

    def __enter__(self) -> GitHubServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(STOP_TIMEOUT)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(STOP_TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(STOP_TIMEOUT)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._limited, self._faults])
        app.add_routes(
            [
                web.post("/app/installations/{id}/access_tokens", self._token),
                web.post(
                    "/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches",
                    self._dispatch,
                ),
                web.get("/repos/{owner}/{repo}", self._repository),
                web.get("/repos/{owner}/{repo}/actions/runs", self._runs),
                web.post("/repos/{owner}/{repo}/statuses/{sha}", self._status),
                web.get("/repos/{owner}/{repo}/commits/{sha}/check-runs", self._find_check_runs),
                web.post("/repos/{owner}/{repo}/check-runs", self._create_check_run),
                web.patch("/repos/{owner}/{repo}/check-runs/{id}", self._update_check_run),
                web.get("/repos/{owner}/{repo}/commits/{sha}/pulls", self._pulls),
                web.get("/repos/{owner}/{repo}/actions/runs/{id}/artifacts", self._artifacts),
                web.get("/repos/{owner}/{repo}/actions/runs/{id}/jobs", self._jobs),
                web.get("/repos/{owner}/{repo}/check-runs/{id}/annotations", self._annotations),
                web.get("/repos/{owner}/{repo}/actions/jobs/{id}/logs", self._log),
            ]
        )
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- faults --------------------------------------------------------------------------

    def _next_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for injection in self._injections:
                if injection.faults and injection.method == method and injection.path.search(path):
                    return injection.faults.pop(0)
            return None

    @web.middleware
    async def _limited(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refuse what goes over an installation's limits, counted as it arrives; answer
        after the latency."""
        arrived = time.monotonic()
        if self.latency:
            await asyncio.sleep(self.latency)
        token = request.headers.get("Authorization", "")
        if self.limits is None or not token.startswith("token "):
            return await handler(request)
        with self._lock:
            history, content = self._spent.setdefault(token, ([], []))
            refusal = self.limits.refusal(history, content, arrived)
            if refusal is None:
                # calls overlapping in flight may arrive out of order: keep the windows sorted
                bisect.insort(history, arrived)
                if request.method in CONTENT_METHODS:
                    bisect.insort(content, arrived)
            else:
                self.limit_errors += 1
        if refusal is None:
            return await handler(request)
        return web.json_response({"message": MESSAGES[403]}, status=403, headers=refusal)

    @web.middleware
    async def _faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        fault = self._next_fault(request.method, request.path)
        call = Call(
            request.method,
            request.path_qs,
            str(fault) if fault else "",
            request.headers.get("Authorization", ""),
            time.monotonic(),
        )
        with self._lock:
            self._state.calls.append(call)
        if fault is None:
            return await handler(request)
        await request.read()
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.status is not None:
            body = {"message": MESSAGES.get(fault.status, "Server Error")}
            return web.json_response(body, status=fault.status, headers=dict(fault.headers))
        if fault.reset and not fault.after:
            return _reset(request)
        answer = await handler(request)
        if fault.reset:
            return _reset(request)
        if fault.hold:
            assert isinstance(answer, web.Response) and isinstance(answer.body, bytes)
            self.held.append(answer.body)
            self.holding.set()
            await asyncio.to_thread(self._released.wait)
        return answer

    # -- routes ----------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        installation = request.match_info["id"]
        body = {"token": f"token-{installation}", "expires_at": "2099-01-01T00:00:00Z"}
        return web.json_response(body, status=201)

    async def _dispatch(self, request: web.Request) -> web.Response:
        body = await request.json()
        repo = _repo(request)
        inputs = dict(body.get("inputs") or {})
        run_id = next(self._ids)
        event_id = str(inputs.get("conjunction_event", ""))
        html_url = f"https://github.com/{repo}/actions/runs/{run_id}"
        run = {
            "id": run_id,
            "name": "Downstream of upstreams",
            "display_title": f"conjunction {event_id}" if self.names_runs else "Downstream",
            "event": "workflow_dispatch",
            "status": "queued",
            "head_branch": body.get("ref"),
            "path": f".github/workflows/{request.match_info['workflow']}",
            "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "html_url": html_url,
        }
        with self._lock:
            self._state.dispatches.append(
                Dispatch(
                    repo,
                    request.match_info["workflow"],
                    event_id,
                    run_id,
                    inputs,
                    request.headers.get("Authorization", ""),
                )
            )
            self._state.runs.setdefault(repo, []).insert(0, run)
        details = {
            "workflow_run_id": run_id,
            "run_url": f"{self.url}/repos/{repo}/actions/runs/{run_id}",
            "html_url": html_url,
        }
        return web.json_response(details)

    async def _repository(self, request: web.Request) -> web.Response:
        with self._lock:
            repository = self._state.repositories.get(_repo(request))
        if repository is None:
            return await self._not_found(request)
        return _conditional(request, repository)

    async def _runs(self, request: web.Request) -> web.Response:
        event = request.query.get("event")
        branch = request.query.get("branch")
        status = request.query.get("status")
        per_page = int(request.query.get("per_page", "30"))
        with self._lock:
            runs = [
                run
                for run in self._state.runs.get(_repo(request), [])
                if self.lists_runs
                and event in (None, run["event"])
                and branch in (None, run["head_branch"])
                and status in (None, run["status"], run.get("conclusion"))
            ]
        return _conditional(request, {"total_count": len(runs), "workflow_runs": runs[:per_page]})

    async def _status(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            self._state.statuses.append((_repo(request), request.match_info["sha"], body))
        return web.json_response({"id": next(self._ids), **body}, status=201)

    async def _find_check_runs(self, request: web.Request) -> web.Response:
        name = request.query.get("check_name")
        sha = request.match_info["sha"]
        with self._lock:
            runs = [
                {"id": number, **run}
                for number, run in self._state.check_runs.items()
                if run["head_sha"] == sha and name in (None, run["name"])
            ]
        return web.json_response({"total_count": len(runs), "check_runs": runs})

    async def _create_check_run(self, request: web.Request) -> web.Response:
        body = await request.json()
        number = next(self._ids)
        with self._lock:
            self._state.check_runs[number] = {"repo": _repo(request), **body}
        return web.json_response({"id": number, **body}, status=201)

    async def _update_check_run(self, request: web.Request) -> web.Response:
        body = await request.json()
        number = int(request.match_info["id"])
        with self._lock:
            run = self._state.check_runs.get(number)
            if run is None:
                return web.json_response({"message": "Not Found"}, status=404)
            run.update(body)
            return web.json_response({"id": number, **run})

    async def _pulls(self, request: web.Request) -> web.Response:
        return web.json_response([])

    async def _artifacts(self, request: web.Request) -> web.Response:
        with self._lock:
            artifacts = list(self._state.artifacts.get(int(request.match_info["id"]), []))
        return web.json_response({"total_count": len(artifacts), "artifacts": artifacts})

    def _failed_job(self, job_id: int) -> tuple[int, list[dict[str, Any]], str] | None:
        with self._lock:
            found = [job for job in self._state.failed_jobs.values() if job[0] == job_id]
        return found[0] if found else None

    async def _jobs(self, request: web.Request) -> web.Response:
        run_id = int(request.match_info["id"])
        with self._lock:
            failed = self._state.failed_jobs.get(run_id)
        jobs = [] if failed is None else [{"id": failed[0], "run_id": run_id, "name": "test"}]
        for job in jobs:
            job.update(status="completed", conclusion="failure")
        return web.json_response({"total_count": len(jobs), "jobs": jobs})

    async def _annotations(self, request: web.Request) -> web.Response:
        failed = self._failed_job(int(request.match_info["id"]))
        if failed is None:
            return await self._not_found(request)
        return web.json_response(failed[1])

    async def _log(self, request: web.Request) -> web.Response:
        """The job's log: GitHub answers with a redirect to the plain text, which the client
        follows; here, the text itself."""
        failed = self._failed_job(int(request.match_info["id"]))
        if failed is None:
            return await self._not_found(request)
        return web.Response(text=failed[2], content_type="text/plain")

    async def _not_found(self, request: web.Request) -> web.Response:
        with self._lock:
            self._state.unexpected.append(f"{request.method} {request.path_qs}")
        return web.json_response({"message": "Not Found"}, status=404)


def _repo(request: web.Request) -> str:
    return f"{request.match_info['owner']}/{request.match_info['repo']}"


def _conditional(request: web.Request, body: Any) -> web.Response:
    """The answer with its ETag, or 304 when the request already has it, as GitHub does."""
    etag = '"' + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest() + '"'
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    return web.json_response(body, headers={"ETag": etag})


def _reset(request: web.Request) -> web.StreamResponse:
    """Drop the connection with a TCP reset, as a failing proxy or network does."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    raise asyncio.CancelledError
