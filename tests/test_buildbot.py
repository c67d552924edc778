"""A real CI in the loop: the Buildbot recipe (`docs/ci/buildbot.md`) run by a Buildbot master and
worker on loopback.

The master runs the recipe's two `master.cfg` parts as written, the builder's repository URL
pointing at a local git repository whose `test-against-upstream.sh` fails for upstream commits
starting with `bad`. Conjunction, configured with the recipe's `.conjunction.yml` and secrets,
triggers it through the change hook; the build runs on the worker and its last step reports to
the callback URL with the callback token; the upstream commit shows the result. Buildbot comes
from the `ci-buildbot` extra; without it these tests are skipped (failed where
CONJUNCTION_REQUIRE_BUILDBOT is set, as `.ci/run` does).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conjunction.config.settings import Settings
from conjunction.models import Event
from testkit.memoryhost import MemoryHost
from tests.recipes import Downstream, code_blocks, downstream_of, free_port, need
from tests.test_flow import events_of

pytestmark = pytest.mark.buildbot

CLI = "git.acme.dev/tools/cli"
REPOSITORY = "https://git.acme.dev/tools/cli.git"
WORKER = ("worker1", "worker-password")
START_TIMEOUT = 60.0
BUILD_TIMEOUT = 60.0

MASTER_TAC = """\
import os
from twisted.application import service
from buildbot.master import BuildMaster

basedir = os.path.abspath(os.path.dirname(__file__))
application = service.Application('buildmaster')
BuildMaster(basedir, 'master.cfg', None).setServiceParent(application)
"""

# the usual definitions the recipe's parts go after: in-memory database, loopback only
MASTER_CFG_HEAD = """\
from buildbot.plugins import worker

c = BuildmasterConfig = {{
    'title': 'cli',
    'buildbotURL': 'http://127.0.0.1:{www}/',
    'buildbotNetUsageData': None,
    'db': {{'db_url': 'sqlite://'}},
    'protocols': {{'pb': {{'port': 'tcp:{pb}:interface=127.0.0.1'}}}},
    'workers': [worker.Worker({worker!r}, {password!r})],
    'www': {{'port': 'tcp:{www}:interface=127.0.0.1'}},
    'schedulers': [],
    'builders': [],
}}

"""

TEST_AGAINST_UPSTREAM = """\
#!/bin/sh
case "$UPSTREAM_SHA" in
  bad*) echo "broken by $UPSTREAM at $UPSTREAM_SHA"; exit 1 ;;
esac
echo "works with $UPSTREAM at $UPSTREAM_SHA"
"""


@dataclass
class Buildbot:
    url: str  # the web server's base, ending in /
    master: Path

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}api/v2/{path}", timeout=10) as answer:
            return json.load(answer)

    def raw(self, path: str) -> str:
        with urllib.request.urlopen(f"{self.url}api/v2/{path}", timeout=10) as answer:
            return str(answer.read().decode())

    def log(self) -> str:
        return (self.master / "twistd.log").read_text()[-3000:]


def unavailable(reason: str) -> None:
    if os.environ.get("CONJUNCTION_REQUIRE_BUILDBOT"):
        pytest.fail(f"CONJUNCTION_REQUIRE_BUILDBOT is set, but {reason}")
    pytest.skip(reason)


def downstream_repository(path: Path) -> Path:
    """The downstream's git repository, with the test script the builder runs."""
    path.mkdir()
    script = path / "test-against-upstream.sh"
    script.write_text(TEST_AGAINST_UPSTREAM)
    script.chmod(0o755)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "cli",
        "GIT_AUTHOR_EMAIL": "cli@acme.dev",
        "GIT_COMMITTER_NAME": "cli",
        "GIT_COMMITTER_EMAIL": "cli@acme.dev",
    }
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "test-against-upstream.sh"],
        ["git", "commit", "-q", "-m", "Test against the upstream"],
    ):
        subprocess.run(command, cwd=path, env=env, check=True, capture_output=True)
    return path


def write_master(directory: Path, repository: Path, www: int, pb: int) -> None:
    blocks = code_blocks("buildbot.md")
    builder = blocks["master.cfg (builder)"]
    assert REPOSITORY in builder
    directory.mkdir()
    (directory / "buildbot.tac").write_text(MASTER_TAC)
    (directory / "changehook.passwd").write_text(blocks["changehook.passwd"])
    head = MASTER_CFG_HEAD.format(www=www, pb=pb, worker=WORKER[0], password=WORKER[1])
    builder = builder.replace(REPOSITORY, repository.as_uri())
    (directory / "master.cfg").write_text(head + blocks["master.cfg"] + "\n" + builder)


def wait_until_attached(buildbot: Buildbot, processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            # installed but not running: the recipe's configuration is wrong, never a skip
            pytest.fail(f"Buildbot stopped while starting:\n{buildbot.log()}")
        try:
            workers = buildbot.api("workers")["workers"]
        except OSError:
            workers = []
        if workers and workers[0]["connected_to"]:
            return
        time.sleep(0.1)
    pytest.fail(f"the Buildbot worker did not attach within {START_TIMEOUT:g} s:\n{buildbot.log()}")


@pytest.fixture(scope="module")
def buildbot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Buildbot]:
    """A Buildbot master with the recipe's configuration and one worker, both on loopback."""
    for module in ("buildbot", "buildbot_worker", "buildbot_www"):
        if importlib.util.find_spec(module) is None:
            unavailable(f"{module} is not installed (pip install -e '.[ci-buildbot]')")
    need("git", "curl")
    bin_dir = Path(sys.executable).parent
    root = tmp_path_factory.mktemp("buildbot")
    www, pb = free_port(), free_port()
    master, worker = root / "master", root / "worker"
    write_master(master, downstream_repository(root / "cli"), www, pb)
    create_worker = [str(bin_dir / "buildbot-worker"), "create-worker", "--maxdelay", "1"]
    subprocess.run(
        [*create_worker, str(worker), f"127.0.0.1:{pb}", *WORKER], check=True, capture_output=True
    )
    twistd = [str(bin_dir / "twistd"), "--nodaemon", "--no_save", "--pidfile="]
    processes = [
        subprocess.Popen(
            [*twistd, "--logfile=twistd.log", "--python=buildbot.tac"],
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for directory in (master, worker)
    ]
    try:
        running = Buildbot(f"http://127.0.0.1:{www}/", master)
        wait_until_attached(running, processes)
        yield running
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def reported(ci: Downstream, event_id: str, buildbot: Buildbot) -> Event:
    """The trigger event once the build has reported its result."""
    deadline = time.monotonic() + BUILD_TIMEOUT
    while time.monotonic() < deadline:
        event = await ci.event(event_id)
        if event.result is not None:
            return event
        await asyncio.sleep(0.1)
    raise AssertionError(f"no result in {BUILD_TIMEOUT:g} s; the master's log:\n{buildbot.log()}")


async def finished(buildbot: Buildbot, build_path: str) -> dict[str, Any]:
    """The build once Buildbot has finished it (its last step reports just before)."""
    deadline = time.monotonic() + BUILD_TIMEOUT
    while time.monotonic() < deadline:
        [build] = buildbot.api(build_path)["builds"]
        if build["complete"]:
            return dict(build)
        await asyncio.sleep(0.1)
    raise AssertionError(f"{build_path} did not finish; the master's log:\n{buildbot.log()}")


@pytest.mark.parametrize(("sha", "outcome"), [("bad" + "0" * 37, "failure"), ("a" * 40, "success")])
async def test_buildbot_builds_on_the_change_hook_and_reports_back(
    buildbot: Buildbot,
    sha: str,
    outcome: str,
    aiohttp_client: Any,
    settings: Settings,
    forge: MemoryHost,
    tmp_path: Path,
) -> None:
    ci = await downstream_of(
        "buildbot.md",
        CLI,
        "https://buildbot.acme.dev",
        buildbot.url,
        aiohttp_client=aiohttp_client,
        settings=settings,
        forge=forge,
        tmp_path=tmp_path,
    )
    await ci.upstream_succeeds(sha)
    [event] = await events_of(ci.client, CLI)
    assert (event.result, event.reason) == (None, None)  # the change hook took it

    event = await reported(ci, event.id, buildbot)
    assert event.result == outcome
    assert event.url is not None
    builder, number = event.url.removeprefix(f"{buildbot.url}#/builders/").split("/builds/")
    build_path = f"builders/{builder}/builds/{number}"

    # the build Buildbot ran: for this event, with this outcome, its report step answered 202
    build = await finished(buildbot, build_path)
    assert build["results"] == {"success": 0, "failure": 2}[outcome]
    [properties] = buildbot.api(f"{build_path}/properties")["properties"]
    assert properties["conjunction_event"][0] == event.id
    assert properties["upstream_sha"][0] == sha
    steps = {step["name"]: step for step in buildbot.api(f"{build_path}/steps")["steps"]}
    assert steps["test against upstream"]["results"] == build["results"]
    report = steps["report to Conjunction"]
    assert report["results"] == 0
    log = buildbot.raw(f"{build_path}/steps/{report['number']}/logs/stdio/raw")
    assert json.dumps({"event_id": event.id, "result": outcome}) in log
    assert properties["callback_token"][0] not in log

    await ci.upstream_shows(sha, outcome, event.url, passed_before=False)
