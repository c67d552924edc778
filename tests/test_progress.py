"""Progress on a long fan-out: while pacing holds downstreams back, the upstream's status, check
run and event page say how many were started and when the next batch goes out — in a few
coalesced report writes, not one per dispatch."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.models import Job, utcnow
from conjunction.progress import Progress, wait
from conjunction.queue import RetryLater
from conjunction.runner import PipelineStarted, TriggerRequest
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.fakegithub import FakeGitHub
from tests.test_flow import LIB, SHA, index, report_status, upstream_of
from tests.test_github_e2e import (
    APP_CONFIG,
    INSTALLATION,
    LIB_SHA,
    expect_artifacts,
    expect_reports,
    started,
)
from tests.test_pages import BROWSER, Page

DOWNSTREAMS = [f"github.com/acme/app{n}" for n in range(5)]
WAIT = 40.0


class PacedHost(MemoryHost):
    """Starts `batch` pipelines, then refuses the next ones as GitHub's client does under its
    secondary limit (`RetryLater`) until the test opens another batch."""

    def __init__(self) -> None:
        super().__init__()
        self.open = 0

    async def start_pipeline(self, request: TriggerRequest) -> PipelineStarted:
        if self.open == 0:
            raise RetryLater(WAIT, "GitHub's secondary rate limit for github.com/acme")
        self.open -= 1
        return await super().start_pipeline(request)


@pytest.fixture
async def paced(aiohttp_client: Any, settings: Settings) -> tuple[TestClient[Any, Any], PacedHost]:
    forge = PacedHost()
    app = create_app(settings, adapters=Adapters.of(forge), run_workers=False)
    return await aiohttp_client(app), forge


async def next_batch(client: TestClient[Any, Any], forge: PacedHost, size: int) -> None:
    """The wait is over: the postponed triggers are due, and `size` of them may start."""
    forge.open = size
    async with runtime(client).sessions.begin() as session:
        await session.execute(
            update(Job).where(Job.kind == "trigger", Job.state == "queued").values(run_at=utcnow())
        )
    await settle(client)


async def settle(client: TestClient[Any, Any]) -> None:
    """Run every job, and the progress reports that follow a postponement a moment later."""
    await run_jobs(client)
    await asyncio.sleep(1.1)
    await run_jobs(client)


def statuses(forge: MemoryHost) -> list[str]:
    return [status.description for _, (_, status) in forge.of("status")]


async def event_page(client: TestClient[Any, Any], event_id: str) -> str:
    response = await client.get(f"/events/{event_id}", headers=BROWSER)
    return " ".join("".join(Page(await response.text()).text).split())


def test_progress_reads_in_seconds_then_minutes() -> None:
    assert Progress(120, 400, 39.2).words() == "started 120 of 400, next batch in ~40 s"
    assert Progress(3, 5).words() == "started 3 of 5"
    assert wait(0.2) == "~1 s"
    assert wait(150) == "~3 min"


async def test_a_paced_fan_out_says_how_far_it_came(
    paced: tuple[TestClient[Any, Any], PacedHost],
) -> None:
    client, forge = paced
    await index(client, LIB, None)
    for name in DOWNSTREAMS:
        await index(client, name, upstream_of(LIB))
    forge.open = 2
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA))
    await settle(client)

    assert len(forge.of("start_pipeline")) == 2
    progress = re.compile(r"started 2 of 5, next batch in ~(3[6-9]|40) s")
    description = statuses(forge)[-1]
    assert progress.search(description), description
    assert description.startswith("0 of 5 downstream projects passed, started 2 of 5")
    assert description.endswith(" s, 2 running"), "the 3 held back are not running"
    assert len(description) <= 140, "GitHub's limit for a status description"
    assert len(statuses(forge)) <= 3, "reports coalesce: not one per dispatch or postponement"
    _, (_, check) = forge.of("check")[-1]
    assert check.state == "pending"
    assert re.search(
        r"Started 2 of 5 downstream pipelines so far; the next batch goes out in ~(3[6-9]|40) s",
        check.summary,
    ), check.summary
    assert check.summary.count("⏳ waiting to start") == 3
    origin = forge.of("start_pipeline")[0][1].parent_id
    page = await event_page(client, origin)
    assert progress.search(page), page
    assert "0 of 5 downstream projects passed, started 2 of 5" in page

    writes = len(statuses(forge))
    await next_batch(client, forge, 2)
    assert len(forge.of("start_pipeline")) == 4
    assert re.search(
        r"started 4 of 5, next batch in ~(3[6-9]|40) s, 4 running", statuses(forge)[-1]
    )
    assert len(statuses(forge)) - writes <= 3

    await next_batch(client, forge, 5)
    for _, request in forge.of("start_pipeline"):
        await report_status(client, request.event_id, "success")
    await run_jobs(client)
    assert statuses(forge)[-1] == "5 of 5 downstream projects passed"
    _, (_, check) = forge.of("check")[-1]
    assert "Started" not in check.summary
    assert "next batch" not in await event_page(client, origin)


async def test_githubs_secondary_limit_holds_a_fan_out_back_and_the_commit_says_so(
    aiohttp_client: Any, settings: Settings, app_private_pem: str, fake_github: FakeGitHub
) -> None:
    """Through the GitHub App as it runs: GitHub refuses the dispatches for 40 s (its secondary
    limit), and the pending status and check run on the upstream commit say when they go."""
    gh = fake_github
    async with started(aiohttp_client, settings, app_private_pem, gh) as client:
        await runtime(client).engine.index_project(
            "github.com/acme/tool", private=False, default_branch="main", config_text=APP_CONFIG
        )
        gh.expect("GET", "/repos/acme/tool/installation", body={"id": INSTALLATION})
        expect_artifacts(gh)
        expect_reports(gh, completed=False)
        gh.expect("PATCH", "/repos/acme/lib/check-runs/7", body={}, repeat=True)
        limited = {"message": "You have exceeded a secondary rate limit."}
        for repo in ("app", "tool"):
            gh.expect(
                "POST",
                f"/repos/acme/{repo}/actions/workflows/conjunction.yml/dispatches",
                status=403,
                headers={"Retry-After": "40"},
                body=limited,
            )
        await post_github(client, "workflow_run", workflow_run("acme/lib", LIB_SHA[0]))
        await settle(client)

        [pending, *_] = reversed(gh.calls_to("POST", f"/repos/acme/lib/statuses/{LIB_SHA[0]}"))
        assert pending.body["state"] == "pending"
        assert re.fullmatch(
            r"0 of 2 downstream projects passed, started 0 of 2, next batch in ~(3[6-9]|40) s",
            pending.body["description"],
        ), pending.body["description"]
        check = gh.calls_to("PATCH", "/repos/acme/lib/check-runs/7")[-1].body["output"]
        assert re.search(r"the next batch goes out in ~(3[6-9]|40) s", check["summary"])
        assert check["title"] == pending.body["description"]

        # 40 s later: refused by a rate limit, nothing started, so nothing to ask GitHub first
        for number, repo in enumerate(("app", "tool"), start=1):
            gh.expect(
                "POST",
                f"/repos/acme/{repo}/actions/workflows/conjunction.yml/dispatches",
                body={"workflow_run_id": number, "html_url": f"https://github.com/r/{number}"},
            )
        async with runtime(client).sessions.begin() as session:
            await session.execute(update(Job).where(Job.state == "queued").values(run_at=utcnow()))
        await settle(client)
        last = gh.calls_to("POST", f"/repos/acme/lib/statuses/{LIB_SHA[0]}")[-1]
        assert last.body["description"] == "0 of 2 downstream projects passed, 2 running"
