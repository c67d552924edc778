"""`CONJUNCTION_RUN_JOBS=false`: a `python app.py` that takes webhooks and runs no jobs, leaving
them queued for a process that runs them."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from testkit.keys import PRIVATE_KEY_PEM
from testkit.server_process import ServerProcess
from testkit.signing import WEBHOOK_SECRET, signed_headers

ENV = {
    "GITHUB_APP_ID": "1",
    "GITHUB_PRIVATE_KEY": PRIVATE_KEY_PEM,
    "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "GITHUB_API_URL": "http://127.0.0.1:9",  # never called: a ping's job asks nothing
}


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition was never met"
        time.sleep(0.05)


def test_a_server_that_runs_no_jobs_stores_deliveries_for_one_that_does(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, {**ENV, "CONJUNCTION_RUN_JOBS": "false"}) as server:
        body = json.dumps({"zen": "Keep it simple.", "hook_id": 1}).encode()
        request = urllib.request.Request(
            f"{server.url}/webhooks/github", data=body, headers=signed_headers("ping", body)
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert (answer.status, json.load(answer)["status"]) == (202, "accepted")
        time.sleep(1.0)  # two of the worker's polls, had it one
        assert server.query("SELECT kind, state FROM jobs") == [("github_delivery", "queued")]

        server.terminate()
        server.env["CONJUNCTION_RUN_JOBS"] = "true"
        server.start()
        wait_for(lambda: server.query("SELECT state FROM jobs") == [("done",)])
