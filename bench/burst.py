"""A burst from one organisation, and another organisation's success sent in the middle of it.

A real `python app.py` (SQLite in a temporary folder, and the options' PostgreSQL, whose
`public` schema is DROPPED and recreated), with GitHub at a fake on loopback answering after
`--latency`, receives 2,000 signed `workflow_run` deliveries at 200 a second (open loop: each is
sent at its moment whatever the answers take): successes of the 20 upstreams of the
organisation `load` (an installation of its own) that no project subscribes to, the 20 KB
payloads of `bench.intake_load`, so each is stored, its job run and its build recorded, and
nothing more. Halfway through, one more delivery is sent: a success of
`github.com/acme/lib`, whose downstream `github.com/team0/app0` (another installation) is
dispatched through the fake GitHub. Then the bench waits until every job is done.

- **second organisation dispatched**: from sending acme/lib's success until GitHub received
  team0/app0's `workflow_dispatch`. Alone, that is two jobs (the delivery's and the
  trigger's) and a token and a dispatch call, a fraction of a second: the rest is the wait the
  burst adds.
- **deliveries processed a second**: every delivery of the burst (and the one) over the time
  from the first post until the last job was done. At most the rate sent (200 a second): a
  server that keeps up shows the rate; one that does not, its capacity.
- **CPU per delivery**: the server's CPU seconds (user and system, /proc) from the first post
  until the last job was done, over the deliveries; what a replica spends on one, answering
  and running its job, PostgreSQL's own CPU not included.

Afterwards every delivery must have been answered 202 and stored, its job done and its build
recorded: the details count any that were not as lost.

    .venv/bin/python -m bench --only burst [--quick]   # --quick: 200 deliveries
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.common import Options, Row, fresh_database
from bench.intake_load import UPSTREAMS, Answer, Delivery
from testkit.fleet import UPSTREAM, UPSTREAM_INSTALLATION, Fleet, server_env, unfinished_jobs
from testkit.github_server import Call, GitHubServer
from testkit.payloads import workflow_run
from testkit.server_process import ServerProcess
from testkit.signing import signed

SECTION = "burst"
SIZE, QUICK_SIZE = 2_000, 200
RATE = 200.0  # deliveries a second
SECOND = "second-organisation"  # the delivery id of acme/lib's success
LOAD_INSTALLATION = 2  # the burst's organisation; acme/lib is installation 1, team0/app0 100
DRAIN_TIMEOUT = 600.0
POLL_SECONDS = 0.05
POST_TIMEOUT = aiohttp.ClientTimeout(total=60)
NO_GOAL = "a figure"


@dataclass(frozen=True)
class Case:
    database: str
    sent: int  # the burst and the second organisation's success
    dispatched_after: float  # seconds from sending acme/lib's success to its downstream's dispatch
    drained: float  # seconds from the first post until every job was done
    cpu: float  # the server's CPU seconds meanwhile
    answers: Counter[int | str]
    lost: int

    @property
    def per_second(self) -> float:
        return self.sent / self.drained

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.sent * 1000


async def run(options: Options) -> list[Row]:
    size = QUICK_SIZE if options.quick else SIZE
    rows: list[Row] = []
    for database in options.databases:
        with tempfile.TemporaryDirectory() as folder:
            url = await fresh_database(database, options, Path(folder))
            fleet = Fleet(1)
            await asyncio.to_thread(fleet.seed, url)
            case = await asyncio.to_thread(measure, database, Path(folder), url, size, options)
            rows += case_rows(case, size)
    return rows


def burst_of(count: int) -> list[Delivery]:
    """The burst of `bench.intake_load`, as the organisation `load`'s own installation sends it."""
    made = []
    for index in range(count):
        delivery = f"burst-{index}"
        sha = hashlib.sha1(delivery.encode()).hexdigest()
        payload = workflow_run(f"load/lib{index % UPSTREAMS}", sha, run_id=index)
        payload["installation"] = {"id": LOAD_INSTALLATION}
        made.append(Delivery(delivery, *signed("workflow_run", payload, delivery)))
    return made


def second_organisation() -> Delivery:
    """acme/lib's success, as GitHub sends it; its sha is the delivery id's, as the burst's are."""
    sha = hashlib.sha1(SECOND.encode()).hexdigest()
    payload = workflow_run(UPSTREAM.removeprefix("github.com/"), sha, run_id=10**9)
    payload["installation"] = {"id": UPSTREAM_INSTALLATION}
    body, headers = signed("workflow_run", payload, SECOND)
    return Delivery(SECOND, body, headers)


def measure(database: str, folder: Path, url: str, size: int, options: Options) -> Case:
    burst = burst_of(size)
    batch = [*burst[: size // 2], second_organisation(), *burst[size // 2 :]]
    with (
        GitHubServer(latency=options.latency) as github,
        ServerProcess(folder, server_env(github.url, url)) as server,
    ):
        cpu = server.cpu_seconds()
        began = time.monotonic()
        answers = asyncio.run(post_all(f"{server.url}/webhooks/github", batch))
        while unfinished_jobs(server):
            assert time.monotonic() - began < DRAIN_TIMEOUT, "jobs not done in time"
            time.sleep(POLL_SECONDS)
        drained = time.monotonic() - began
        cpu = server.cpu_seconds() - cpu
        dispatch = first_dispatch(github.calls, "/repos/team0/app0/")
        lost = len(batch) - min(
            sum(answer.status == 202 for answer in answers.values()),
            stored(server, batch),
            built(server, batch),
        )
    return Case(
        database,
        len(batch),
        dispatch.at - answers[SECOND].sent,
        drained,
        cpu,
        Counter(answer.status for answer in answers.values()),
        lost,
    )


async def post_all(url: str, batch: list[Delivery]) -> dict[str, Answer]:
    """Post delivery i at RATE (open loop); the answers by delivery id. `loop.time()` is
    `time.monotonic()`, the clock of the fake GitHub's calls."""
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=POST_TIMEOUT) as http:

        async def post(index: int, delivery: Delivery) -> tuple[str, Answer]:
            await asyncio.sleep(max(0.0, start + index / RATE - loop.time()))
            sent = loop.time()
            try:
                async with http.post(url, data=delivery.body, headers=delivery.headers) as answer:
                    await answer.read()
                    return delivery.id, Answer(answer.status, sent, loop.time())
            except (aiohttp.ClientError, TimeoutError) as error:
                return delivery.id, Answer(type(error).__name__, sent, loop.time())

        start = loop.time()
        return dict(await asyncio.gather(*(post(i, d) for i, d in enumerate(batch))))


def first_dispatch(calls: list[Call], repository: str) -> Call:
    dispatches = [
        call
        for call in calls
        if call.method == "POST" and call.path.startswith(repository) and "/dispatches" in call.path
    ]
    assert dispatches, f"no dispatch of {repository} reached GitHub"
    return min(dispatches, key=lambda call: call.at)


def stored(server: ServerProcess, batch: list[Delivery]) -> int:
    ids = {row for (row,) in server.query("SELECT delivery_id FROM deliveries")}
    return len(ids & {delivery.id for delivery in batch})


def built(server: ServerProcess, batch: list[Delivery]) -> int:
    """Deliveries whose build was recorded (each sha is its delivery id's)."""
    shas = {sha for (sha,) in server.query("SELECT sha FROM events WHERE kind = 'build'")}
    return len(shas & {hashlib.sha1(delivery.id.encode()).hexdigest() for delivery in batch})


def case_rows(case: Case, size: int) -> list[Row]:
    details = {
        "sent": case.sent,
        "rate_sent": RATE,
        "answers": {str(status): count for status, count in case.answers.items()},
        "lost": case.lost,
        "drained_seconds": round(case.drained, 1),
        "server_cpu_seconds": round(case.cpu, 1),
    }
    where = f"{size:,} at {RATE:g}/s, {case.database}"
    return [
        Row(
            SECTION,
            f"second organisation dispatched, {where}",
            case.dispatched_after,
            "s",
            NO_GOAL,
            details=details,
        ),
        Row(SECTION, f"deliveries processed a second, {where}", case.per_second, "/s", NO_GOAL),
        Row(SECTION, f"CPU per delivery, {where}", case.cpu_ms, "ms", NO_GOAL),
    ]
