"""The database unavailable: webhook deliveries are spooled and answered 202, stored once the
database is back; the API and health answer 503 with Retry-After, then recover.

SQLite: another connection holds the write lock. PostgreSQL: a TCP proxy in front of the real
server is cut (open connections reset, new ones refused) and restored, under an app in the test's
process and under a real `python app.py` taking a burst of webhooks with its worker running.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.engine import make_url

from bench.intake_load import Delivery, deliveries
from conjunction import db, models
from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.models import Job
from conjunction.tokens import create_project_token
from testkit.databases import postgres_or_skip, reset_postgres
from testkit.fleet import Fleet, dead_jobs, post, server_env, size, unfinished_jobs, wait_for
from testkit.github_server import HOLD, GitHubServer
from testkit.payloads import fixture
from testkit.server_process import ServerProcess
from tests.conftest import post_github, runtime
from tests.tcpproxy import ProxyThread, TcpProxy

UNAVAILABLE = (503, "10", {"error": "the database is unavailable; retry later"})
SPOOLED = (202, None, {"status": "accepted", "delivery": "while-locked"})
NO_WRITES = (503, "10", {"error": "the database does not take writes"})


async def answer_of(response: Any) -> tuple[int, str | None, Any]:
    return response.status, response.headers.get("Retry-After"), await response.json()


async def start(aiohttp_client: Any, settings: Settings, url: str) -> TestClient[Any, Any]:
    settings = settings.model_copy(update={"database_url": url})
    app = create_app(settings, adapters=Adapters(), run_workers=False)
    return await aiohttp_client(app)


async def intake_answers(
    client: TestClient[Any, Any], token: str, delivery: str | None = None
) -> list[Any]:
    """A GitHub delivery, a build through the API and the health check."""
    build = {"project": "github.com/acme/lib", "sha": "d" * 40, "ref": "main", "result": "failure"}
    return [
        await answer_of(await post_github(client, "ping", fixture("github/ping.json"), delivery)),
        await answer_of(
            await client.post(
                "/api/v1/builds", json=build, headers={"Authorization": f"Bearer {token}"}
            )
        ),
        await answer_of(await client.get("/healthz")),
    ]


def spool_files(client: TestClient[Any, Any]) -> int:
    spool = runtime(client).intake.spool
    assert spool is not None
    return len(spool.waiting(100))


async def stored_once(client: TestClient[Any, Any], delivery: str) -> None:
    """Wait until the spooled delivery is in the database, with one job, and gone from the
    spool."""
    for _ in range(500):
        try:
            async with runtime(client).sessions() as session:
                ids = list(
                    await session.scalars(
                        select(models.Delivery.id).where(models.Delivery.delivery_id == delivery)
                    )
                )
                jobs = list(await session.scalars(select(Job.payload)))
        except Exception:  # the database is still coming back
            ids, jobs = [], []
        if ids and spool_files(client) == 0:
            assert len(ids) == 1
            assert jobs.count({"delivery": ids[0]}) == 1
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{delivery} was not stored from the spool")


async def project_token(client: TestClient[Any, Any]) -> str:
    async with runtime(client).sessions.begin() as session:
        return await create_project_token(session, "github.com/acme/lib")


async def test_sqlite_write_lock_held_elsewhere(
    aiohttp_client: Any, settings: Settings, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "SQLITE_BUSY_SECONDS", 0.1)
    path = tmp_path / "locked.db"
    client = await start(aiohttp_client, settings, f"sqlite:///{path}")
    token = await project_token(client)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock, as a long job would
    try:
        assert await intake_answers(client, token, "while-locked") == [
            SPOOLED,
            UNAVAILABLE,
            NO_WRITES,
        ]
        assert spool_files(client) == 1
    finally:
        other.execute("ROLLBACK")
        other.close()
    await stored_once(client, "while-locked")
    recovered = await intake_answers(client, token)
    assert [status for status, _, _ in recovered] == [202, 202, 200]


@pytest.fixture
async def postgres_proxy() -> AsyncIterator[tuple[TcpProxy, str]]:
    """A proxy to the test PostgreSQL, and the database URL through it."""
    url = postgres_or_skip()
    await reset_postgres(url)
    target = make_url(url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    yield proxy, target.set(port=proxy.port).render_as_string(hide_password=False)
    await proxy.close()


@pytest.mark.postgres
async def test_postgres_down_and_back(
    aiohttp_client: Any, settings: Settings, postgres_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, url = postgres_proxy
    client = await start(aiohttp_client, settings, url)
    token = await project_token(client)
    await proxy.cut()
    assert await intake_answers(client, token, "while-locked") == [
        SPOOLED,
        UNAVAILABLE,
        NO_WRITES,
    ]
    assert spool_files(client) == 1
    await proxy.restore()
    await stored_once(client, "while-locked")
    recovered = await intake_answers(client, token)
    assert [status for status, _, _ in recovered] == [202, 202, 200]


# The database unavailable under load: a real server, its worker running, takes a burst of
# signed deliveries in three parts: the first while the database is up (it goes away halfway
# through it), the second while it is away, the last once it is back. PostgreSQL: the link to it
# is cut; SQLite: another process holds its write lock. Meanwhile the job of an upstream success
# waits for GitHub (its artifacts) when the database goes, and gets its answer while it is
# away: it fails, and its failure must be recorded once the database is back rather than
# leaving the job holding its lease. CONJUNCTION_FAULTS=full: away 40 s under 200 deliveries a
# second, 8,000 of them spooled.
RATE = size(20, 200)  # deliveries a second
CUT_SECONDS = size(8, 40)  # the database is away this long: longer than SQLite's busy wait
AROUND = size(30, 300)  # deliveries posted before the database is back, and after
BURST = 2 * AROUND + RATE * CUT_SECONDS
DOWNSTREAMS = size(3, 20)
UPSTREAM_SHA = "c" * 40
# By default every job is done well before a lease (60 s) could run out: a job whose outcome
# could not be recorded while the database was away, left holding its lease, fails the test.
DRAIN_SECONDS = size(45, 900)


@dataclass(frozen=True)
class Reply:
    status: int | str  # or the client's error when no answer came
    retry_after: str | None
    body: Any  # the JSON answered, or its text when it was not JSON


async def reply_to(http: aiohttp.ClientSession, method: str, url: str, **request: Any) -> Reply:
    try:
        async with http.request(method, url, **request) as answer:
            text = await answer.text()
            try:
                body = json.loads(text)
            except ValueError:
                body = text
            return Reply(answer.status, answer.headers.get("Retry-After"), body)
    except (aiohttp.ClientError, TimeoutError) as error:
        return Reply(type(error).__name__, None, None)


@dataclass
class CutBurst:
    replies: dict[str, Reply]  # by delivery id
    health_cut: list[Reply]  # /healthz as the cut began and as it ended
    health_after: Reply  # /healthz once the link was restored
    during_cut: list[str]  # ids of the deliveries posted while the link was cut


@dataclass(frozen=True)
class Outage:
    """How the database goes away and comes back."""

    cut: Callable[[], None]
    restore: Callable[[], None]


def write_lock_of(path: Path) -> Outage:
    """SQLite away: another process's connection holds the write lock, as a long job would."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def hold() -> None:
        other.execute("BEGIN IMMEDIATE")

    def release() -> None:
        other.execute("ROLLBACK")
        other.close()

    return Outage(hold, release)


async def burst_through_a_cut(
    server: ServerProcess, outage: Outage, batch: list[Delivery], on_cut: Callable[[], None]
) -> CutBurst:
    loop = asyncio.get_running_loop()
    url = f"{server.url}/webhooks/github"
    first, second, third = batch[:AROUND], batch[AROUND:-AROUND], batch[-AROUND:]
    replies: dict[str, Reply] = {}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as http:

        async def post_at_rate(part: list[Delivery]) -> None:
            start = loop.time()

            async def post(index: int, delivery: Delivery) -> None:
                await asyncio.sleep(max(0.0, start + index / RATE - loop.time()))
                replies[delivery.id] = await reply_to(
                    http, "POST", url, data=delivery.body, headers=delivery.headers
                )

            await asyncio.gather(*(post(i, d) for i, d in enumerate(part)))

        async def health() -> Reply:
            return await reply_to(http, "GET", f"{server.url}/healthz")

        posting = asyncio.create_task(post_at_rate(first))
        await asyncio.sleep(len(first) / RATE / 2)
        await asyncio.to_thread(outage.cut)
        cut_at = loop.time()
        on_cut()
        health_cut = [await health()]
        await posting
        await post_at_rate(second)
        await asyncio.sleep(max(0.0, cut_at + CUT_SECONDS - loop.time()))
        health_cut.append(await health())
        await asyncio.to_thread(outage.restore)
        health_after = await health()
        await post_at_rate(third)
    return CutBurst(replies, health_cut, health_after, [d.id for d in second])


def redeliver(server: ServerProcess, batch: list[Delivery]) -> dict[str, Reply]:
    """Send again, as from GitHub's list of recent deliveries."""

    async def send() -> dict[str, Reply]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            url = f"{server.url}/webhooks/github"
            return {
                d.id: await reply_to(http, "POST", url, data=d.body, headers=d.headers)
                for d in batch
            }

    return asyncio.run(send())


def processed(server: ServerProcess, batch: list[Delivery]) -> tuple[set[str], set[str]]:
    """Ids of the deliveries of batch stored, and of those whose job recorded their build."""
    stored = {row for (row,) in server.query("SELECT delivery_id FROM deliveries")}
    builds = {sha for (sha,) in server.query("SELECT sha FROM events WHERE kind = 'build'")}
    ids = {d.id for d in batch}
    built = {d.id for d in batch if hashlib.sha1(d.id.encode()).hexdigest() in builds}
    return ids & stored, built


def is_unavailable(reply: Reply, message: str) -> bool:
    return (reply.status, reply.retry_after, reply.body) == (503, "10", {"error": message})


@dataclass
class Outcome:
    """What a burst through an outage left: answers, what was stored and built, dead jobs."""

    burst: CutBurst
    stored: set[str]
    built: set[str]
    dead: list[tuple[str, str]]
    again: dict[str, Reply]  # answers to the deliveries of the outage sent again
    builds: int
    retried: int
    started: list[str]  # the downstreams GitHub was asked to start
    log: str


def burst_through(
    tmp_path: Path, fleet: Fleet, batch: list[Delivery], served: str, read: str, outage: Outage
) -> Outcome:
    """A real server on the database at `served` (read past any proxy at `read`), its upstream
    job waiting for GitHub, takes the burst while the database goes away and comes back."""
    with GitHubServer() as github:
        github.inject("GET", "/artifacts$", [HOLD])
        with ServerProcess(tmp_path, server_env(github.url, served)) as server:
            server.database_url = read
            upstream = fleet.upstream_success(UPSTREAM_SHA)
            assert post(f"{server.url}/webhooks/github", *upstream) == 202
            assert github.holding.wait(30), "the upstream's job did not ask GitHub"
            burst = asyncio.run(burst_through_a_cut(server, outage, batch, github.release))
            drained = f"every job done within {DRAIN_SECONDS} s"
            wait_for(lambda: unfinished_jobs(server) == 0, DRAIN_SECONDS, drained)
            stored, built = processed(server, batch)
            dead = dead_jobs(server)
            # GitHub redelivers on request: those the spool took are known already
            again = redeliver(server, [d for d in batch if d.id in burst.during_cut])
            wait_for(lambda: unfinished_jobs(server) == 0, DRAIN_SECONDS, drained)
            builds = server.query(
                "SELECT count(*) FROM events WHERE kind = 'build' AND sha <> ?", UPSTREAM_SHA
            )[0][0]
            retried = server.query("SELECT count(*) FROM jobs WHERE attempts > 1")[0][0]
            log = server.log()[-20_000:]
        started = sorted(dispatch.repo for dispatch in github.dispatches)
    return Outcome(burst, stored, built, dead, again, builds, retried, started, log)


def assert_nothing_refused_lost_or_run_twice(
    outcome: Outcome, fleet: Fleet, batch: list[Delivery]
) -> None:
    """Every delivery answered 202, those of the outage kept in the spool and stored once the
    database was back; each processed once, redelivered or not."""
    answers = Counter(reply.status for reply in outcome.burst.replies.values())
    assert answers == Counter({202: len(batch)}), f"{answers}\n{outcome.log}"
    every = {d.id for d in batch}
    assert (outcome.stored, outcome.built, outcome.dead) == (every, every, [])
    assert outcome.builds == len(batch)
    health = outcome.burst
    assert all(is_unavailable(r, "the database does not take writes") for r in health.health_cut)
    assert (health.health_after.status, health.health_after.body) == (200, {"status": "ok"})
    assert outcome.again == {
        key: Reply(200, None, {"status": "duplicate", "delivery": key}) for key in outcome.again
    }
    # the upstream's job, cut off while it waited for GitHub, ran again and fanned out: every
    # downstream started once
    assert outcome.retried >= 1
    assert outcome.started == sorted(name.removeprefix("github.com/") for name in fleet.downstreams)


@pytest.mark.faults
@pytest.mark.postgres
def test_postgres_restarted_under_a_burst_of_webhooks(tmp_path: Path) -> None:
    direct = postgres_or_skip()
    asyncio.run(reset_postgres(direct))
    fleet = Fleet(DOWNSTREAMS)
    fleet.seed(direct)
    target = make_url(direct)
    batch = deliveries(BURST, 0)
    with ProxyThread(target.host or "127.0.0.1", target.port or 5432) as proxy:
        proxied = target.set(port=proxy.port).render_as_string(hide_password=False)
        outage = Outage(proxy.cut, proxy.restore)
        outcome = burst_through(tmp_path, fleet, batch, proxied, direct, outage)
    assert_nothing_refused_lost_or_run_twice(outcome, fleet, batch)


@pytest.mark.faults
def test_sqlite_write_lock_held_under_a_burst_of_webhooks(tmp_path: Path) -> None:
    path = tmp_path / "conjunction.db"
    url = f"sqlite:///{path}"
    fleet = Fleet(DOWNSTREAMS)
    fleet.seed(url)
    batch = deliveries(BURST, 0)
    outcome = burst_through(tmp_path, fleet, batch, url, url, write_lock_of(path))
    assert_nothing_refused_lost_or_run_twice(outcome, fleet, batch)
