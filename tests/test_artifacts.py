"""An upstream build's artifacts travel with every trigger of its success: from the builds API
or a GitHub run, to the runners (repository_dispatch, workflow_dispatch where the workflow
declares the input, webhooks) and the event page."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from conjunction.config.repo_config import Trigger
from conjunction.config.settings import Settings
from conjunction.forges.github.forge import GitHubForge
from conjunction.models import Event
from conjunction.runner import TriggerRequest
from conjunction.tokens import create_project_token
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.fakegithub import FakeGitHub
from tests.test_flow import APP, LIB, SHA, TOOL, index, upstream_of
from tests.test_github_e2e import (
    expect_artifacts,
    expect_dispatch,
    expect_reports,
    started,
)
from tests.test_pages import Page

WHEEL = {"name": "lib-1.0-py3-none-any.whl", "url": "https://ci.acme.dev/lib/7/lib.whl"}
DOCS = {"name": "docs", "url": "http://ci.acme.dev/lib/7/docs.tar.gz"}


async def post_build(client: TestClient[Any, Any], **body: Any) -> Any:
    async with runtime(client).sessions.begin() as session:
        token = await create_project_token(session, LIB)
    return await client.post(
        "/api/v1/builds",
        json={"project": LIB, "sha": SHA, "ref": "main", "result": "success", **body},
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_every_trigger_of_a_build_carries_its_artifacts(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    await index(client, TOOL, upstream_of(LIB))
    answer = await post_build(client, artifacts=[WHEEL, DOCS])
    assert answer.status == 202
    build = (await answer.json())["event_id"]
    await run_jobs(client)

    started = {project: request for project, request in forge.of("start_pipeline")}
    assert sorted(started) == [APP, TOOL]
    assert [list(request.artifacts) for request in started.values()] == [[WHEEL, DOCS]] * 2

    trace = await (await client.get(f"/api/v1/events/{build}")).json()
    assert trace["artifacts"] == [WHEEL, DOCS]
    child = await (await client.get(f"/api/v1/events/{started[APP].event_id}")).json()
    assert (child["artifacts"], child["upstream_artifacts"]) == ([], [WHEEL, DOCS])

    page = Page(await (await client.get(f"/events/{build}")).text())
    assert WHEEL["url"] in page.links and DOCS["url"] in page.links
    assert WHEEL["name"] in page.text and "Artifacts" in page.text
    downstream = Page(await (await client.get(f"/events/{started[APP].event_id}")).text())
    assert "Upstream artifacts" in downstream.text and WHEEL["url"] in downstream.links


async def test_an_artifact_url_that_is_not_http_is_shown_as_text(
    client: TestClient[Any, Any],
) -> None:
    """The API takes only http(s) URLs; the page guards anyway (a GitHub run's list is kept as
    GitHub gives it)."""
    answer = await post_build(client)
    build = (await answer.json())["event_id"]
    async with runtime(client).sessions.begin() as session:
        event = await session.get(Event, build)
        assert event is not None
        event.artifacts = [{"name": "x", "url": "javascript:alert(1)"}]
    page = Page(await (await client.get(f"/events/{build}")).text())
    assert "x" in page.text
    assert not [link for link in page.links if "javascript" in link]


BAD_ARTIFACTS = [
    ([{"name": "w", "url": "javascript:alert(1)"}], "artifacts.0.url: not an http(s) URL"),
    ([{"name": "w", "url": "ftp://ci.acme.dev/w"}], "artifacts.0.url: not an http(s) URL"),
    ([{"name": "", "url": WHEEL["url"]}], "artifacts.0.name: String should have at least 1"),
    ([{"name": "w" * 201, "url": WHEEL["url"]}], "artifacts.0.name: String should have at most"),
    ([{"name": "w", "url": "https://x/" + "a" * 2000}], "artifacts.0.url: String should have"),
    ([{"name": "w"}], "artifacts.0.url: Field required"),
    ([WHEEL] * 101, "artifacts: List should have at most 100 items"),
    ({"name": "w"}, "artifacts: Input should be a valid array"),
]


async def test_artifacts_are_validated(client: TestClient[Any, Any]) -> None:
    for artifacts, error in BAD_ARTIFACTS:
        answer = await post_build(client, artifacts=artifacts)
        assert answer.status == 422
        assert (await answer.json())["error"].startswith(error)


# GitHub as the downstream's runner


def forge_on(gh: FakeGitHub) -> GitHubForge:
    async def clients(project: str) -> FakeGitHub:
        return gh

    return GitHubForge(clients)


def request(event_id: str = "ev1", **trigger: Any) -> TriggerRequest:
    return TriggerRequest(
        event_id=event_id,
        project=APP,
        upstream=LIB,
        upstream_sha=SHA,
        upstream_ref="main",
        upstream_url=None,
        callback_url=f"https://conjunction.test/api/v1/events/{event_id}/status",
        callback_token="token",
        trigger=Trigger(**trigger),
        default_branch="main",
        artifacts=[WHEEL],
    )


def contents(text: str) -> dict[str, Any]:
    return {"type": "file", "content": base64.b64encode(text.encode()).decode()}


WORKFLOW = """\
on:
  workflow_dispatch:
    inputs:
      conjunction_event: {required: true}
      upstream: {required: true}
      upstream_sha: {required: true}
      upstream_ref: {required: true}
      upstream_artifacts: {required: false}
"""
DISPATCHES = "/repos/acme/app/actions/workflows/conjunction.yml/dispatches"


async def test_repository_dispatch_carries_the_artifacts(fake_github: FakeGitHub) -> None:
    fake_github.expect("POST", "/repos/acme/app/dispatches", status=204)
    await forge_on(fake_github).start_pipeline(request())
    [call] = fake_github.calls
    assert call.body["client_payload"]["artifacts"] == [WHEEL]


async def test_workflow_dispatch_sends_them_where_the_workflow_declares_the_input(
    fake_github: FakeGitHub,
) -> None:
    """The workflow file is read once, then remembered."""
    fake_github.expect(
        "GET",
        "/repos/acme/app/contents/.github/workflows/conjunction.yml?ref=main",
        body=contents(WORKFLOW),
    )
    fake_github.expect("POST", DISPATCHES, status=204, times=2)
    forge = forge_on(fake_github)
    await forge.start_pipeline(request("ev1", workflow="conjunction.yml"))
    await forge.start_pipeline(request("ev2", workflow="conjunction.yml"))
    dispatched = fake_github.calls_to("POST", DISPATCHES)
    assert [call.body["inputs"]["conjunction_event"] for call in dispatched] == ["ev1", "ev2"]
    assert [json.loads(call.body["inputs"]["upstream_artifacts"]) for call in dispatched] == [
        [WHEEL],
        [WHEEL],
    ]


@pytest.mark.parametrize(
    "workflow",
    [
        WORKFLOW.replace("      upstream_artifacts: {required: false}\n", ""),
        "on:\n  workflow_dispatch:\n",
        "on: [workflow_dispatch]\n",
        "on: [",
        # Files the bounded YAML loader refuses count as declaring nothing: deeper than its
        # depth budget (plain PyYAML raised RecursionError, retried 8 times, never dispatched),
        # over its budget of values, or over 64 KB (plain PyYAML took seconds on the loop).
        "[" * 30_000,
        WORKFLOW + "x: [" + "1, " * 12_000 + "]\n",
        WORKFLOW + "jobs:\n  build:\n    steps:\n" + "      - run: make\n" * 4_000,
    ],
    ids=["no-input", "no-inputs", "list", "broken", "deep", "many-values", "over-64kb"],
)
async def test_workflow_dispatch_leaves_them_out_where_the_input_is_not_declared(
    fake_github: FakeGitHub, workflow: str
) -> None:
    fake_github.expect(
        "GET",
        "/repos/acme/app/contents/.github/workflows/conjunction.yml?ref=main",
        body=contents(workflow),
    )
    fake_github.expect("POST", DISPATCHES, status=204)
    await forge_on(fake_github).start_pipeline(request(workflow="conjunction.yml"))
    [dispatch] = fake_github.calls_to("POST", DISPATCHES)
    assert "upstream_artifacts" not in dispatch.body["inputs"]


async def test_a_github_runs_artifacts_reach_the_downstream_workflow(
    aiohttp_client: Any, settings: Settings, app_private_pem: str, fake_github: FakeGitHub
) -> None:
    """The upstream's run lists its artifacts (an expired one left out); the downstream's
    workflow declares `upstream_artifacts` and gets them."""
    gh = fake_github
    async with started(aiohttp_client, settings, app_private_pem, gh) as client:
        expect_artifacts(
            gh,
            1,
            {"id": 11, "name": "wheel", "expired": False, "size_in_bytes": 10},
            {"id": 12, "name": "old-wheel", "expired": True, "size_in_bytes": 10},
        )
        gh.expect(
            "GET",
            "/repos/acme/app/contents/.github/workflows/conjunction.yml?ref=main",
            body=contents(WORKFLOW),
        )
        expect_dispatch(gh)
        expect_reports(gh, completed=False)
        await post_github(client, "workflow_run", workflow_run("acme/lib", "1" * 40))
        await run_jobs(client)

        [dispatch] = gh.calls_to("POST", DISPATCHES)
        wheel = {
            "name": "wheel",
            "id": 11,
            "run_id": "1",
            "repository": LIB,
            "url": "https://github.com/acme/lib/actions/runs/1/artifacts/11",
        }
        assert json.loads(dispatch.body["inputs"]["upstream_artifacts"]) == [wheel]
        event_id = dispatch.body["inputs"]["conjunction_event"]
        trace = await (await client.get(f"/api/v1/events/{event_id}")).json()
        assert trace["upstream_artifacts"] == [wheel]
        gh.assert_all_called()
