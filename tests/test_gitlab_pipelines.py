"""GitLab pipelines end to end: which answer Conjunction and which are upstream successes —
someone else's API, trigger-token or multi-project pipeline never answers a trigger event still
waiting for its pipeline, and a child pipeline is part of its parent, never a result or a
success of its own — and a pipeline GitLab refuses, with what to do about it on the row."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from conjunction.models import Event
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.fakegitlab import FakeGitLab, encoded, pipeline_hook, post_gitlab
from tests.test_gitlab_e2e import index, trigger_event

APP = "group/sub/app"
LIB_SHA = "1" * 40


async def a_gitlab_downstream_triggered(
    client: TestClient[Any, Any], fake_gitlab: FakeGitLab, *, pipeline_status: int
) -> Event:
    """github.com/acme/lib passes; its GitLab downstream's pipeline is created (201) or GitLab
    answers `pipeline_status` and the creation will be tried again later."""
    fake_gitlab.expect_index(APP, "upstreams:\n  - project: github.com/acme/lib\n")
    await index(client, "github.com/acme/lib", f"gitlab.com/{APP}")
    fake_gitlab.expect_pipeline(
        APP, 61, status=pipeline_status, body=None if pipeline_status == 201 else {"message": "x"}
    )
    # its retry: not within this test, however long the first attempt takes on a busy machine
    runtime(client).queue.base_delay = 3600.0
    await post_github(client, "workflow_run", workflow_run("acme/lib", LIB_SHA))
    await run_jobs(client)
    assert len(fake_gitlab.calls_to("POST", f"/projects/{encoded(APP)}/pipeline")) == 1
    return await trigger_event(client, f"gitlab.com/{APP}")


@pytest.mark.parametrize("source", ["api", "trigger", "pipeline"])
async def test_someone_elses_pipeline_never_answers_a_trigger_waiting_for_its_pipeline(
    both: tuple[TestClient[Any, Any], MemoryHost], fake_gitlab: FakeGitLab, source: str
) -> None:
    client, github = both
    event = await a_gitlab_downstream_triggered(client, fake_gitlab, pipeline_status=503)
    assert (event.result, event.run_id) == (None, None)  # GitLab was down: tried again later
    shown = len(github.calls)

    # someone's own script, trigger token or multi-project pipeline passes on the default branch
    unrelated = pipeline_hook(APP, "f" * 40, pipeline_id=99, source=source)
    assert (await post_gitlab(client, "Pipeline Hook", unrelated)).status == 202
    await run_jobs(client)

    event = await trigger_event(client, f"gitlab.com/{APP}")
    assert (event.result, event.run_id, event.url) == (None, None, None)
    assert len(github.calls) == shown  # nothing passed as far as github.com/acme/lib is told
    _, (_, status) = github.of("status")[-1]
    assert status.state == "pending"


async def test_a_pipeline_forwarding_another_projects_event_id_answers_nothing(
    both: tuple[TestClient[Any, Any], MemoryHost], fake_gitlab: FakeGitLab
) -> None:
    """A multi-project pipeline that inherited CONJUNCTION_EVENT from its upstream's pipeline
    names no trigger event of this project: it is no answer to this project's waiting one."""
    client, github = both
    event = await a_gitlab_downstream_triggered(client, fake_gitlab, pipeline_status=503)
    async with runtime(client).sessions() as session:  # the upstream's build: an event id,
        [build] = await session.scalars(select(Event).where(Event.kind == "build"))  # no trigger
    forwarded = pipeline_hook(APP, "f" * 40, pipeline_id=99, source="pipeline", event=build.id)
    await post_gitlab(client, "Pipeline Hook", forwarded)
    await run_jobs(client)

    assert (await trigger_event(client, f"gitlab.com/{APP}")).id == event.id
    _, (_, status) = github.of("status")[-1]
    assert status.state == "pending"


async def test_conjunctions_own_pipeline_still_answers_by_its_event_variable(
    both: tuple[TestClient[Any, Any], MemoryHost], fake_gitlab: FakeGitLab
) -> None:
    """GitLab created the pipeline but the answer was lost (a 5xx after creating it): the
    pipeline's CONJUNCTION_EVENT still makes it the trigger's result."""
    client, github = both
    event = await a_gitlab_downstream_triggered(client, fake_gitlab, pipeline_status=502)
    ours = pipeline_hook(APP, "a" * 40, pipeline_id=61, source="api", event=event.id)
    await post_gitlab(client, "Pipeline Hook", ours)
    await run_jobs(client)

    recorded = await runtime(client).engine.get_event(event.id)
    assert recorded is not None and recorded.result == "success"
    _, (sha, status) = github.of("status")[-1]
    assert (sha, status.state, status.description) == (
        LIB_SHA,
        "success",
        "1 of 1 downstream projects passed",
    )


async def test_a_child_pipeline_is_no_result_of_the_trigger(
    both: tuple[TestClient[Any, Any], MemoryHost], fake_gitlab: FakeGitLab
) -> None:
    """A child pipeline (`trigger: include:`, variables forwarded) passes before its parent
    fails: the parent's result is the trigger's."""
    client, github = both
    event = await a_gitlab_downstream_triggered(client, fake_gitlab, pipeline_status=201)
    child = pipeline_hook(APP, "a" * 40, pipeline_id=62, source="parent_pipeline", event=event.id)
    await post_gitlab(client, "Pipeline Hook", child)
    await run_jobs(client)
    assert (await trigger_event(client, f"gitlab.com/{APP}")).result is None

    fake_gitlab.expect_failure(APP, 61)  # no failed job to say why: no excerpt
    parent = pipeline_hook(APP, "a" * 40, pipeline_id=61, source="api", status="failed")
    await post_gitlab(client, "Pipeline Hook", parent)
    await run_jobs(client)
    recorded = await runtime(client).engine.get_event(event.id)
    assert recorded is not None
    assert (recorded.result, recorded.url) == (
        "failure",
        f"https://gitlab.com/{APP}/-/pipelines/61",
    )
    _, (_, status) = github.of("status")[-1]
    assert (
        status.description
        == "0 of 1 downstream projects passed, 1 failed; none blamed on this commit"
    )


async def test_a_child_pipeline_is_no_second_upstream_success(
    both: tuple[TestClient[Any, Any], MemoryHost], fake_gitlab: FakeGitLab
) -> None:
    """A GitLab upstream's push pipeline and its child pipeline both pass on one commit: the
    GitHub downstream is triggered once."""
    client, github = both
    lib, sha = "acme/lib", "2" * 40
    fake_gitlab.expect_index(
        lib, "report:\n  commit_status: false\n  pull_request_comment: false\n"
    )
    github.files[("github.com/acme/app", ".conjunction.yml")] = (
        "upstreams:\n  - project: gitlab.com/acme/lib\n"
    )
    await index(client, f"gitlab.com/{lib}", "github.com/acme/app")
    fake_gitlab.expect_jobs(lib, 900, [])  # the push pipeline's artifacts, asked once

    for pipeline_id, source in ((900, "push"), (901, "parent_pipeline")):
        hook = pipeline_hook(lib, sha, pipeline_id=pipeline_id, source=source)
        assert (await post_gitlab(client, "Pipeline Hook", hook)).status == 202
        await run_jobs(client)

    assert fake_gitlab.calls_to("GET", f"/projects/{encoded(lib)}/pipelines/901/jobs") == []
    async with runtime(client).sessions() as session:
        builds = list(await session.scalars(select(Event).where(Event.kind == "build")))
    assert [build.url for build in builds] == [f"https://gitlab.com/{lib}/-/pipelines/900"]
    [(name, request)] = github.of("start_pipeline")
    assert (name, request.upstream, request.upstream_sha) == (
        "github.com/acme/app",
        "gitlab.com/acme/lib",
        sha,
    )


async def test_refused_pipeline_variables_say_which_setting_to_change_on_the_row(
    both: tuple[TestClient[Any, Any], MemoryHost], fake_gitlab: FakeGitLab
) -> None:
    """A gitlab.com project created since GitLab 17.7 lets no one set pipeline variables."""
    client, github = both
    refused = {"message": {"base": ["Insufficient permissions to set pipeline variables"]}}
    fake_gitlab.expect_index(APP, "upstreams:\n  - project: github.com/acme/lib\n")
    await index(client, "github.com/acme/lib", f"gitlab.com/{APP}")
    fake_gitlab.expect_pipeline(APP, 1, status=400, body=refused)

    await post_github(client, "workflow_run", workflow_run("acme/lib", LIB_SHA))
    await run_jobs(client)

    _, (_, report) = github.of("check")[-1]
    assert (  # Markdown: `\>` shows as `>`
        f"| gitlab.com/{APP} | ❌ error (optional): GitLab refuses pipeline variables on {APP}: "
        "set Settings \\> CI/CD \\> Variables \\> Minimum role to use pipeline variables to "
        "Developer |"
    ) in report.summary
    assert await runtime(client).engine.pending_triggers(f"gitlab.com/{APP}") == []


async def test_a_retried_pipeline_replaces_the_result_and_is_judged_again(
    both: tuple[TestClient[Any, Any], MemoryHost], fake_gitlab: FakeGitLab
) -> None:
    """GitLab's "Retry" runs the same pipeline again: its new end is the trigger's result now
    (CONTRACT §7), and the upstream's report follows it."""
    client, github = both
    event = await a_gitlab_downstream_triggered(client, fake_gitlab, pipeline_status=201)
    fake_gitlab.expect_failure(APP, 61, "FAILED tests/test_app.py::test_flaky")
    failed = pipeline_hook(APP, "a" * 40, pipeline_id=61, source="api", status="failed")
    await post_gitlab(client, "Pipeline Hook", failed)
    await run_jobs(client)
    _, (_, status) = github.of("status")[-1]
    assert (
        status.description
        == "0 of 1 downstream projects passed, 1 failed; none blamed on this commit"
    )

    retried = pipeline_hook(APP, "a" * 40, pipeline_id=61, source="api", status="success")
    await post_gitlab(client, "Pipeline Hook", retried)
    await run_jobs(client)

    recorded = await runtime(client).engine.get_event(event.id)
    assert recorded is not None and (recorded.result, recorded.attempt) == ("success", 2)
    _, (_, status) = github.of("status")[-1]
    assert (status.state, status.description) == ("success", "1 of 1 downstream projects passed")
    # the retried pipeline's pass is the trigger's result, not an upstream success of APP
    async with runtime(client).sessions() as session:
        builds = await session.scalars(
            select(Event).where(Event.kind == "build", Event.project == f"gitlab.com/{APP}")
        )
        assert list(builds) == []
