"""What stopping a server does to the job it is running.

Starts `python app.py` on SQLite in a temporary folder with a GitHub API that never answers,
posts one installation event so that a job hangs on its first GitHub call, then stops the server:

- SIGTERM: how long the process takes to exit, and how many jobs are left `running` or holding a
  lease afterwards (the promise is 0);
- kill -9, then a new server: how long after the kill the new server takes the job again.

    .venv/bin/python -m bench.shutdown
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

from testkit.keys import PRIVATE_KEY_PEM
from testkit.server_process import ServerProcess
from testkit.signing import WEBHOOK_SECRET, signed_headers


def start_hanging_job(server: ServerProcess) -> None:
    body = json.dumps({"action": "created", "installation": {"id": 7}}).encode()
    request = urllib.request.Request(
        f"{server.url}/webhooks/github", data=body, headers=signed_headers("installation", body)
    )
    urllib.request.urlopen(request, timeout=10).close()
    wait_for(lambda: server.query("SELECT state FROM jobs") == [("running",)])


def wait_for(condition: Callable[[], bool], timeout: float = 600) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError("the server never got there")
        time.sleep(0.05)
    return time.monotonic() - started


def sigterm(env: Mapping[str, str]) -> None:
    with tempfile.TemporaryDirectory() as folder, ServerProcess(Path(folder), env) as server:
        start_hanging_job(server)
        started = time.monotonic()
        code = server.terminate()
        took = time.monotonic() - started
        stalled = server.query(
            "SELECT count(*) FROM jobs WHERE state = 'running' OR locked_until IS NOT NULL"
        )[0][0]
        print(f"SIGTERM: exit code {code} after {took:.1f}s; {stalled} stalled lease(s)")


def kill_and_restart(env: Mapping[str, str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        with ServerProcess(Path(folder), env) as server:
            start_hanging_job(server)
            server.kill()
        killed = time.monotonic()
        with ServerProcess(Path(folder), env) as server:
            wait_for(lambda: server.query("SELECT attempts FROM jobs") == [(2,)])
            took = time.monotonic() - killed
            print(f"kill -9: a new server took the job again {took:.0f}s after the kill")
            server.terminate()


def main() -> None:
    with socket.socket() as silent_github:
        silent_github.bind(("127.0.0.1", 0))
        silent_github.listen(64)
        env = {
            "GITHUB_APP_ID": "1",
            "GITHUB_PRIVATE_KEY": PRIVATE_KEY_PEM,
            "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "GITHUB_API_URL": f"http://127.0.0.1:{silent_github.getsockname()[1]}",
        }
        for _ in range(3):
            sigterm(env)
        kill_and_restart(env)


if __name__ == "__main__":
    main()
