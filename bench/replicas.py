"""Two replicas against one: deliveries fully processed per second on one real PostgreSQL.

For one, then two real `python app.py` processes sharing the PostgreSQL of
CONJUNCTION_BENCH_POSTGRES_URL (its `public` schema is DROPPED and recreated for each case),
with GitHub at a fake on loopback, the bench posts a burst of signed `workflow_run` deliveries
(those of `bench.intake_load`) as fast as the servers take them, from a fixed number of
concurrent clients, spread round-robin over the replicas as a load balancer would. Throughput is
the deliveries fully processed (answered 202, stored, their job done, their build recorded) per
second from the first post until the last job was done; the figure is two replicas' throughput
as a ratio to one's. Then every delivery is checked: none lost, and none run twice (one job
each, claimed once, one build recorded).

    CONJUNCTION_BENCH_POSTGRES_URL=postgresql://... .venv/bin/python -m bench --only replicas

2,000 deliveries a case; 10,000 with --full (about 12 minutes on a 2-core machine); 200 with
--quick. The bench, the fake GitHub and every server share
this machine's CPUs: the details give their CPU seconds beside the wall time.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import resource
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.common import Options, Row
from bench.intake_load import Delivery, deliveries
from testkit.databases import reset_postgres
from testkit.fleet import server_env
from testkit.github_server import GitHubServer
from testkit.server_process import ServerProcess

SECTION = "replicas"
SIZE = 2_000
FULL_SIZE = 10_000
QUICK_SIZE = 200
CONCURRENCY = 32  # posts waiting for their answer at any moment, over all replicas
GOAL = 1.7
# A contended 2-core machine has processed as few as 15 deliveries a second.
DRAIN_TIMEOUT = 1200.0
POLL_SECONDS = 0.1
RATIO_UNIT = "x one"
GOAL_TEXT = f"≥ {GOAL:g}{RATIO_UNIT}"


@dataclass(frozen=True)
class Case:
    """What became of one burst posted to `replicas` servers."""

    replicas: int
    sent: int
    seconds: float  # from the first post until the last job was done
    posting: float  # from the first post until the last answer
    answers: Counter[int | str]  # status, or the error when there was no answer
    lost: int  # not answered 202, not stored, its job not done or no build recorded
    doubled: int  # more than one job, a job claimed more than once, or more than one build
    jobs_per_replica: list[int]  # delivery jobs each server ran
    server_cpu: list[float]  # CPU seconds each server used during the case
    bench_cpu: float  # CPU seconds of this process (the clients and the fake GitHub)
    machine_busy: float  # share of all the machine's CPU time busy, whoever used it
    load_before: float  # the machine's 1-minute load average as the case began

    @property
    def processed(self) -> int:
        return self.sent - self.lost

    @property
    def throughput(self) -> float:
        return self.processed / self.seconds

    @property
    def correct(self) -> bool:
        return self.lost == 0 and self.doubled == 0

    def details(self) -> dict[str, Any]:
        return {
            "replicas": self.replicas,
            "deliveries": self.sent,
            "concurrency": CONCURRENCY,
            "seconds": round(self.seconds, 2),
            "posting_seconds": round(self.posting, 2),
            "answers": {str(status): count for status, count in self.answers.items()},
            "processed": self.processed,
            "lost": self.lost,
            "run_twice": self.doubled,
            "jobs_per_replica": self.jobs_per_replica,
            "server_cpu_seconds": [round(cpu, 1) for cpu in self.server_cpu],
            "bench_cpu_seconds": round(self.bench_cpu, 1),
            "machine_cpu_busy": round(self.machine_busy, 2),
            "load_average_before": round(self.load_before, 1),
        }


async def run(options: Options) -> list[Row]:
    if options.postgres_url is None:
        not_run = {"not_run": "no PostgreSQL: set CONJUNCTION_BENCH_POSTGRES_URL"}
        return [Row(SECTION, "two replicas", 0, RATIO_UNIT, GOAL_TEXT, details=not_run)]
    size = QUICK_SIZE if options.quick else FULL_SIZE if options.full else SIZE
    batch = deliveries(size, burst=0)
    one = await measure(options.postgres_url, 1, batch)
    two = await measure(options.postgres_url, 2, batch)
    return [throughput_row(one), throughput_row(two), ratio_row(one, two)]


async def measure(url: str, replicas: int, batch: list[Delivery]) -> Case:
    """Post the batch to `replicas` fresh servers on an empty schema and wait for every job."""
    await reset_postgres(url)
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        github = stack.enter_context(GitHubServer())
        # one after another: each migrates the schema as it starts
        env = server_env(github.url, url)
        servers = [
            stack.enter_context(ServerProcess(_mkdir(Path(folder, f"replica{i}")), env))
            for i in range(replicas)
        ]
        # one connection for the whole case: a new one at each poll would fork a PostgreSQL
        # backend ten times a second on the CPUs being measured
        database = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return await burst(database, servers, batch)
        finally:
            await database.close()


async def burst(
    database: asyncpg.Connection, servers: list[ServerProcess], batch: list[Delivery]
) -> Case:
    """Post the batch round-robin to the servers, wait until every job is done, and count."""
    cpu_before = [server.cpu_seconds() for server in servers]
    bench_cpu_before, machine_before = _own_cpu(), _machine_ticks()
    load_before = os.getloadavg()[0]
    began = time.time()
    answers = await post_round_robin([f"{s.url}/webhooks/github" for s in servers], batch)
    posted = time.time()
    await drained(database)
    machine_busy = _busy_since(machine_before)
    lost, doubled = await inspect(database, batch, answers)
    return Case(
        replicas=len(servers),
        sent=len(batch),
        seconds=await last_job_done(database) - began,
        posting=posted - began,
        answers=Counter(answers.values()),
        lost=lost,
        doubled=doubled,
        jobs_per_replica=await jobs_per_replica(database),
        server_cpu=[s.cpu_seconds() - cpu for s, cpu in zip(servers, cpu_before, strict=True)],
        bench_cpu=_own_cpu() - bench_cpu_before,
        machine_busy=machine_busy,
        load_before=load_before,
    )


async def post_round_robin(urls: list[str], batch: list[Delivery]) -> dict[str, int | str]:
    """Post delivery i to urls[i % len(urls)] from CONCURRENCY clients, each posting its next
    delivery as soon as its last is answered; the status (or error) of each delivery id."""
    answers: dict[str, int | str] = {}
    todo = iter(enumerate(batch))
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def client() -> None:
            for index, delivery in todo:
                url = urls[index % len(urls)]
                try:
                    async with http.post(url, data=delivery.body, headers=delivery.headers) as r:
                        await r.read()
                        answers[delivery.id] = r.status
                except (aiohttp.ClientError, TimeoutError) as error:
                    answers[delivery.id] = type(error).__name__

        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return answers


async def drained(database: asyncpg.Connection) -> None:
    """Wait until no job is queued or running."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while await database.fetchval(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE state NOT IN ('done', 'dead'))"
    ):
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs still waiting {DRAIN_TIMEOUT:.0f} s after the burst")
        await asyncio.sleep(POLL_SECONDS)


async def inspect(
    database: asyncpg.Connection, batch: list[Delivery], answers: dict[str, int | str]
) -> tuple[int, int]:
    """(lost, run twice) of the batch's deliveries, from what the database holds."""
    jobs = {
        delivery_id: (count, attempts, done)
        for delivery_id, count, attempts, done in await database.fetch(
            "SELECT d.delivery_id, count(j.id), coalesce(max(j.attempts), 0),"
            " count(j.id) FILTER (WHERE j.state = 'done')"
            " FROM deliveries d LEFT JOIN jobs j"
            " ON j.kind = 'github_delivery' AND (j.payload ->> 'delivery')::int = d.id"
            " GROUP BY d.delivery_id"
        )
    }
    builds = dict(
        await database.fetch("SELECT sha, count(*) FROM events WHERE kind = 'build' GROUP BY sha")
    )
    lost = doubled = 0
    for delivery in batch:
        count, attempts, done = jobs.get(delivery.id, (0, 0, 0))
        built = builds.get(hashlib.sha1(delivery.id.encode()).hexdigest(), 0)
        lost += answers.get(delivery.id) != 202 or not done or not built
        doubled += count > 1 or attempts > 1 or built > 1
    return lost, doubled


async def jobs_per_replica(database: asyncpg.Connection) -> list[int]:
    """How many delivery jobs each server ran (a job keeps the id of the worker that ran it)."""
    rows = await database.fetch(
        "SELECT count(*) FROM jobs WHERE kind = 'github_delivery'"
        " GROUP BY locked_by ORDER BY count(*) DESC"
    )
    return [count for (count,) in rows]


async def last_job_done(database: asyncpg.Connection) -> float:
    """When the last job was done, in seconds since the epoch (`finished_at` is naive UTC)."""
    return float(await database.fetchval("SELECT extract(epoch FROM max(finished_at)) FROM jobs"))


def throughput_row(case: Case) -> Row:
    return Row(
        SECTION,
        f"throughput, {'one replica' if case.replicas == 1 else 'two replicas'}",
        case.throughput,
        "deliveries/s",
        "none lost, none run twice",
        case.correct,
        details=case.details(),
    )


def ratio_row(one: Case, two: Case) -> Row:
    ratio = two.throughput / one.throughput
    return Row(
        SECTION,
        "two replicas",
        ratio,
        RATIO_UNIT,
        GOAL_TEXT,
        ratio >= GOAL and one.correct and two.correct,
        details={
            "cpus": len(os.sched_getaffinity(0)),
            "one_per_second": round(one.throughput, 1),
            "two_per_second": round(two.throughput, 1),
            "lost": one.lost + two.lost,
            "run_twice": one.doubled + two.doubled,
        },
    )


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine_ticks() -> tuple[int, int]:
    """(busy, all) CPU time of the whole machine since boot, in ticks (Linux: /proc/stat)."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    every = user + nice + system + idle + iowait + irq + softirq + steal
    return every - idle - iowait, every


def _busy_since(before: tuple[int, int]) -> float:
    """The share of the machine's CPU time busy since `before` (a `_machine_ticks()`)."""
    busy, every = _machine_ticks()
    return (busy - before[0]) / (every - before[1])
