"""A GitLab project downstream of a public GitHub repository, on a server with only GitLab
configured: `python app.py` polls GitHub anonymously (the HTTP fake GitHub), starts the GitLab
pipeline (the recording fake GitLab), hears its Pipeline Hook, and posts nothing to GitHub."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from testkit.github_server import GitHubServer
from testkit.server_process import ServerProcess
from tests.fakegitlab import (
    TOKEN,
    WEBHOOK_TOKEN,
    Call,
    FakeGitLab,
    encoded,
    pipeline_hook,
    push_hook,
)
from tests.test_pages import Page

APP = "group/app"
LIB = "acme/lib"
PUBLIC = 20  # GitLab's visibility_level of a public project
CONFIG = "owners: [alice]\nupstreams:\n  - project: github.com/acme/lib\n"
WAIT = 30.0


async def until(check: Callable[[], Any], what: str, server: ServerProcess) -> Any:
    """check()'s first true answer, asked while the test's loop keeps the fake GitLab serving."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while asyncio.get_running_loop().time() < deadline:
        if answer := check():
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {WAIT:.0f}s:\n{server.log()[-3000:]}")


async def post_hook(server: ServerProcess, event: str, payload: dict[str, Any]) -> int:
    async with aiohttp.ClientSession() as http:
        answer = await http.post(
            f"{server.url}/webhooks/gitlab",
            data=json.dumps(payload).encode(),
            headers={
                "Content-Type": "application/json",
                "X-Gitlab-Event": event,
                "X-Gitlab-Token": WEBHOOK_TOKEN,
            },
        )
        return answer.status


async def get(server: ServerProcess, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        answer = await http.get(f"{server.url}{path}")
        return answer.status, await answer.text()


def created_pipelines(fake_gitlab: FakeGitLab) -> list[Call]:
    return fake_gitlab.calls_to("POST", f"/projects/{encoded(APP)}/pipeline")


def variables(call: Call) -> dict[str, str]:
    return {item["key"]: item["value"] for item in call.body["variables"]}


def runs_listed(github: GitHubServer) -> int:
    return sum("/repos/acme/lib/actions/runs?" in call.path for call in github.calls)


async def test_a_gitlab_project_follows_a_github_upstream_the_app_is_not_on(
    tmp_path: Path, fake_gitlab: FakeGitLab
) -> None:
    with GitHubServer() as github:
        github.add_repository(LIB)
        github.publish_run(LIB, "0" * 39 + "1", artifacts=["old-wheel"])  # history
        env = {
            "GITLAB_URL": fake_gitlab.url,
            "GITLAB_HOST": "gitlab.com",
            "GITLAB_TOKEN": TOKEN,
            "GITLAB_WEBHOOK_SECRET": WEBHOOK_TOKEN,
            "GITHUB_API_URL": github.url,
            "GITHUB_HOST": "github.com",
            "CONJUNCTION_POLL_INTERVAL": "0.2",
            "LOG_FORMAT": "text",
        }
        with ServerProcess(tmp_path, env) as server:
            await _follow(server, github, fake_gitlab)
        # GitHub was only read, anonymously: no app, no token, nothing posted
        assert github.unexpected == []
        assert {call.method for call in github.calls} == {"GET"}
        assert {call.authorization for call in github.calls} == {""}


async def _follow(server: ServerProcess, github: GitHubServer, fake_gitlab: FakeGitLab) -> None:
    # the GitLab project joins by a push of its config
    fake_gitlab.expect_index(APP, CONFIG, project_info=False)
    push = push_hook(APP, "b" * 40, "c" * 40, changed=[".conjunction.yml"])
    push["project"]["visibility_level"] = PUBLIC
    assert await post_hook(server, "Push Hook", push) == 202

    # the first polls only note where the upstream is: its past runs start nothing
    await until(lambda: runs_listed(github) >= 3, "three polls of GitHub", server)
    assert created_pipelines(fake_gitlab) == []
    assert not any(call.path.endswith("/artifacts") for call in github.calls)

    # a new successful run starts the GitLab pipeline, with its artifacts
    fake_gitlab.expect_pipeline(APP, 61)
    run = github.publish_run(LIB, "a" * 40, artifacts=["wheel"])
    [created] = await until(lambda: created_pipelines(fake_gitlab), "a pipeline", server)
    assert any(
        call.path == f"/repos/acme/lib/actions/runs/{run}/artifacts?per_page=100"
        for call in github.calls
    )
    given = variables(created)
    event = given["CONJUNCTION_EVENT"]
    assert created.body["ref"] == "main"
    assert given["CONJUNCTION_UPSTREAM"] == "github.com/acme/lib"
    assert given["CONJUNCTION_UPSTREAM_SHA"] == "a" * 40
    assert given["CONJUNCTION_UPSTREAM_REF"] == "main"
    callback = f"http://localhost:{server.port}/api/v1/events/{event}/status"
    assert given["CONJUNCTION_CALLBACK_URL"] == callback
    [wheel] = json.loads(given["CONJUNCTION_UPSTREAM_ARTIFACTS"])
    assert wheel["name"] == "wheel" and wheel["repository"] == "github.com/acme/lib"
    assert wheel["url"] == f"https://github.com/acme/lib/actions/runs/{run}/artifacts/{wheel['id']}"

    # GitLab's Pipeline Hook is the result, shown on the event page
    done = pipeline_hook(APP, "d" * 40, pipeline_id=61, source="api", event=event)
    assert await post_hook(server, "Pipeline Hook", done) == 202

    async def result() -> str | None:
        status, text = await get(server, f"/api/v1/events/{event}")
        return json.loads(text).get("result") if status == 200 else None

    await _until_async(result, "success", server)
    status, html = await get(server, f"/events/{event}")
    page = Page(html)
    assert status == 200
    assert "passed" in [text.strip() for text in page.text] and "gitlab.com/group/app" in page.text
    assert "Upstream artifacts" in page.text and wheel["url"] in page.links

    # a breakage opens the GitLab issue
    fake_gitlab.expect_pipeline(APP, 62)
    fake_gitlab.expect_failure(APP, 62, "FAILED tests/test_app.py::test_load - KeyError: 'x'")
    fake_gitlab.expect(
        "GET", f"/projects/{encoded(APP)}/issues", query={"state": "opened"}, body=[]
    )
    fake_gitlab.expect("POST", f"/projects/{encoded(APP)}/labels", status=201, body={"id": 1})
    fake_gitlab.expect(
        "POST",
        f"/projects/{encoded(APP)}/issues",
        status=201,
        body={"iid": 7, "web_url": f"https://gitlab.com/{APP}/-/issues/7"},
    )
    fake_gitlab.expect("GET", f"/projects/{encoded(APP)}/repository/compare", repeat=True, body={})
    github.publish_run(LIB, "b" * 40)
    await until(lambda: len(created_pipelines(fake_gitlab)) == 2, "a second pipeline", server)
    second = variables(created_pipelines(fake_gitlab)[-1])["CONJUNCTION_EVENT"]
    failed = pipeline_hook(APP, "e" * 40, pipeline_id=62, status="failed", event=second)
    assert await post_hook(server, "Pipeline Hook", failed) == 202
    [issue] = await until(
        lambda: fake_gitlab.calls_to("POST", f"/projects/{encoded(APP)}/issues"),
        "an issue",
        server,
    )
    assert issue.body["title"] == "gitlab.com/group/app fails against github.com/acme/lib"
    assert "Downstream owners: @alice" in issue.body["description"]
    assert "FAILED tests/test_app.py::test_load - KeyError: 'x'" in issue.body["description"]


async def _until_async(check: Callable[[], Any], expected: Any, server: ServerProcess) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while asyncio.get_running_loop().time() < deadline:
        if await check() == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {expected!r} within {WAIT:.0f}s:\n{server.log()[-3000:]}")
