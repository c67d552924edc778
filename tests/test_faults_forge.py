"""GitHub misbehaving under a real `python app.py`: errors, dropped connections, rate limits,
slow answers and time-outs, injected by the fake GitHub on loopback, end to end from an upstream
success to the report on its commit.

By default one fault of each common kind; CONJUNCTION_FAULTS=full adds the rest (500, 503, an
answer lost after GitHub acted, a time-out past the client's 30 s, an outage longer than the
client's own retries, faults on tokens, run lists, statuses and check runs) on 200 downstreams.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from testkit.fleet import (
    BACKENDS,
    FULL,
    UPSTREAM,
    Fleet,
    database_url,
    dead_jobs,
    fake_github_and_server,
    post,
    size,
    unfinished_jobs,
    wait_for,
)
from testkit.github_server import Fault, GitHubServer

pytestmark = pytest.mark.faults

SHA = "fa017" + "0" * 35
DISPATCHES = r"/dispatches$"
# Faults each followed by a call answered normally, so that they hit different downstreams;
# rate limits first, so that the other jobs run while theirs wait.
COMMON = [
    Fault.answer(403, retry_after=1),
    Fault.answer(429, retry_after=1),
    Fault.answer(502),
    Fault.drop(),
    Fault.slow(0.5),
]
RARE = [
    Fault.answer(500),
    Fault.answer(503),
    Fault.drop(after=True),
    Fault.slow(3.0),
    Fault.timeout(35.0),  # past the server's 30 s client time-out
]
# every attempt the client makes in one job fails: the job itself is retried later
OUTAGE: list[Fault | None] = [Fault.answer(503)] * 4


def spaced(faults: list[Fault]) -> list[Fault | None]:
    return [step for fault in faults for step in (fault, None)]


def inject(github: GitHubServer) -> None:
    github.inject("POST", DISPATCHES, spaced(COMMON + RARE) + OUTAGE if FULL else spaced(COMMON))
    github.inject("POST", r"/statuses/", [Fault.answer(503)])
    if FULL:
        github.inject("POST", r"/statuses/", [Fault.answer(429, retry_after=1)])
        github.inject("POST", r"/access_tokens$", [Fault.answer(502)])
        github.inject("GET", r"/actions/runs$", [Fault.answer(502)])
        github.inject("POST", r"/check-runs$", [Fault.drop()])
        github.inject("PATCH", r"/check-runs/", [Fault.answer(500)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_downstream_is_started_and_reported_through_forge_faults(
    tmp_path: Path, backend: str
) -> None:
    fleet = Fleet(size(20, 200))
    database = database_url(backend, tmp_path)
    fleet.seed(database)
    with fake_github_and_server(tmp_path, database) as (github, server):
        inject(github)
        assert post(f"{server.url}/webhooks/github", *fleet.upstream_success(SHA)) == 202
        wait_for(
            lambda: len({d.event_id for d in github.dispatches}) == fleet.size,
            120 if FULL else 30,
            "every downstream dispatched",
        )
        wait_for(lambda: unfinished_jobs(server) == 0, 60, "the fan-out done")

        first_runs = {d.event_id: d for d in reversed(github.dispatches)}.values()
        with ThreadPoolExecutor(8) as senders:
            answers = list(
                senders.map(
                    lambda d: post(f"{server.url}/webhooks/github", *fleet.downstream_run(d)),
                    first_runs,
                )
            )
        assert set(answers) == {202}
        wait_for(lambda: unfinished_jobs(server) == 0, 60, "every result processed")

        triggers = dict(server.query("SELECT project, id FROM events WHERE kind = 'trigger'"))
        results = dict(server.query("SELECT project, result FROM events WHERE kind = 'trigger'"))
        dead = dead_jobs(server)
        log = server.log()
    assert github.unused_faults() == []  # every fault was met

    dispatched = Counter((f"github.com/{d.repo}", d.event_id) for d in github.dispatches)
    assert set(dispatched) == set(triggers.items())
    # A downstream runs twice only where GitHub started it and the answer was lost: the
    # client's immediate retry cannot know it had been sent.
    lost_answers = {
        "github.com/" + "/".join(call.path.split("/")[2:4])
        for call in github.calls
        if call.fault == "reset after acting"
    }
    assert {name for (name, _), count in dispatched.items() if count > 1} <= lost_answers
    assert max(dispatched.values()) <= 2

    assert results == dict.fromkeys(fleet.downstreams, "success")
    assert dead == []
    assert "job postponed: GitHub rate limit" in log

    reports = [body for repo, sha, body in github.statuses if f"github.com/{repo}" == UPSTREAM]
    assert reports[-1]["state"] == "success"
    assert reports[-1]["description"] == f"{fleet.size} of {fleet.size} downstream projects passed"
    checks = [run for run in github.check_runs.values() if run["head_sha"] == SHA]
    assert [(run["status"], run["conclusion"]) for run in checks] == [("completed", "success")]
    assert github.unexpected == []
