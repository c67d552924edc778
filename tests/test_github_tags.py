"""Tags on GitHub (CONTRACT §7): a run of a tag push is an upstream success of the tag, known
from the tag's `push` delivery or from GitHub's git refs; `tags:` globs select it and
`branches:` globs never match it."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs
from tests.fakegithub import FakeGitHub
from tests.test_flow import APP, LIB, TOOL, events_of, index
from tests.test_github_e2e import (
    LIB_SHA,
    expect_artifacts,
    expect_dispatch,
    expect_reports,
    github,  # noqa: F401  (the fixture)
)

TAG_SHA = "7" * 40


def tag_push(name: str, *, deleted: bool = False) -> dict[str, Any]:
    return {
        "ref": f"refs/tags/{name}",
        "before": "0" * 40,
        "after": "0" * 40 if deleted else TAG_SHA,
        "deleted": deleted,
        "commits": [],
        "head_commit": None,
        "repository": {
            "full_name": "acme/lib",
            "name": "lib",
            "private": False,
            "default_branch": "main",
        },
    }


SUBSCRIBERS = {
    APP: f'upstreams:\n  - project: {LIB}\n    tags: ["v*"]\n',
    TOOL: f'upstreams:\n  - project: {LIB}\n    branches: ["*"]\n',
}


async def test_a_tag_run_is_the_tags_and_only_tag_globs_select_it(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, LIB, None)
    for name, config in SUBSCRIBERS.items():
        await index(client, name, config)
    await post_github(client, "push", tag_push("v1.2.0"))
    await post_github(client, "workflow_run", workflow_run("acme/lib", TAG_SHA, branch="v1.2.0"))
    await run_jobs(client)

    [(project, request)] = forge.of("start_pipeline")
    assert (project, request.upstream_ref) == (APP, "v1.2.0")
    [build] = [event for event in await events_of(client, LIB) if event.kind == "build"]
    assert (build.ref_type, build.ref) == ("tag", "v1.2.0")

    # a run of the default branch reaches both: APP watches it by default, TOOL by its glob
    await post_github(client, "workflow_run", workflow_run("acme/lib", "8" * 40, run_id=2))
    await run_jobs(client)
    assert [project for project, _ in forge.of("start_pipeline")] == [APP, APP, TOOL]


async def test_a_deleted_tag_is_forgotten(client: TestClient[Any, Any], forge: MemoryHost) -> None:
    await index(client, LIB, None)
    await index(client, APP, SUBSCRIBERS[APP])
    await post_github(client, "push", tag_push("v1.2.0"))
    await post_github(client, "push", tag_push("v1.2.0", deleted=True))
    await post_github(client, "workflow_run", workflow_run("acme/lib", TAG_SHA, branch="v1.2.0"))
    await run_jobs(client)
    assert forge.of("start_pipeline") == []  # no GitHub client here to ask: a branch


async def test_github_is_asked_about_a_ref_no_push_announced(
    github: tuple[TestClient[Any, Any], FakeGitHub],  # noqa: F811
) -> None:
    client, gh = github
    await index(client, APP, SUBSCRIBERS[APP] + "trigger:\n  workflow: conjunction.yml\n")
    sha = LIB_SHA[0]
    not_a_tag = {"message": "Not Found"}
    gh.expect("GET", "/repos/acme/lib/git/ref/tags/feature", status=404, body=not_a_tag)
    expect_artifacts(gh, 1)
    await post_github(client, "workflow_run", workflow_run("acme/lib", sha, branch="feature"))
    await run_jobs(client)
    assert gh.calls_to("POST", "/repos/acme/app/actions/workflows/") == []

    gh.expect("GET", "/repos/acme/lib/git/ref/tags/v2.0.0", body={"ref": "refs/tags/v2.0.0"})
    expect_artifacts(gh, 2)
    expect_dispatch(gh)
    expect_reports(gh, completed=False)
    tagged = workflow_run("acme/lib", sha, branch="v2.0.0", run_id=2)
    await post_github(client, "workflow_run", tagged)
    await run_jobs(client)
    [dispatch] = gh.calls_to("POST", "/repos/acme/app/actions/workflows/")
    assert dispatch.body["inputs"]["upstream_ref"] == "v2.0.0"
