"""`python app.py demo`: the simulated ecosystem fills the dashboard, badges, check summaries and
issues through the real engine."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.demo import (
    BREAKS_LINT,
    BROKEN_NOTE,
    CHANGE_NOTE,
    CORE,
    INTERNAL,
    JSON,
    LINT,
    PARSER,
    PLUGINS,
    Ecosystem,
)
from conjunction.web import demo
from testkit.server_process import ServerProcess
from tests.test_pages import EMOJI, Page

WAIT = 60.0  # generous: the machine is shared; nothing here measures time
ADMIN = {"Authorization": "Bearer admin-token"}


async def until(check: Callable[[], Awaitable[bool]], wait: float = WAIT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while not await check():
        assert loop.time() < deadline, "the demo did not get there"
        await asyncio.sleep(0.1)


async def demo_client(
    aiohttp_client: Any, settings: Settings, speed: float = 20
) -> tuple[TestClient[Any, Any], Ecosystem]:
    ecosystem = Ecosystem(settings.public_url, speed=speed, seed=1)
    app = create_app(settings, adapters=Adapters.of(ecosystem.forge))
    demo.install(app, ecosystem)
    return await aiohttp_client(app), ecosystem


async def test_the_demo_fills_pages_badges_checks_and_issues(
    aiohttp_client: Any, settings: Settings
) -> None:
    client, ecosystem = await demo_client(aiohttp_client, settings)
    forge = ecosystem.forge

    async def plugins_issue_opened() -> bool:
        return any(issue.project == PLUGINS for issue in forge.issues)

    await until(plugins_issue_opened)

    home = await (await client.get("/")).text()
    assert CORE in home
    assert INTERNAL not in home, "the private project is the admin's only"
    badge = await (await client.get(f"/badges/{CORE}.json")).json()
    assert " of " in badge["message"]

    issue = next(issue for issue in forge.issues if issue.project == PLUGINS)
    assert issue.title.startswith(f"{CORE} broke") or CORE in issue.title
    issue_page = await (await client.get(f"/demo/issues/{issue.number}")).text()
    assert "fails against" in issue_page
    # why, in the issue and on the failure's page: the line of its log that says so
    assert (
        "Why it failed (**test failure**), from the end of the failed job's log:\n\n```text\n"
        f"$ make test\nFAILED {BROKEN_NOTE}\nmake: *** [test] Error 1\n```"
    ) in issue.body
    trace = re.search(r"Trace: <https://conjunction\.test(/events/\w+)>", issue.body)
    assert trace is not None
    failure_page = " ".join(Page(await (await client.get(trace[1])).text()).text)
    seen = " ".join(failure_page.split())
    assert "test failure from the end of the failed job's log · the whole log" in seen
    assert f"$ make test FAILED {BROKEN_NOTE} make: *** [test] Error 1" in seen

    reported = [
        sha
        for sha, posted in forge.reports.items()
        if posted.check is not None and getattr(forge.find_commit(sha), "project", None) == CORE
    ]
    assert reported
    commit_page = await (await client.get(f"/demo/commits/{reported[0]}")).text()
    assert "<table>" in commit_page, "the check summary is rendered"
    assert "Conjunction: downstream" in commit_page
    posted = forge.reports[reported[0]].check
    assert posted is not None and EMOJI.search(posted.summary), "GitHub shows the emoji"
    assert not EMOJI.findall(commit_page), "drawn as icons: no emoji font is needed"
    assert 'class="icon st-' in commit_page

    project = await (await client.get(f"/api/v1/projects/{CORE}")).json()
    assert project["latest_downstream_results"]["total"] >= 4
    status = forge.reports[reported[0]].status
    assert status is not None
    event_page = await client.get(status.target_url.removeprefix(settings.public_url))
    assert event_page.status == 200
    assert CORE in await event_page.text()


async def test_the_demo_finds_the_commit_of_a_merge_that_broke_lint(
    aiohttp_client: Any, settings: Settings
) -> None:
    # core's pushes at half the other tests' pace: fewer jobs ahead of the search's on a busy
    # machine, whose steps run one after another
    client, ecosystem = await demo_client(aiohttp_client, settings, speed=10)
    forge = ecosystem.forge

    async def culprit_named() -> bool:
        return any(
            issue.project == LINT and "Culprit" in comment
            for issue in forge.issues
            for comment in issue.comments
        )

    await until(culprit_named, 3 * WAIT)
    culprit = next(commit for commit in forge.commits[PARSER] if commit.message == BREAKS_LINT)
    issue = next(issue for issue in forge.issues if issue.project == LINT)
    [comment] = [comment for comment in issue.comments if "Culprit" in comment]
    assert f"**Culprit found**: {LINT} first fails against `{culprit.sha[:7]}` {BREAKS_LINT}" in (
        comment
    )
    assert "by @barbara" in comment
    # the steps: lint's runs against the merge's commits before its last (known bad)
    merged = [commit.sha for commit in forge.commits[PARSER][2:6]]
    steps = [
        run
        for run in forge.runs
        if run.request is not None and run.project == LINT and run.request.upstream_sha in merged
    ]
    assert 1 <= len(steps) <= 3, "five commits: at most three runs"
    issue_page = await (await client.get(f"/demo/issues/{issue.number}")).text()
    assert "Culprit found" in issue_page


async def test_private_runs_of_the_simulated_forge_are_the_admins(
    aiohttp_client: Any, settings: Settings
) -> None:
    client, ecosystem = await demo_client(aiohttp_client, settings)

    async def internal_ran() -> bool:
        return any(run.project == INTERNAL for run in ecosystem.forge.runs)

    await until(internal_ran)
    number = next(run.number for run in ecosystem.forge.runs if run.project == INTERNAL)
    assert (await client.get(f"/demo/runs/{number}")).status == 404
    assert (await client.get(f"/demo/runs/{number}", headers=ADMIN)).status == 200
    assert INTERNAL not in await (await client.get("/demo")).text()


def test_the_demo_command_prints_where_to_look(tmp_path: Path) -> None:
    env = {"CONJUNCTION_ADMIN_TOKEN": "demo-admin-token"}
    with ServerProcess(tmp_path, env, args=["demo", "--speed", "20"]) as server:
        with urllib.request.urlopen(f"{server.url}/api/v1/projects/{CORE}") as answer:
            assert json.load(answer)["project"] == CORE
        server.terminate()
    log = server.log()
    assert f"open http://localhost:{server.port}/" in log
    assert "demo-admin-token" in log
    assert (tmp_path / "demo.db").exists()


async def test_the_demo_shows_a_pre_merge_check(aiohttp_client: Any, settings: Settings) -> None:
    client, ecosystem = await demo_client(aiohttp_client, settings)
    forge = ecosystem.forge

    async def checked() -> bool:
        change = ecosystem.change
        posted = forge.reports.get(change.head_sha) if change else None
        return bool(
            posted
            and posted.check
            and posted.check.completed
            and "Why they failed with this change" in (posted.comment or "")
        )

    await until(checked)
    assert ecosystem.change is not None
    posted = forge.reports[ecosystem.change.head_sha]
    assert posted.check is not None and posted.status is not None
    assert posted.check.check_name == "Conjunction: downstream (pre-merge)"
    assert (posted.status.status_context, posted.status.state) == (
        "conjunction/premerge",
        "failure",
    )
    assert f"| {JSON} | ❌ breaks \\[test failure\\] |" in str(posted.comment)
    assert f"$ make test\nFAILED {CHANGE_NOTE}\nmake: *** [test] Error 1\n" in str(posted.comment)
    assert f"| {PLUGINS} | 🎉 fixes |" in str(posted.comment)
    assert INTERNAL not in str(posted.comment)
    page = await client.get(f"/changes/{CORE}/1")
    assert page.status == 200
    commit_page = await (await client.get(f"/demo/commits/{ecosystem.change.head_sha}")).text()
    assert "Conjunction: downstream (pre-merge)" in commit_page
