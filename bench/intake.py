"""Webhook intake: signed deliveries a second and time to answer of the real server, as a ratio
to a bare aiohttp handler that only verifies the HMAC, measured in the same run.

Both run in processes of their own: the bare handler reads the body, checks its
X-Hub-Signature-256 and answers 202; `python app.py` (SQLite in a temporary folder, or the
PostgreSQL of the options, whose `public` schema is DROPPED and recreated) stores each delivery
and queues its job. One client posts the same signed `workflow_run` deliveries of about 20 KB
(those of `bench.intake_load`) to each, CONCURRENCY at a time: each poster sends its next
delivery once the last is answered. Each round posts a batch to the bare handler, then another
to the server; the round with the most deliveries a second counts, of three (600 deliveries
each; one of 60 with --quick).

The server is measured twice. First intake alone, as the bare handler is: the server runs no
jobs (`CONJUNCTION_RUN_JOBS=false`), so the processing of the deliveries (about 20 ms of CPU
each, many times what answering costs) does not share the two cores with the answering; the
goals are this measure's. Then it is started again with its worker, which first processes what
was stored meanwhile; then intake while its worker runs: each round's jobs are processed while
it is posted (the worker holds back to a quarter of its slots meanwhile), and the next round
waits until they are done. Afterwards every delivery posted to the server must have been
answered 202 and stored, and its job done: any other is lost, and fails both goals.

    .venv/bin/python -m bench --only intake [--quick]

`python -m bench.intake PORT` serves the bare handler on PORT; the section starts it itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.common import Options, Row, fresh_database, percentile
from bench.intake_load import Answer, Delivery, deliveries
from testkit.fleet import fake_github_and_server, unfinished_jobs
from testkit.server_process import ROOT, START_TIMEOUT, ServerProcess, free_port
from testkit.signing import WEBHOOK_SECRET

SECTION = "intake"
PATH = "/webhooks/github"
CONCURRENCY = 16
ROUNDS = 3
DELIVERIES = 600  # a round
QUICK_DELIVERIES = 60  # the one round of --quick
RATIO_GOAL = 0.5
RATIO_UNIT = "x bare"
RATIO_GOAL_TEXT = f"≥ {RATIO_GOAL:g}x bare"
P99_GOAL_MS = 50.0
DRAIN_TIMEOUT = 120.0  # jobs not done by then count as lost
POST_TIMEOUT = aiohttp.ClientTimeout(total=30)
RUN_JOBS = "CONJUNCTION_RUN_JOBS"
WORKER_RUNNING = ", worker running"


@dataclass(frozen=True)
class Round:
    answers: dict[str, Answer]  # by delivery id
    seconds: float  # from the first post until the last answer
    cpu: float = 0.0  # CPU seconds the server used meanwhile (the server's rounds)

    @property
    def rate(self) -> float:
        return len(self.answers) / self.seconds

    def answer_ms(self, fraction: float) -> float:
        times = [answer.answered - answer.sent for answer in self.answers.values()]
        return 1000 * percentile(times, fraction)


@dataclass(frozen=True)
class Fate:
    """What became of the deliveries posted to the server, over every round."""

    sent: int
    accepted: int  # answered 202
    stored: int
    done: int  # their job done
    dead: int  # their job dead
    lost: int  # not answered 202, or their job not done


async def run(options: Options) -> list[Row]:
    count, rounds = (QUICK_DELIVERIES, 1) if options.quick else (DELIVERIES, ROUNDS)
    port = free_port()
    bare_url = f"http://127.0.0.1:{port}{PATH}"
    rows: list[Row] = []
    with bare_handler(port) as bare:
        batches = [deliveries(count, number) for number in range(2 * rounds)]  # while it starts
        wait_until_listening(bare, port)
        async with aiohttp.ClientSession(timeout=POST_TIMEOUT) as http:
            for database in options.databases:
                rows += await measure(database, options, http, bare_url, batches)
    return rows


async def measure(
    database: str,
    options: Options,
    http: aiohttp.ClientSession,
    bare_url: str,
    batches: list[list[Delivery]],
) -> list[Row]:
    """Every round on a fresh server on database, each after a round to the bare handler: half
    of the batches to intake alone, the other half while the server's worker runs."""
    alone_batches, busy_batches = batches[: len(batches) // 2], batches[len(batches) // 2 :]
    bare: list[Round] = []
    alone: list[Round] = []
    busy: list[Round] = []
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        url = await fresh_database(database, options, folder)
        with fake_github_and_server(folder, url, settings={RUN_JOBS: "false"}) as (_, server):
            for batch in alone_batches:
                bare.append(await bare_round(http, bare_url, batch))
                alone.append(await server_round(http, server, batch))
            server.terminate()
            server.env[RUN_JOBS] = "true"
            server.start()
            await asyncio.to_thread(wait_until_done, server, len(alone_batches))
            for batch in busy_batches:
                bare.append(await bare_round(http, bare_url, batch))
                busy.append(await server_round(http, server, batch))
                await asyncio.to_thread(wait_until_done, server)
            fate = fate_of(server, alone + busy)
    return rows_of(database, bare, alone, fate) + rows_of(
        database, bare, busy, fate, WORKER_RUNNING
    )


async def bare_round(http: aiohttp.ClientSession, url: str, batch: list[Delivery]) -> Round:
    """A round to the bare handler, which must accept every delivery: anything else is a fault
    of the benchmark, not a figure."""
    posted = await post_round(http, url, batch)
    refused = {answer.status for answer in posted.answers.values()} - {202}
    if refused:
        raise RuntimeError(f"the bare handler answered {refused}")
    return posted


async def server_round(
    http: aiohttp.ClientSession, server: ServerProcess, batch: list[Delivery]
) -> Round:
    """A round to the server, with the CPU time it used meanwhile."""
    before = server.cpu_seconds()
    posted = await post_round(http, server.url + PATH, batch)
    return replace(posted, cpu=server.cpu_seconds() - before)


async def post_round(http: aiohttp.ClientSession, url: str, batch: list[Delivery]) -> Round:
    """Post the batch from CONCURRENCY posters, each waiting for its answer before the next."""
    loop = asyncio.get_running_loop()
    waiting = iter(batch)  # shared: each poster takes the next delivery not yet posted
    answers: dict[str, Answer] = {}

    async def poster() -> None:
        for delivery in waiting:
            sent = loop.time()
            status = await post(http, url, delivery)
            answers[delivery.id] = Answer(status, sent, loop.time())

    start = loop.time()
    await asyncio.gather(*(poster() for _ in range(CONCURRENCY)))
    return Round(answers, loop.time() - start)


async def post(http: aiohttp.ClientSession, url: str, delivery: Delivery) -> int | str:
    """The answer's status, or the error when there was none."""
    try:
        async with http.post(url, data=delivery.body, headers=delivery.headers) as answer:
            await answer.read()
            return answer.status
    except (aiohttp.ClientError, TimeoutError) as error:
        return type(error).__name__


def wait_until_done(server: ServerProcess, rounds: int = 1) -> None:
    """Until every job is done or dead, or DRAIN_TIMEOUT a round passed: the rest count as
    lost."""
    deadline = time.monotonic() + DRAIN_TIMEOUT * rounds
    while unfinished_jobs(server) and time.monotonic() < deadline:
        time.sleep(0.2)


def fate_of(server: ServerProcess, rounds: list[Round]) -> Fate:
    statuses = {key: answer.status for each in rounds for key, answer in each.answers.items()}
    stored = dict(server.query("SELECT delivery_id, id FROM deliveries WHERE forge = 'github'"))
    jobs = server.query("SELECT payload, state FROM jobs WHERE kind = 'github_delivery'")
    job_states = {json.loads(payload)["delivery"]: state for payload, state in jobs}
    states = {key: job_states.get(stored.get(key)) for key in statuses}
    return Fate(
        sent=len(statuses),
        accepted=sum(status == 202 for status in statuses.values()),
        stored=sum(key in stored for key in statuses),
        done=sum(state == "done" for state in states.values()),
        dead=sum(state == "dead" for state in states.values()),
        lost=sum(statuses[key] != 202 or states[key] != "done" for key in statuses),
    )


def rows_of(
    database: str, bare: list[Round], real: list[Round], fate: Fate, case: str = ""
) -> list[Row]:
    """The ratio and p99 of the best of `real`; with a `case` (the worker running), figures
    beside the goals, which are intake's alone."""
    best_bare = max(bare, key=lambda each: each.rate)
    best = max(real, key=lambda each: each.rate)
    ratio = best.rate / best_bare.rate
    p99, bare_p99 = best.answer_ms(0.99), best_bare.answer_ms(0.99)
    intact = fate.lost == 0
    details = {
        "deliveries_per_s": round(best.rate, 1),
        "bare_deliveries_per_s": round(best_bare.rate, 1),
        "p50_ms": round(best.answer_ms(0.5), 2),
        "p99_ms": round(p99, 2),
        "server_cpu_ms_per_delivery": round(1000 * best.cpu / len(best.answers), 3),
        "bare_p50_ms": round(best_bare.answer_ms(0.5), 2),
        "bare_p99_ms": round(bare_p99, 2),
        "rounds_per_s": [round(each.rate, 1) for each in real],
        "bare_rounds_per_s": [round(each.rate, 1) for each in bare],
        "deliveries_per_round": len(best.answers),
        "concurrency": CONCURRENCY,
        **asdict(fate),
    }
    return [
        Row(
            SECTION,
            f"{database}{case}",
            ratio,
            RATIO_UNIT,
            goal="" if case else RATIO_GOAL_TEXT,
            met=None if case else ratio >= RATIO_GOAL and intact,
            details=details,
        ),
        Row(
            SECTION,
            f"{database} p99{case}",
            p99,
            "ms",
            goal="" if case else f"< {P99_GOAL_MS:g} ms",
            met=None if case else p99 < P99_GOAL_MS and intact,
            floor=bare_p99,  # the bare handler's, in the same round
            details={"p50_ms": details["p50_ms"], "lost": fate.lost},
        ),
    ]


@contextmanager
def bare_handler(port: int) -> Iterator[subprocess.Popen[bytes]]:
    """The bare handler starting in a process of its own, on port."""
    process = subprocess.Popen([sys.executable, "-m", "bench.intake", str(port)], cwd=ROOT)
    try:
        yield process
    finally:
        process.kill()  # it keeps nothing: no need to let it finish its answers
        process.wait()


def wait_until_listening(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the bare handler exited at start ({process.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the bare handler did not listen within {START_TIMEOUT:.0f}s")


def bare_app() -> web.Application:
    secret = WEBHOOK_SECRET.encode()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        given = request.headers.get("X-Hub-Signature-256", "")
        return web.Response(status=202 if hmac.compare_digest(given, expected) else 401)

    app = web.Application()
    app.router.add_post(PATH, receive)
    return app


if __name__ == "__main__":
    web.run_app(bare_app(), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
