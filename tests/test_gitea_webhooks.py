"""POST /webhooks/gitea with Gitea's and Forgejo's payloads: the signature, the answer, what is
stored, and what the processing job does (through the fake Gitea)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.forges.gitea.events.push import listed_paths
from conjunction.forges.gitea.events.runs import forgejo_ref
from conjunction.models import Delivery, Job, Project
from conjunction.names import project_key
from tests.conftest import run_jobs, runtime
from tests.fakegitea import (
    FakeGitea,
    fixture,
    gitea_host,
    post_gitea,
    push_event,
    repo_path,
    signature,
)

CONFIG = "upstreams:\n  - project: github.com/acme/lib\n"
APP = "acme/app"


@pytest.fixture
async def client(
    aiohttp_client: Any, gitea_settings: Settings, fake_gitea: FakeGitea
) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(
        gitea_settings, adapters=Adapters.of(gitea_host(fake_gitea)), run_workers=False
    )
    yield await aiohttp_client(app)


async def stored(client: TestClient[Any, Any]) -> tuple[int, int]:
    async with runtime(client).sessions() as session:
        deliveries = await session.scalar(select(func.count()).select_from(Delivery))
        jobs = await session.scalar(select(func.count()).select_from(Job))
    return deliveries or 0, jobs or 0


@pytest.mark.parametrize(
    ("event", "name", "status"),
    [
        ("push", "push.json", 202),
        ("status", "status.json", 202),
        ("workflow_run", "workflow_run.json", 202),
        ("action_run", "action_run.json", 202),
        ("action_run_success", "action_run.json", 202),
        ("pull_request", "pull_request.json", 202),
        ("issue_comment", "issue_comment.json", 202),
    ],
)
async def test_every_fixture_is_answered_and_processed(
    client: TestClient[Any, Any], fake_gitea: FakeGitea, event: str, name: str, status: int
) -> None:
    answer = await post_gitea(client, event, fixture(name), forgejo=event.startswith("action"))
    assert answer.status == status
    assert (await answer.json())["status"] == ("accepted" if status == 202 else "ignored")
    assert await stored(client) == ((1, 1) if status == 202 else (0, 0))
    # the documented push is not to the default branch, the status, runs and pull request are
    # of a repository that never joined: processing asks Gitea nothing (the fake fails on any
    # call); the comment's `/conjunction test` is acknowledged and refused to a non-collaborator
    if event == "issue_comment":
        repo = repo_path("gitea/webhooks")
        fake_gitea.expect("POST", f"{repo}/issues/comments/3/reactions", status=201, body={})
        fake_gitea.expect(
            "GET", f"{repo}/collaborators/gitea/permission", status=404, body={"message": "no"}
        )
        fake_gitea.expect("POST", f"{repo}/issues/1/comments", status=201, body={"id": 4})
    await run_jobs(client)


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({"X-Gitea-Signature": ""}, "X-Gitea-Signature header missing"),
        ({"X-Gitea-Signature": "sha256=abc"}, "X-Gitea-Signature header malformed"),
        ({"X-Gitea-Signature": "0" * 64}, "X-Gitea-Signature does not match the webhook secret"),
    ],
)
async def test_a_bad_signature_is_refused_and_nothing_is_stored(
    client: TestClient[Any, Any], headers: dict[str, str], error: str
) -> None:
    body = json.dumps(fixture("push.json")).encode()
    sent = {"X-Gitea-Event": "push", "X-Gitea-Delivery": "d-1", **headers}
    if not headers["X-Gitea-Signature"]:
        del sent["X-Gitea-Signature"]
    answer = await client.post("/webhooks/gitea", data=body, headers=sent)
    assert answer.status == 401
    assert (await answer.json())["error"].startswith(error)
    assert await stored(client) == (0, 0)


async def test_forgejo_headers_alone_are_enough(client: TestClient[Any, Any]) -> None:
    body = json.dumps(fixture("action_run.json")).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Forgejo-Event": "action_run",
        "X-Forgejo-Delivery": "f6266f16-1bf3-46a5-9ea4-602e06ead473",
        "X-Forgejo-Signature": signature(body),
    }
    answer = await client.post("/webhooks/gitea", data=body, headers=headers)
    assert answer.status == 202
    assert (await answer.json())["delivery"] == "f6266f16-1bf3-46a5-9ea4-602e06ead473"


async def test_a_signature_made_with_another_secret_is_refused(
    client: TestClient[Any, Any],
) -> None:
    answer = await post_gitea(client, "push", fixture("push.json"), secret="guess", forgejo=True)
    assert answer.status == 401


async def test_a_repeated_delivery_does_nothing(client: TestClient[Any, Any]) -> None:
    payload = fixture("status.json")
    headers = {"X-Gitea-Delivery": "5f7c0e37-uuid"}
    first = await post_gitea(client, "status", payload, headers=headers)
    again = await post_gitea(client, "status", payload, headers=headers)
    assert (first.status, again.status) == (202, 200)
    assert (await again.json())["status"] == "duplicate"
    assert await stored(client) == (1, 1)


async def test_without_a_secret_the_endpoint_is_off(
    aiohttp_client: Any, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings, adapters=Adapters(), run_workers=False))
    answer = await post_gitea(client, "push", fixture("push.json"))
    assert answer.status == 404


async def test_a_push_of_the_config_joins_a_repository_whose_hook_was_set_by_hand(
    client: TestClient[Any, Any], fake_gitea: FakeGitea
) -> None:
    fake_gitea.expect_index(APP, CONFIG, repo_info=False)
    push = push_event(APP, "1" * 40, "2" * 40, changed=[".conjunction.yml"])
    assert (await post_gitea(client, "push", push)).status == 202
    await run_jobs(client)

    async with runtime(client).sessions() as session:
        project = await session.get(Project, project_key(f"codeberg.org/{APP}"))
    assert project is not None and project.config is not None


async def test_an_invalid_config_pushed_gets_a_failed_status(
    client: TestClient[Any, Any], fake_gitea: FakeGitea
) -> None:
    fake_gitea.expect_index(APP, "upstreams: 3\n", repo_info=False)
    fake_gitea.expect_status(APP, "2" * 40)
    push = push_event(APP, "1" * 40, "2" * 40, changed=[".conjunction.yml"])
    await post_gitea(client, "push", push)
    await run_jobs(client)
    [status] = fake_gitea.statuses(APP, "2" * 40)
    assert (status["context"], status["state"]) == ("conjunction/config", "failure")
    assert status["description"].startswith(".conjunction.yml line 1: upstreams:")


async def test_a_push_listing_no_files_asks_what_changed(
    client: TestClient[Any, Any], fake_gitea: FakeGitea
) -> None:
    push = fixture("push.json")  # the documented example: no files listed
    push["ref"] = "refs/heads/main"
    push["repository"]["full_name"] = APP
    assert listed_paths(push) is None
    fake_gitea.expect(
        "GET",
        f"{repo_path(APP)}/compare/{push['before']}...{push['after']}",
        body={"total_commits": 1, "commits": [{"sha": push["after"], "files": []}]},
    )
    await post_gitea(client, "push", push)
    await run_jobs(client)  # nothing indexed: the config did not change


def test_a_forgejo_tag_run_is_a_tag() -> None:
    run = fixture("action_run.json")["run"]
    assert forgejo_ref(run) == ("main", "branch")
    run["event_payload"] = json.dumps({"ref": "refs/tags/v2.0.0"})
    assert forgejo_ref(run) == ("v2.0.0", "tag")
    run["event_payload"] = ""
    assert forgejo_ref(run) == ("main", "branch")
