"""Deliveries kept on disk while the database cannot take them (`conjunction.spool`), and whose
turn a delivery's job takes in the queue.

The database locked or cut off is in tests/test_intake_faults.py; a failing commit under a batch
in tests/test_intake_batch.py. Here: a spooled file that is not a delivery is moved aside and
kept, the spool is emptied when the server starts, and a delivery both spooled and stored is
processed once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.delivery_owner import delivery_owner
from conjunction.forges.gitea import payloads as gitea_payloads
from conjunction.forges.gitlab import payloads as gitlab_payloads
from conjunction.intake import Incoming
from conjunction.models import Delivery, Job
from conjunction.spool import Spool
from testkit.memoryhost import MemoryHost
from testkit.payloads import fixture
from tests.conftest import post_github, run_jobs, runtime
from tests.fakegitlab import post_gitlab

PING = fixture("github/ping.json")


def ping(delivery_id: str) -> dict[str, Any]:
    """A GitHub ping as intake spools it."""
    return asdict(
        Incoming(
            forge="github",
            delivery_id=delivery_id,
            event="ping",
            headers={"content-type": "application/json"},
            body=json.dumps(PING),
            owner="github.com/installation/1",
        )
    )


async def start(aiohttp_client: Any, settings: Settings) -> TestClient[Any, Any]:
    app = create_app(settings, adapters=Adapters.of(MemoryHost()), run_workers=False)
    return await aiohttp_client(app)


async def rows(client: TestClient[Any, Any]) -> list[tuple[str, str | None, str]]:
    """(delivery id, its job's concurrency key, the job's state) of every delivery stored."""
    async with runtime(client).sessions() as session:
        deliveries = {row.id: row.delivery_id for row in await session.scalars(select(Delivery))}
        jobs = await session.scalars(select(Job).order_by(Job.id))
        return [
            (deliveries[job.payload["delivery"]], job.concurrency_key, job.state) for job in jobs
        ]


def spool_of(client: TestClient[Any, Any]) -> Spool:
    spool = runtime(client).intake.spool
    assert spool is not None
    return spool


async def test_each_delivery_job_takes_the_turn_of_its_owner(
    aiohttp_client: Any, settings: Settings
) -> None:
    client = await start(aiohttp_client, settings)
    push = fixture("github/push.json")  # installation 1
    run = fixture("github/workflow_run.completed.json")  # no installation: octo-org's
    assert (await post_github(client, "push", push, "push")).status == 202
    assert (await post_github(client, "workflow_run", run, "run")).status == 202
    gitlab = fixture("gitlab/push_hook.json")  # mike/diaspora
    assert (await post_gitlab(client, "Push Hook", gitlab)).status == 202
    keys = [key for _, key, _ in await rows(client)]
    assert keys == ["github.com/installation/1", "github.com/octo-org", "gitlab.com/mike"]


async def test_spooled_deliveries_are_stored_first_when_the_server_starts(
    aiohttp_client: Any, settings: Settings
) -> None:
    spool = Spool(settings.spool_dir)
    spool.put("github\nleft-1", ping("left-1"))
    spool.put("github\nleft-2", ping("left-2"))
    (settings.spool_dir / ".interrupted.tmp").write_text("{")  # a write a crash cut short
    client = await start(aiohttp_client, settings)
    assert sorted(await rows(client)) == [
        ("left-1", "github.com/installation/1", "queued"),
        ("left-2", "github.com/installation/1", "queued"),
    ]
    assert sorted(path.name for path in settings.spool_dir.iterdir()) == []
    assert await run_jobs(client) == 2


async def test_a_spooled_file_that_is_not_a_delivery_is_kept_aside_with_a_log_line(
    aiohttp_client: Any, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    client = await start(aiohttp_client, settings)
    spool = spool_of(client)
    spool.put("github\ngood", ping("good"))
    (settings.spool_dir / "garbled.json").write_text('{"forge": "github", "deliv')
    (settings.spool_dir / "list.json").write_text("[1, 2]")
    no_body = {key: value for key, value in ping("no-body").items() if key != "body"}
    spool.put("github\nno-body", no_body)
    with caplog.at_level(logging.ERROR, logger="conjunction.spool"):
        assert await runtime(client).intake.drain() == 1
        assert await runtime(client).intake.drain() == 0  # nothing tried again
    assert [delivery for delivery, _, _ in await rows(client)] == ["good"]
    rejected = settings.spool_dir / "rejected"
    kept = sorted(path.name for path in rejected.iterdir())
    assert len(kept) == 3 and {"garbled.json", "list.json"} <= set(kept)
    assert spool.waiting(10) == []
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 3
    assert all(line.startswith(f"spooled delivery rejected, kept in {rejected}/") for line in lines)
    assert any(line.endswith("body") for line in lines)


async def test_a_delivery_both_spooled_and_stored_is_processed_once(
    aiohttp_client: Any, settings: Settings
) -> None:
    """A delivery whose commit went through while its answer failed, spooled too (or a drain
    that stopped between its commit and removing the file): stored once, its job run once."""
    client = await start(aiohttp_client, settings)
    assert (await post_github(client, "ping", PING, "both")).status == 202
    spool_of(client).put("github\nboth", ping("both"))
    assert await runtime(client).intake.drain() == 0
    assert spool_of(client).waiting(10) == []
    assert await run_jobs(client) == 1
    assert await rows(client) == [("both", "github.com", "done")]


def test_the_spool_is_beside_the_sqlite_file_by_default(tmp_path: Path) -> None:
    def spool_for(url: str) -> Path:
        return Settings(database_url=url).spool_dir

    assert spool_for(f"sqlite:///{tmp_path}/conjunction.db") == tmp_path / "conjunction.db.spool"
    assert spool_for("sqlite:///conjunction.db") == Path("conjunction.db.spool")
    assert spool_for("postgresql://db.internal/conjunction") == Path("conjunction-spool")
    given = Settings(database_url="sqlite:///x.db", spool_dir=tmp_path / "spool")
    assert given.spool_dir == tmp_path / "spool"


@pytest.mark.parametrize(
    ("event", "fixture_name", "owner"),
    [
        ("push", "gitea/push.json", "git.example/gitea"),
        ("workflow_run", "gitea/workflow_run.json", "git.example/gitea"),  # Gitea's
        ("action_run", "gitea/action_run.json", "git.example/gitea"),  # Forgejo's: in its run
        ("System Hook", "gitlab/system_project_rename.json", "git.example/jsmith"),
    ],
)
def test_gitea_forgejo_and_system_hook_deliveries_have_their_projects_owner(
    event: str, fixture_name: str, owner: str
) -> None:
    models = (
        gitea_payloads.PAYLOADS if fixture_name.startswith("gitea") else gitlab_payloads.PAYLOADS
    )
    payload = models[event].model_validate(fixture(fixture_name))
    assert delivery_owner("git.example", payload) == owner
