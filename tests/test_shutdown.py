"""SIGTERM on a real `python app.py`: the job in flight goes back to the queue, no lease stalls."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testkit.keys import PRIVATE_KEY_PEM
from testkit.server_process import ServerProcess
from testkit.signing import WEBHOOK_SECRET, signed_headers


@pytest.fixture
def silent_github() -> Iterator[str]:
    """A GitHub API that takes connections and never answers: every call hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition was never met"
        time.sleep(0.05)


def test_sigterm_returns_the_job_in_flight_to_the_queue(tmp_path: Path, silent_github: str) -> None:
    env = {
        "GITHUB_APP_ID": "1",
        "GITHUB_PRIVATE_KEY": PRIVATE_KEY_PEM,
        "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "GITHUB_API_URL": silent_github,
    }
    with ServerProcess(tmp_path, env) as server:
        body = json.dumps(
            {"action": "created", "installation": {"id": 7}, "repositories": []}
        ).encode()
        request = urllib.request.Request(
            f"{server.url}/webhooks/github",
            data=body,
            headers=signed_headers("installation", body),
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 202
        # The job asks GitHub for an installation token and waits for an answer that never comes.
        wait_for(lambda: server.query("SELECT state FROM jobs") == [("running",)])

        assert server.terminate() == 0, server.log()

    jobs = server.query("SELECT kind, state, attempts, locked_by, locked_until FROM jobs")
    assert jobs == [("github_delivery", "queued", 0, None, None)], server.log()
    assert "job returned to the queue: the worker is stopping" in server.log()
