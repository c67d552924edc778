"""How fast the worker sends N dispatches spread over K installations to a slow forge.

A fake forge on loopback answers every call after `latency` seconds; N jobs (one dispatch each,
keyed by installation as fan-out keys its trigger jobs) wait in the queue; the worker runs them
with `run_forever`. Printed beside each time is its floor: the latency times the number of
rounds the concurrency limits allow. Concurrency 1 is how the worker ran before.

    .venv/bin/python -m benchmarks.fanout [--latency 0.05] [--json out.json]

SQLite in a temporary folder, and PostgreSQL when CONJUNCTION_BENCH_POSTGRES_URL is set (its
`jobs` table is emptied).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import tempfile
import time
from collections import Counter
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import delete

from bot.db import create_engine, migrate, sessionmaker
from bot.models import Job
from bot.queue import JobQueue, Worker

CASES = [(10, 1), (100, 1), (10, 20), (100, 20), (200, 20)]


async def fake_forge(latency: float) -> tuple[web.AppRunner, str, Counter[str]]:
    calls: Counter[str] = Counter()

    async def dispatch(request: web.Request) -> web.Response:
        await asyncio.sleep(latency)
        calls[request.match_info["owner"]] += 1
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/repos/{owner}/{repo}/dispatches", dispatch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}", calls


def floor(n: int, installations: int, latency: float, concurrency: int, per_key: int) -> float:
    biggest = math.ceil(n / installations)
    return latency * max(math.ceil(n / concurrency), math.ceil(biggest / per_key))


async def one_case(
    url: str, forge: str, n: int, installations: int, concurrency: int, per_key: int
) -> float:
    engine = create_engine(url)
    await migrate(engine)
    sessions = sessionmaker(engine)
    async with sessions.begin() as session:
        await session.execute(delete(Job))
        for i in range(n):
            owner = f"org{i % installations}"
            await JobQueue.enqueue(
                session,
                "trigger",
                {"owner": owner, "n": i},
                concurrency_key=f"github.com/{owner}",
            )
    done = asyncio.Event()
    sent = 0
    async with aiohttp.ClientSession() as http:

        async def trigger(payload: dict[str, Any]) -> None:
            nonlocal sent
            async with http.post(f"{forge}/repos/{payload['owner']}/app/dispatches") as answer:
                answer.raise_for_status()
            sent += 1
            if sent == n:
                done.set()

        worker = Worker(
            JobQueue(sessions),
            {"trigger": trigger},
            "bench",
            poll_interval=0.05,
            concurrency=concurrency,
            per_key=per_key,
        )
        started = time.perf_counter()
        task = asyncio.create_task(worker.run_forever())
        await done.wait()
        elapsed = time.perf_counter() - started
        await worker.shutdown(task, grace=5)
    await engine.dispose()
    return elapsed


async def main(latency: float) -> list[dict[str, Any]]:
    databases = []
    with tempfile.TemporaryDirectory() as folder:
        databases.append(("sqlite", f"sqlite:///{folder}/bench.db"))
        if os.environ.get("CONJUNCTION_BENCH_POSTGRES_URL"):
            databases.append(("postgresql", os.environ["CONJUNCTION_BENCH_POSTGRES_URL"]))
        runner, forge, _calls = await fake_forge(latency)
        rows = []
        header = f"{'database':<11}{'N':>5}{'inst':>6}{'conc':>6}{'key':>5}{'time s':>9}"
        print(header + f"{'floor s':>9}{'ratio':>7}")
        for database, url in databases:
            for n, installations in CASES:
                for concurrency, per_key in ((1, 1), (16, 4)):
                    took = await one_case(url, forge, n, installations, concurrency, per_key)
                    least = floor(n, installations, latency, concurrency, per_key)
                    row = {
                        "database": database,
                        "n": n,
                        "installations": installations,
                        "concurrency": concurrency,
                        "per_key": per_key,
                        "seconds": round(took, 3),
                        "floor_seconds": round(least, 3),
                        "ratio": round(took / least, 2),
                    }
                    rows.append(row)
                    print(
                        f"{database:<11}{n:>5}{installations:>6}{concurrency:>6}{per_key:>5}"
                        f"{took:>9.2f}{least:>9.2f}{took / least:>7.2f}",
                        flush=True,
                    )
        await runner.cleanup()
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--json", dest="out")
    arguments = parser.parse_args()
    measured = asyncio.run(main(arguments.latency))
    if arguments.out:
        with open(arguments.out, "w") as file:
            json.dump({"latency": arguments.latency, "fanout": measured}, file, indent=2)
