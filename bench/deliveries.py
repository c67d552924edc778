"""Processing webhook deliveries: CPU per delivery whose job starts nothing, deliveries processed
a second, and how soon a second owner's delivery is processed behind another owner's burst.

In one process (the worker of `create_app`, as the server runs it, with no forge behind it):
signed `workflow_run` successes of 20 upstreams that have no downstreams are posted and stored
first, then the worker runs them all; CPU is `time.process_time` over that run, so it counts the
worker, the database driver's threads and SQLite itself (PostgreSQL's server runs apart). The
burst case posts the burst of one installation, then one delivery of another installation, and
reports how many of the burst's jobs were done before it and the seconds until it was.

    .venv/bin/python -m bench.deliveries [--quick | --full] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from app import create_app
from bench.common import Options, Row, table
from bot.adapters import Adapters
from bot.models import Delivery, Job
from config.settings import Settings
from handlers.context import RUNTIME
from testkit.databases import reset_postgres
from testkit.keys import PRIVATE_KEY_PEM
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from testkit.signing import WEBHOOK_SECRET, signed_headers

UPSTREAMS = 20
SECOND_OWNER = "second-owner"


def _delivery(number: int, installation: int) -> tuple[bytes, str]:
    sha = hashlib.sha1(str(number).encode()).hexdigest()
    payload = workflow_run(f"acme/up{number % UPSTREAMS}", sha, run_id=number + 1)
    payload["installation"] = {"id": installation}
    return json.dumps(payload).encode(), f"delivery-{number}"


async def _measure(url: str, count: int) -> dict[str, Any]:
    if url.startswith("postgresql"):
        await reset_postgres(url)
    settings = Settings(
        database_url=url,
        public_url="https://conjunction.bench",
        secret_key="a-secret-key-for-the-bench",
        github_app_id="1",
        github_private_key=PRIVATE_KEY_PEM,
        github_webhook_secret=WEBHOOK_SECRET,
    )
    app = create_app(settings, adapters=Adapters.of(MemoryHost()), run_workers=False)
    client = TestClient(TestServer(app))
    await client.start_server()
    runtime = app[RUNTIME]
    try:
        posts = [_delivery(n, 1) for n in range(count)]
        posts.append((_delivery(count, 2)[0], SECOND_OWNER))
        for body, delivery in posts:
            headers = signed_headers("workflow_run", body, delivery)
            answer = await client.post("/webhooks/github", data=body, headers=headers)
            assert answer.status == 202, await answer.text()
        cpu, started = time.process_time(), time.perf_counter()
        worker = runtime.worker
        running = asyncio.create_task(worker.run_forever())
        second_done = None
        while True:
            async with runtime.sessions() as session:
                left = await session.scalar(
                    select(func.count()).select_from(Job).where(Job.state != "done")
                )
                if second_done is None and await _done(session, SECOND_OWNER):
                    second_done = time.perf_counter() - started
            if not left:
                break
            await asyncio.sleep(0.05)
        cpu, seconds = time.process_time() - cpu, time.perf_counter() - started
        await worker.shutdown(running, 1)
        async with runtime.sessions() as session:
            finished = await session.scalar(select(Job.finished_at).where(_job_of(SECOND_OWNER)))
            before = await session.scalar(
                select(func.count()).select_from(Job).where(Job.finished_at < finished)
            )
    finally:
        await client.close()
    return {
        "cpu_ms": cpu / len(posts) * 1000,
        "per_s": len(posts) / seconds,
        "second_owner_s": second_done,
        "done_before_second_owner": before,
    }


def _job_of(delivery_id: str) -> Any:
    return (
        Job.payload["delivery"]
        .as_integer()
        .in_(select(Delivery.id).where(Delivery.delivery_id == delivery_id).scalar_subquery())
    )


async def _done(session: Any, delivery_id: str) -> bool:
    state = await session.scalar(select(Job.state).where(_job_of(delivery_id)))
    return state == "done"


async def run(options: Options) -> list[Row]:
    count = 50 if options.quick else 2000 if options.full else 500
    rows = []
    for database in options.databases:
        with tempfile.TemporaryDirectory() as folder:
            url = (
                f"sqlite:///{Path(folder) / 'conjunction.db'}"
                if database == "sqlite"
                else str(options.postgres_url)
            )
            found = await _measure(url, count)
        case = f"{count} deliveries starting nothing, {database}"
        rows += [
            Row(
                "deliveries",
                f"CPU per delivery, {case}",
                round(found["cpu_ms"], 2),
                "ms",
                "≤ 5 ms",
                found["cpu_ms"] <= 5,
            ),
            Row(
                "deliveries",
                f"processed a second, {case}",
                round(found["per_s"], 1),
                "1/s",
                "≥ 200/s on one core",
                found["per_s"] >= 200,
            ),
            Row(
                "deliveries",
                f"a second owner's delivery behind the burst, {database}",
                round(found["second_owner_s"] or -1, 2),
                "s",
                "within 5 s",
                found["second_owner_s"] is not None and found["second_owner_s"] <= 5,
                details={"burst_jobs_done_before": found["done_before_second_owner"]},
            ),
        ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--postgres-url")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--full", action="store_true")
    arguments = parser.parse_args()
    logging.disable(logging.INFO)
    options = Options(
        postgres_url=arguments.postgres_url, quick=arguments.quick, full=arguments.full
    )
    rows = asyncio.run(run(options))
    print(table(rows))
    for row in rows:
        if row.details:
            print(row.case, row.details)


if __name__ == "__main__":
    main()
