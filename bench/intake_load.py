"""Signed GitHub webhooks at a steady rate into one `python app.py`: none lost, how fast each is
answered, and the server's memory before and after.

Starts the server as production runs it (its own process; SQLite in a temporary folder, or the
PostgreSQL of --postgres-url, whose `public` schema is DROPPED and recreated), with GitHub at a
fake on loopback (`testkit/github_server.py`), and posts bursts of `workflow_run` deliveries,
each a successful build of one of 20 upstreams at a commit of its own, at `--rate` a second.
After each burst it waits until every job is done, checks that nothing was lost (every delivery
answered 202 and stored, its job done, its build recorded) and reads the server's resident
memory (VmRSS). A second identical burst shows whether memory stays flat.

    .venv/bin/python -m bench.intake_load --db sqlite|postgres [--count 2000] [--rate 200]
        [--bursts 2] [--postgres-url URL] [--folder DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from testkit.fleet import database_url, fake_github_and_server, unfinished_jobs, wait_for
from testkit.payloads import workflow_run
from testkit.server_process import ServerProcess
from testkit.signing import signed

UPSTREAMS = 20
DRAIN_TIMEOUT = 600.0
MB = 1024 * 1024


@dataclass(frozen=True)
class Delivery:
    id: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Burst:
    sent: int
    answers: Counter[int | str]  # status, or the error when there was no answer
    seconds: list[float]  # answer time of each post, sorted
    waiting: int  # the most posts waiting for their answer at one moment
    stored: int  # deliveries of this burst in the database
    builds: int  # builds recorded from them (their jobs ran)
    dead: int  # dead jobs, of any burst
    drained: float  # seconds from the first post until every job was done
    cpu: float  # CPU seconds the server used meanwhile
    rss_before: int
    rss_after: int

    @property
    def lost(self) -> int:
        """Deliveries not answered 202, not stored or not processed."""
        return self.sent - min(self.answers[202], self.stored, self.builds)

    def percentile(self, share: float) -> float:
        return self.seconds[min(len(self.seconds) - 1, int(len(self.seconds) * share))]

    def describe(self) -> str:
        answers = ", ".join(f"{count} x {status}" for status, count in self.answers.items())
        return (
            f"{self.sent} sent ({answers}); {self.stored} stored, {self.builds} builds "
            f"recorded, {self.dead} dead jobs: {self.lost} lost\n"
            f"  answer ms: p50 {self.percentile(0.5) * 1000:.1f}, "
            f"p95 {self.percentile(0.95) * 1000:.1f}, p99 {self.percentile(0.99) * 1000:.1f}, "
            f"max {self.seconds[-1] * 1000:.1f}; every job done {self.drained:.1f}s after the "
            f"first post, the server using {self.cpu:.1f} CPU s; at most {self.waiting} posts "
            f"waiting for their answer at once\n"
            f"  RSS {self.rss_before / MB:.1f} MB before, {self.rss_after / MB:.1f} MB after"
        )


def deliveries(count: int, burst: int) -> list[Delivery]:
    made = []
    for index in range(count):
        delivery = f"load-{burst}-{index}"
        sha = hashlib.sha1(delivery.encode()).hexdigest()
        payload = workflow_run(f"load/lib{index % UPSTREAMS}", sha, run_id=burst * count + index)
        payload["installation"] = {"id": 1}
        body, headers = signed("workflow_run", payload, delivery)
        made.append(Delivery(delivery, body, headers))
    return made


@dataclass(frozen=True)
class Answer:
    status: int | str  # or the error when there was none
    sent: float  # loop time
    answered: float


def most_waiting(answers: list[Answer]) -> int:
    """The most posts waiting for their answer at one moment."""
    moments = sorted([(a.sent, 1) for a in answers] + [(a.answered, -1) for a in answers])
    return max(itertools.accumulate(step for _, step in moments), default=0)


async def _post_all(url: str, batch: list[Delivery], rate: float) -> list[Answer]:
    """Post each delivery at its own moment (open loop: one every 1/rate seconds, whatever the
    answers take)."""
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def post(index: int, delivery: Delivery) -> Answer:
            await asyncio.sleep(max(0.0, start + index / rate - loop.time()))
            sent = loop.time()
            try:
                async with http.post(url, data=delivery.body, headers=delivery.headers) as answer:
                    await answer.read()
                    return Answer(answer.status, sent, loop.time())
            except (aiohttp.ClientError, TimeoutError) as error:
                return Answer(type(error).__name__, sent, loop.time())

        start = loop.time()
        return await asyncio.gather(*(post(i, d) for i, d in enumerate(batch)))


def run_burst(server: ServerProcess, batch: list[Delivery], rate: float) -> Burst:
    """Post a burst, wait until every job is done, and count what became of it."""
    rss_before, cpu_before = server.rss(), server.cpu_seconds()
    began = time.monotonic()
    answered = asyncio.run(_post_all(f"{server.url}/webhooks/github", batch, rate))
    wait_for(lambda: unfinished_jobs(server) == 0, DRAIN_TIMEOUT, "every job done")
    drained = time.monotonic() - began
    ids = {delivery.id for delivery in batch}
    stored = {row for (row,) in server.query("SELECT delivery_id FROM deliveries")}
    shas = {hashlib.sha1(delivery.id.encode()).hexdigest() for delivery in batch}
    builds = {sha for (sha,) in server.query("SELECT sha FROM events WHERE kind = 'build'")}
    return Burst(
        sent=len(batch),
        answers=Counter(answer.status for answer in answered),
        seconds=sorted(answer.answered - answer.sent for answer in answered),
        waiting=most_waiting(answered),
        stored=len(ids & stored),
        builds=len(shas & builds),
        dead=int(server.query("SELECT count(*) FROM jobs WHERE state = 'dead'")[0][0]),
        drained=drained,
        cpu=server.cpu_seconds() - cpu_before,
        rss_before=rss_before,
        rss_after=server.rss(),
    )


def run(backend: str, folder: Path, count: int, rate: float, bursts: int = 2) -> list[Burst]:
    """Start a server on backend and send it `bursts` bursts of `count` deliveries."""
    database = database_url(backend, folder)
    with fake_github_and_server(folder, database) as (_, server):
        return [run_burst(server, deliveries(count, burst), rate) for burst in range(bursts)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--count", type=int, default=2000, help="deliveries per burst")
    parser.add_argument("--rate", type=float, default=200.0, help="deliveries a second")
    parser.add_argument("--bursts", type=int, default=2)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("CONJUNCTION_TEST_POSTGRES_URL"),
        help="a database to use (its schema is dropped); default CONJUNCTION_TEST_POSTGRES_URL",
    )
    parser.add_argument(
        "--folder", type=Path, help="keep the server's folder (its log, SQLite database) here"
    )
    args = parser.parse_args()
    if args.db == "postgres":
        if not args.postgres_url:
            parser.error("--db postgres needs --postgres-url or CONJUNCTION_TEST_POSTGRES_URL")
        os.environ["CONJUNCTION_TEST_POSTGRES_URL"] = args.postgres_url
    print(f"{args.bursts} bursts of {args.count} deliveries at {args.rate:g}/s on {args.db}")
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.folder or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        results = run(args.db, folder, args.count, args.rate, args.bursts)
    for number, burst in enumerate(results, 1):
        print(f"burst {number}: {burst.describe()}")
    growth = results[-1].rss_after - results[0].rss_after
    print(f"RSS after the last burst - after the first: {growth / MB:+.1f} MB")


if __name__ == "__main__":
    main()
