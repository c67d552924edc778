"""One upstream with many subscribed downstreams, seeded into a real server's database, and what
GitHub sends about them: the set-up the fault suites and the benchmarks share.

Downstream i is `github.com/team{i // 50}/app{i}`, reached through installation `100 + i // 50`:
GitHub paces content calls per installation (80 a minute), as Conjunction does, so teams of 50
are never held back. The upstream `github.com/acme/lib` is installation 1 and reports on its
commits with the defaults (status, check run, pull request comment).

The suites run small by default; `CONJUNCTION_FAULTS=full` runs them at full size.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conjunction import db
from conjunction.adapters import Adapters
from conjunction.config.settings import Settings
from conjunction.engine import Engine
from conjunction.forges.github import installations
from conjunction.tokens import CallbackSigner
from testkit.databases import postgres_or_skip, reset_postgres
from testkit.github_server import Dispatch, GitHubServer
from testkit.keys import PRIVATE_KEY_PEM
from testkit.payloads import workflow_run as workflow_run_payload
from testkit.server_process import ServerProcess
from testkit.signing import WEBHOOK_SECRET, signed

FULL = os.environ.get("CONJUNCTION_FAULTS") == "full"
SECRET_KEY = "a-secret-key-for-the-fault-suites"
UPSTREAM = "github.com/acme/lib"
UPSTREAM_INSTALLATION = 1
TEAM = 50
WORKFLOW = "conjunction.yml"
DOWNSTREAM_CONFIG = f"upstreams:\n  - project: {UPSTREAM}\ntrigger:\n  workflow: {WORKFLOW}\n"
SIGNER = CallbackSigner(SECRET_KEY)
BOTH_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
# SQLite by default, to keep the suite fast; both in the full profile
BACKENDS = BOTH_BACKENDS if FULL else ["sqlite"]

T = TypeVar("T")


def size(small: int, full: int) -> int:
    """The small size by default, the full one with CONJUNCTION_FAULTS=full."""
    return full if FULL else small


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end from plain code, in a thread of its own."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, work).result()


def database_url(backend: str, folder: Path) -> str:
    """A fresh database: SQLite in folder, or the test PostgreSQL with an empty schema."""
    if backend == "sqlite":
        return f"sqlite:///{folder / 'conjunction.db'}"
    url = postgres_or_skip()
    run_async(reset_postgres(url))
    return url


def server_env(github_url: str, database: str) -> dict[str, str]:
    """Settings of a server that calls the fake GitHub at github_url."""
    return {
        "CONJUNCTION_DATABASE_URL": database,
        "CONJUNCTION_SECRET_KEY": SECRET_KEY,
        "CONJUNCTION_PUBLIC_URL": "https://conjunction.test",
        "GITHUB_APP_ID": "1",
        "GITHUB_PRIVATE_KEY": PRIVATE_KEY_PEM,
        "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "GITHUB_API_URL": github_url,
        "GITHUB_HOST": "github.com",
    }


@contextmanager
def fake_github_and_server(
    folder: Path,
    database: str,
    *,
    lists_runs: bool = True,
    names_runs: bool = True,
    settings: Mapping[str, str] | None = None,
) -> Iterator[tuple[GitHubServer, ServerProcess]]:
    """The fake GitHub, and a server on database calling it (with `settings` besides)."""
    with (
        GitHubServer(lists_runs=lists_runs, names_runs=names_runs) as github,
        ServerProcess(folder, {**server_env(github.url, database), **(settings or {})}) as server,
    ):
        yield github, server


@dataclass(frozen=True)
class Fleet:
    size: int

    @cached_property
    def downstreams(self) -> list[str]:
        return [f"github.com/team{i // TEAM}/app{i}" for i in range(self.size)]

    @cached_property
    def installations(self) -> dict[str, int]:
        """Installation of every repository (owner/name)."""
        teams = {
            name.removeprefix("github.com/"): 100 + i // TEAM
            for i, name in enumerate(self.downstreams)
        }
        return {UPSTREAM.removeprefix("github.com/"): UPSTREAM_INSTALLATION, **teams}

    def seed(self, database: str) -> None:
        """Index the upstream and every downstream, as installing the app would."""
        run_async(self._seed(database))

    async def _seed(self, url: str) -> None:
        database = db.create_engine(url)
        try:
            await db.migrate(database)
            sessions = db.sessionmaker(database)
            engine = Engine(sessions, Adapters(), Settings(database_url=url), SIGNER)
            await engine.index_project(
                UPSTREAM, private=False, default_branch="main", config_text=None
            )
            for name in self.downstreams:
                await engine.index_project(
                    name, private=False, default_branch="main", config_text=DOWNSTREAM_CONFIG
                )
            teams: dict[int, list[str]] = {}
            for repo, installation in self.installations.items():
                teams.setdefault(installation, []).append(f"github.com/{repo}")
            for installation, names in teams.items():
                await installations.remember(sessions, names, installation)
        finally:
            await database.dispose()

    def upstream_success(self, sha: str) -> tuple[bytes, dict[str, str]]:
        """The signed `workflow_run` delivery of a successful push build of the upstream."""
        payload = workflow_run_payload(UPSTREAM.removeprefix("github.com/"), sha, run_id=1)
        payload["installation"] = {"id": UPSTREAM_INSTALLATION}
        return signed("workflow_run", payload)

    def downstream_run(
        self, dispatch: Dispatch, conclusion: str = "success", delivery: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The signed `workflow_run` delivery of a dispatched downstream run that finished."""
        payload = workflow_run_payload(
            dispatch.repo,
            str(dispatch.inputs.get("upstream_sha", "")),
            conclusion=conclusion,
            name="Downstream of upstreams",
            run_id=dispatch.run_id,
            event="workflow_dispatch",
            title=f"conjunction {dispatch.event_id}",
        )
        payload["installation"] = {"id": self.installations[dispatch.repo]}
        return signed("workflow_run", payload, delivery)


def status_post(event_id: str, result: str = "success") -> tuple[bytes, dict[str, str]]:
    """A CI system's report of a trigger's result through the status API, with its token."""
    body = json.dumps({"result": result, "url": f"https://ci.test/{event_id}"}).encode()
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {SIGNER.token(event_id)}",
    }
    return body, headers


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 10.0) -> int | None:
    """POST and return the status, or None when no answer came (the server is gone)."""
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f}s"
        time.sleep(0.05)


def unfinished_jobs(server: ServerProcess) -> int:
    """Jobs neither done nor dead."""
    return int(server.query("SELECT count(*) FROM jobs WHERE state NOT IN ('done', 'dead')")[0][0])


def dead_jobs(server: ServerProcess) -> list[tuple[str, str]]:
    """(kind, last error) of every dead job."""
    rows = server.query("SELECT kind, last_error FROM jobs WHERE state = 'dead'")
    return [(kind, error) for kind, error in rows]
