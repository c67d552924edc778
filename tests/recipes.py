"""The recipes of `docs/ci/` as the tests run them: a page's titled code blocks, the app listening
on a real loopback port (so a CI's `curl` can reach its callback URL), a downstream configured
from a page, and a shell to run the page's commands in.

A recipe page marks what the tests execute with a title in the fence's info string, e.g.
```` ```yaml title=".conjunction.yml" ````; blocks without a title are prose.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from markdown_it import MarkdownIt

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.repo_config import parse_config
from conjunction.config.settings import Settings
from conjunction.models import Event
from conjunction.secrets import SecretStore, load_secrets
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.test_flow import index

RECIPES = Path(__file__).parent.parent / "docs" / "ci"
LIB = "github.com/acme/lib"
_TITLE = re.compile(r'title="([^"]+)"')


def code_blocks(page: str) -> dict[str, str]:
    """The titled code blocks of a recipe page, by title."""
    blocks: dict[str, str] = {}
    for token in MarkdownIt().parse((RECIPES / page).read_text()):
        title = _TITLE.search(token.info) if token.type == "fence" else None
        if title:
            assert title[1] not in blocks, f"{page}: two blocks titled {title[1]}"
            blocks[title[1]] = token.content
    return blocks


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def need(*programs: str) -> None:
    missing = [program for program in programs if shutil.which(program) is None]
    if missing:
        pytest.skip(f"the recipe's commands need {', '.join(missing)}, not found on PATH")


async def live_client(
    aiohttp_client: Any, settings: Settings, forge: MemoryHost, secrets_file: Path
) -> TestClient[Any, Any]:
    """The app on a real port of 127.0.0.1 that is its public URL, webhooks to loopback allowed."""
    port = free_port()
    settings = settings.model_copy(
        update={
            "public_url": f"http://127.0.0.1:{port}",
            "secrets_file": secrets_file,
            "allow_private_webhooks": True,
        }
    )
    app = create_app(settings, adapters=Adapters.of(forge), run_workers=False)
    return await aiohttp_client(TestServer(app, host="127.0.0.1", port=port))


@dataclass
class Ran:
    code: int
    out: str
    err: str


async def run(argv: list[str], env: Mapping[str, str], stdin: str | None = None) -> Ran:
    """A command with only PATH, HOME and `env` in its environment, as a CI job would have."""
    base = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    process = await asyncio.create_subprocess_exec(
        *argv,
        env={**base, **env},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate(stdin.encode() if stdin is not None else None)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


@dataclass
class Downstream:
    """A downstream configured as a recipe page says, and the upstream commit report it feeds."""

    client: TestClient[Any, Any]
    forge: MemoryHost
    project: str
    blocks: dict[str, str]
    secrets: dict[str, str]  # name -> value, from the page's secrets.yml

    @property
    def base_url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")

    async def upstream_succeeds(self, sha: str) -> None:
        """The upstream's workflow run on main succeeds: the downstream is triggered."""
        await post_github(self.client, "workflow_run", workflow_run("acme/lib", sha))
        await run_jobs(self.client)

    async def event(self, event_id: str) -> Event:
        event = await runtime(self.client).engine.get_event(event_id)
        assert event is not None
        return event

    async def upstream_shows(
        self, sha: str, result: str, run_url: str, *, passed_before: bool = True
    ) -> None:
        """After the CI's report: the upstream commit's status and its row for the downstream.
        A failure after a pass is a new regression and fails the upstream; a first failure
        blames nobody."""
        await run_jobs(self.client)
        _, (reported, report) = self.forge.of("status")[-1]
        blamed = result == "failure" and passed_before
        assert (reported, report.state) == (sha, "failure" if blamed else "success")
        shown = {"success": "✅ passed", "failure": "❌ new regression" if blamed else "❌ failed"}
        row = f"| {self.project} | {shown[result]}"
        assert row in report.summary
        assert f"[run]({run_url})" in report.summary


async def downstream_of(
    page: str,
    project: str,
    ci_url: str,
    ci_stand_in: str,
    *,
    aiohttp_client: Any,
    settings: Settings,
    forge: MemoryHost,
    tmp_path: Path,
) -> Downstream:
    """The live app with the page's secrets file; the upstream LIB and the downstream `project`
    indexed with the page's `.conjunction.yml`, its CI's address `ci_url` replaced by the
    stand-in's. The config must be valid, its secrets allowed, as `validate --secrets` checks."""
    blocks = code_blocks(page)
    secrets_file = tmp_path / "secrets.yml"
    secrets_file.write_text(blocks["secrets.yml"])
    store = SecretStore(secrets_file)
    config = blocks[".conjunction.yml"]
    parse_config(config, secrets=lambda name: store.problem(name, project))
    assert ci_url in config
    client = await live_client(aiohttp_client, settings, forge, secrets_file)
    # the upstream requires this downstream, whoever owns it: its new regression fails the commit
    await index(client, LIB, f"report:\n  required: [{project}]\n")
    await index(client, project, config.replace(ci_url, ci_stand_in.rstrip("/")))
    values = {name: secret.value for name, secret in load_secrets(secrets_file).items()}
    return Downstream(client, forge, project, blocks, values)
