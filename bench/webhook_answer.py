"""How fast a signed GitHub webhook is verified, stored, queued and answered.

Runs the real app on loopback (SQLite in a temporary folder, or CONJUNCTION_DATABASE_URL) and
posts N deliveries one after another; prints the answer-time percentiles.

    .venv/bin/python -m bench.webhook_answer [N]
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from aiohttp import web

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.forges.github.settings import GitHubSettings

SECRET = "benchmark-secret"
PAYLOAD = json.loads(
    (Path(__file__).parent.parent / "tests/fixtures/github/workflow_run.completed.json").read_text()
)


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = os.environ.get("CONJUNCTION_DATABASE_URL", f"sqlite:///{folder}/bench.db")
        github = GitHubSettings(webhook_secret=SECRET)
        settings = Settings(database_url=url, secret_key="k" * 20, forges=(github,))
        runner = web.AppRunner(create_app(settings, adapters=Adapters(), run_workers=False))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        body = json.dumps(PAYLOAD).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        timings = []
        async with aiohttp.ClientSession() as http:
            for _ in range(count):
                headers = {
                    "Content-Type": "application/json",
                    "X-GitHub-Event": "workflow_run",
                    "X-GitHub-Delivery": str(uuid.uuid4()),
                    "X-Hub-Signature-256": signature,
                }
                started = time.perf_counter()
                async with http.post(
                    f"http://127.0.0.1:{port}/webhooks/github", data=body, headers=headers
                ) as answer:
                    assert answer.status == 202, answer.status
                timings.append((time.perf_counter() - started) * 1000)
        await runner.cleanup()
    timings.sort()
    print(f"{count} deliveries of {len(body)} bytes on {url.split(':')[0]}")
    print(
        f"answer ms: median {statistics.median(timings):.2f}, "
        f"p95 {timings[int(len(timings) * 0.95) - 1]:.2f}, max {timings[-1]:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
