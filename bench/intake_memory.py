"""Peak memory of the server while webhook deliveries of 24 MB arrive at once.

Starts the server as `python app.py` runs it (its own process, SQLite in a temporary folder),
posts N deliveries of SIZE MB concurrently to /webhooks/github and reads the server's resident
memory from /proc: before, at its peak (VmHWM) and a moment after the last answer. Each scenario
gets a fresh server, so every peak is its own.

    .venv/bin/python -m bench.intake_memory [--posts 20] [--size 24] [--code DIR]

Scenarios: `no signature` (no X-Hub-Signature-256 header), `wrong signature` (a well-formed
signature that does not match) and `signed` (valid push deliveries, stored and queued).
`--code DIR` runs the server from another checkout, to compare with an earlier version.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp

SECRET = "benchmark-secret"
ROOT = Path(__file__).resolve().parent.parent
SERVER = """
import sys
from conjunction.cli.serve import serve
from conjunction.config.settings import Settings
from conjunction.forges.github.settings import GitHubSettings
serve(Settings(port=int(sys.argv[1]), database_url=sys.argv[2], secret_key="k" * 20,
               forges=(GitHubSettings(webhook_secret=sys.argv[3]),)))
"""


def push_payload(size: int) -> bytes:
    """A push to the default branch with as many commits as it takes to reach size bytes."""
    payload = json.loads((ROOT / "tests/fixtures/github/push.json").read_text())
    commit = payload["head_commit"]
    commit["added"] = [f"src/module_{index}.py" for index in range(40)]
    one = len(json.dumps(commit)) + 2
    payload["commits"] = [commit] * (size // one)
    return json.dumps(payload).encode()


def memory_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"VmRSS", "VmHWM"}:
            fields[key] = int(value.split()[0]) / 1024
    return fields


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_until_up(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(f"{url}/healthz") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the server did not start")


async def post_all(url: str, body: bytes, headers: list[dict[str, str]]) -> Counter[str]:
    async def post(http: aiohttp.ClientSession, extra: dict[str, str]) -> str:
        try:
            async with http.post(f"{url}/webhooks/github", data=body, headers=extra) as answer:
                data = await answer.json()
                return f"{answer.status} {data.get('error', '')}".strip()
        except aiohttp.ClientError as exc:
            return type(exc).__name__

    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        return Counter(await asyncio.gather(*(post(http, extra) for extra in headers)))


def headers_for(scenario: str, body: bytes, posts: int) -> list[dict[str, str]]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    signature = {
        "no signature": {},
        "wrong signature": {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        "signed": {"X-Hub-Signature-256": f"sha256={digest}"},
    }[scenario]
    return [
        {"X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4()), **signature}
        for _ in range(posts)
    ]


async def scenario(code: Path, name: str, body: bytes, posts: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        server = await asyncio.create_subprocess_exec(
            *[sys.executable, "-c", SERVER, str(port), f"sqlite:///{folder}/bench.db", SECRET],
            cwd=code,
            env={**os.environ, "PYTHONPATH": str(code)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            await wait_until_up(url)
            idle = memory_mb(server.pid)["VmRSS"]
            started = time.perf_counter()
            answers = await post_all(url, body, headers_for(name, body, posts))
            seconds = time.perf_counter() - started
            await asyncio.sleep(2)
            after = memory_mb(server.pid)
        finally:
            if server.returncode is None:
                server.terminate()
            await server.wait()
    statuses = ", ".join(f"{count} x {status}" for status, count in sorted(answers.items()))
    print(
        f"{name:16} idle {idle:6.0f} MB   peak {after['VmHWM']:6.0f} MB   "
        f"after {after['VmRSS']:6.0f} MB   {seconds:5.1f} s   answers {statuses}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=20)
    parser.add_argument("--size", type=float, default=24, help="MB per delivery")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout to run the server from")
    parser.add_argument(
        "--scenario", action="append", choices=["no signature", "wrong signature", "signed"]
    )
    args = parser.parse_args()
    body = push_payload(int(args.size * 1024 * 1024))
    print(f"{args.posts} concurrent deliveries of {len(body) / 1024 / 1024:.1f} MB, {args.code}")
    for name in args.scenario or ["no signature", "wrong signature", "signed"]:
        await scenario(args.code.resolve(), name, body, args.posts)


if __name__ == "__main__":
    asyncio.run(main())
