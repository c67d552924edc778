"""POST /webhooks/gitlab with GitLab's documented payloads: the answer, what is stored, and what
the processing job does (through the fake GitLab)."""

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
from conjunction.engine import FinishedPipeline
from conjunction.forges.gitlab.events.pipeline import finished_pipeline
from conjunction.forges.gitlab.events.push import listed_paths
from conjunction.forges.gitlab.settings import GitLabSettings
from conjunction.models import Delivery, Job, Project
from conjunction.names import project_key
from conjunction.results import Result
from testkit.settings import with_forge
from tests.conftest import run_jobs, runtime
from tests.fakegitlab import (
    FIXTURES,
    FakeGitLab,
    encoded,
    gitlab_host,
    post_gitlab,
    push_hook,
)

CONFIG = "upstreams:\n  - project: github.com/acme/lib\n"


@pytest.fixture
async def client(
    aiohttp_client: Any, settings: Settings, fake_gitlab: FakeGitLab
) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(settings, adapters=Adapters.of(gitlab_host(fake_gitlab)), run_workers=False)
    yield await aiohttp_client(app)


def documented(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


async def stored(client: TestClient[Any, Any]) -> tuple[int, int]:
    async with runtime(client).sessions() as session:
        deliveries = await session.scalar(select(func.count()).select_from(Delivery))
        jobs = await session.scalar(select(func.count()).select_from(Job))
    return deliveries or 0, jobs or 0


async def project(client: TestClient[Any, Any], name: str) -> Project | None:
    async with runtime(client).sessions() as session:
        return await session.get(Project, project_key(name))


@pytest.mark.parametrize(
    ("event", "fixture", "status"),
    [
        ("Pipeline Hook", "pipeline_hook.json", 202),
        ("Push Hook", "push_hook.json", 202),
        ("System Hook", "system_project_destroy.json", 202),
        ("Tag Push Hook", "tag_push_hook.json", 200),
        ("Merge Request Hook", "merge_request_hook.json", 202),
    ],
)
async def test_documented_payloads_are_answered_and_processed(
    client: TestClient[Any, Any], fake_gitlab: FakeGitLab, event: str, fixture: str, status: int
) -> None:
    if event == "Push Hook":  # it lists 2 of its 4 commits: GitLab is asked what changed
        fake_gitlab.expect(
            "GET",
            f"/projects/{encoded('mike/diaspora')}/repository/compare",
            body={"diffs": [{"old_path": "CHANGELOG", "new_path": "CHANGELOG"}]},
        )
    answer = await post_gitlab(client, event, documented(fixture))
    assert answer.status == status
    assert (await answer.json())["status"] == ("accepted" if status == 202 else "ignored")
    assert await stored(client) == ((1, 1) if status == 202 else (0, 0))
    # the documented pipeline is a merge-request pipeline, the push changes no config, the
    # merge request is of a project that never joined and the deleted project was never
    # joined: processing asks GitLab nothing more (the fake fails on
    # any other call)
    await run_jobs(client)


async def test_a_wrong_token_is_refused_and_nothing_is_stored(
    client: TestClient[Any, Any],
) -> None:
    answer = await post_gitlab(
        client, "Pipeline Hook", documented("pipeline_hook.json"), token="guess"
    )
    assert answer.status == 401
    assert await answer.json() == {"error": "X-Gitlab-Token does not match the webhook secret"}
    assert await stored(client) == (0, 0)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Gitlab-Event-UUID": "5f7c0e37-uuid"},
        {"X-Gitlab-Event-UUID": "", "Idempotency-Key": "c1a8-retry-key"},
        {"X-Gitlab-Event-UUID": ""},  # older GitLab: the body identifies a repeat
    ],
)
async def test_a_repeated_delivery_does_nothing(
    client: TestClient[Any, Any], headers: dict[str, str]
) -> None:
    payload = documented("pipeline_hook.json")
    first = await post_gitlab(client, "Pipeline Hook", payload, headers=headers)
    again = await post_gitlab(client, "Pipeline Hook", payload, headers=headers)
    assert (first.status, again.status) == (202, 200)
    assert (await again.json())["status"] == "duplicate"
    assert await stored(client) == (1, 1)


async def test_a_push_of_the_config_joins_a_project_whose_hook_was_set_by_hand(
    client: TestClient[Any, Any], fake_gitlab: FakeGitLab
) -> None:
    path, sha = "group/sub/app", "c" * 40
    fake_gitlab.expect_index(path, "upstreams: [oops", project_info=False)
    fake_gitlab.expect_status(path, sha)
    push = push_hook(path, "b" * 40, sha, changed=[".conjunction.yml"])

    assert (await post_gitlab(client, "Push Hook", push)).status == 202
    await run_jobs(client)

    joined = await project(client, f"gitlab.com/{path}")
    assert joined is not None and joined.active and joined.private  # the example is private
    [status] = fake_gitlab.statuses(path, sha)
    assert status["state"] == "failed"
    assert status["name"] == "conjunction/config"
    assert status["description"].startswith(".conjunction.yml line 1")
    assert status["target_url"] == f"https://gitlab.com/{path}/-/blob/{sha}/.conjunction.yml#L1"


async def test_pushes_elsewhere_or_of_other_files_ask_nothing(
    client: TestClient[Any, Any],
) -> None:
    other_file = push_hook("acme/lib", "b" * 40, "c" * 40, changed=["src/lib.py"])
    other_branch = push_hook("acme/lib", "b" * 40, "c" * 40, changed=[".conjunction.yml"])
    other_branch["ref"] = "refs/heads/feature"
    deleted = push_hook("acme/lib", "b" * 40, "0" * 40, changed=[])
    for push in (other_file, other_branch, deleted):
        assert (await post_gitlab(client, "Push Hook", push)).status == 202
    await run_jobs(client)
    assert await project(client, "gitlab.com/acme/lib") is None


async def test_a_system_hook_push_is_compared_to_see_what_changed(
    client: TestClient[Any, Any], fake_gitlab: FakeGitLab
) -> None:
    push = documented("system_push.json")  # its commits list no files
    fake_gitlab.expect(
        "GET",
        f"/projects/{encoded('mike/diaspora')}/repository/compare",
        query={"from": push["before"], "to": push["after"]},
        body={"diffs": [{"old_path": "CODEOWNERS", "new_path": "CODEOWNERS"}]},
    )
    fake_gitlab.expect_index(
        "mike/diaspora",
        CONFIG,
        codeowners={"CODEOWNERS": "* @mike\n"},
        default_branch="master",
        project_info=False,
    )
    assert (await post_gitlab(client, "System Hook", push)).status == 202
    await run_jobs(client)

    joined = await project(client, "gitlab.com/mike/diaspora")
    assert joined is not None and joined.owners == ["mike"]


async def test_system_hooks_follow_projects_deleted_and_moved(
    client: TestClient[Any, Any], fake_gitlab: FakeGitLab
) -> None:
    engine = runtime(client).engine
    for path in ("jsmith/underscore", "jsmith/overscore"):
        await engine.index_project(
            f"gitlab.com/{path}", private=False, default_branch="main", config_text=CONFIG
        )
    fake_gitlab.expect_index("scores/underscore", CONFIG)

    for fixture in ("system_project_destroy.json", "system_project_transfer.json"):
        assert (await post_gitlab(client, "System Hook", documented(fixture))).status == 202
    await run_jobs(client)

    for gone in ("jsmith/underscore", "jsmith/overscore"):
        dropped = await project(client, f"gitlab.com/{gone}")
        assert dropped is not None and not dropped.active
    moved = await project(client, "gitlab.com/scores/underscore")
    assert moved is not None and moved.active and moved.config is not None


@pytest.mark.parametrize("name", sorted(path.name for path in FIXTURES.glob("*.json")))
def test_every_fixture_is_a_json_object_naming_its_project(name: str) -> None:
    data = documented(name)
    project = data.get("project") or {}
    assert project.get("path_with_namespace") or data.get("path_with_namespace")


def test_the_documented_pipeline_in_neutral_terms() -> None:
    data = documented("pipeline_hook.json")
    assert finished_pipeline(data, "gitlab.com") == FinishedPipeline(
        project="gitlab.com/gitlab-org/gitlab-test",
        sha="bcbb5ec396a2c0f828686f14fac9b80b780504f2",
        ref="master",
        result=Result.SUCCESS,
        ref_type="branch",
        pipeline="Pipeline for branch: master",
        run_id="31",
        title="Pipeline for branch: master ",
        url="http://example.com/gitlab-org/gitlab-test/-/pipelines/31",
        started_by="pull_request",  # a merge-request pipeline: never an upstream success
    )
    data["object_attributes"].update(tag=True, ref="v1.0.0", source="push")
    tagged = finished_pipeline(data, "gitlab.com")
    assert tagged is not None and (tagged.ref_type, tagged.started_by) == ("tag", "push")
    data["object_attributes"]["status"] = "running"
    assert finished_pipeline(data, "gitlab.com") is None


def test_pushes_that_do_not_list_every_file_are_unknown() -> None:
    assert listed_paths(documented("push_hook.json")) is None  # 2 of its 4 commits
    assert listed_paths(documented("system_push.json")) is None  # commits without files
    one = push_hook("a/b", "b" * 40, "c" * 40, changed=[".gitlab/CODEOWNERS"])
    assert listed_paths(one) == {".gitlab/CODEOWNERS"}


async def test_the_service_reaches_gitlab_with_its_settings(
    aiohttp_client: Any, settings: Settings, fake_gitlab: FakeGitLab
) -> None:
    gitlab = settings.forge(GitLabSettings).model_copy(
        update={"url": fake_gitlab.url, "token": "glpat-bot-token-for-tests", "host": "gitlab.com"}
    )
    configured = with_forge(settings, gitlab)
    client = await aiohttp_client(create_app(configured, run_workers=False))
    fake_gitlab.expect_index("acme/lib", CONFIG, project_info=False)
    push = push_hook("acme/lib", "b" * 40, "c" * 40, changed=[".conjunction.yml"])

    assert (await post_gitlab(client, "Push Hook", push)).status == 202
    await run_jobs(client)

    joined = await project(client, "gitlab.com/acme/lib")
    assert joined is not None and joined.config is not None
    assert fake_gitlab.calls[0].headers["private-token"] == "glpat-bot-token-for-tests"
