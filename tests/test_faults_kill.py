"""kill -9 of a real `python app.py` in the middle of a fan-out and of a burst of results.

The server calls a recording fake GitHub on loopback (`testkit/github_server.py`), so every
workflow started is counted outside the process that is killed. A killed server's jobs are taken
again once its heartbeat is 20 s old (one test waits for that, within 30 s of the restart); the
others make its leases run out in the database, and with CONJUNCTION_FAULTS=full they wait for
the heartbeat (and use the full sizes).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from conjunction.engine.planning import BATCH
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
    status_post,
    unfinished_jobs,
    wait_for,
)
from testkit.github_server import HOLD, Dispatch, GitHubServer
from testkit.server_process import ServerProcess

pytestmark = pytest.mark.faults

SHA = "c0ffee" + "0" * 34
LEASE_WAIT = 120.0 if FULL else 30.0  # the full profile waits out the real 60 s lease


def restart_after_kill(server: ServerProcess, *, expire: bool = not FULL) -> None:
    """Start the server again, the killed one's leases made to run out (by default) or left
    to its heartbeat's timeout."""
    if expire:
        server.expire_leases()
    server.start()


@dataclass(frozen=True)
class FanOut:
    """What a fan-out cut by kill -9 and finished by a restarted server came to."""

    fleet: Fleet
    triggers: dict[str, str]  # downstream -> its trigger event
    run_ids: dict[str, str | None]  # trigger event -> the run recorded for it
    dispatches: list[Dispatch]  # every workflow GitHub started
    held: tuple[str, str]  # the (downstream, event) whose dispatch was in flight at the kill
    before_kill: set[tuple[str, str]]  # the (downstream, event) GitHub had received by then
    dead: list[tuple[str, str]]
    log: str

    @property
    def dispatched(self) -> Counter[tuple[str, str]]:
        """(downstream, event) -> how many workflows GitHub started for it."""
        return Counter((f"github.com/{d.repo}", d.event_id) for d in self.dispatches)

    def twice(self) -> list[tuple[str, str]]:
        return [key for key, count in self.dispatched.items() if count > 1]


def received(github: GitHubServer) -> list[Dispatch]:
    """The dispatches GitHub received from a server just killed: a request it sent before it
    died may still be read and handled here a moment later (on a busy machine), so the list
    is taken once it has stopped growing."""
    seen: list[Dispatch] = []
    still = 0
    deadline = time.monotonic() + 5
    while still < 4 and time.monotonic() < deadline:
        now = github.dispatches
        still = still + 1 if len(now) == len(seen) else 0
        seen = now
        time.sleep(0.05)
    return seen


def kill_mid_fan_out(
    folder: Path,
    backend: str,
    *,
    lists_runs: bool,
    names_runs: bool = True,
    expire: bool = not FULL,
    resumed_within: float = LEASE_WAIT,
) -> FanOut:
    fleet = Fleet(size(50, 500))
    database = database_url(backend, folder)
    fleet.seed(database)
    half = fleet.size // 2
    with fake_github_and_server(folder, database, lists_runs=lists_runs, names_runs=names_runs) as (
        github,
        server,
    ):
        # GitHub acts on the dispatch half-way through and holds its answer: the server is
        # killed while that call is in flight, its run already made.
        github.inject("POST", "/dispatches$", [None] * (half - 1) + [HOLD])
        assert post(f"{server.url}/webhooks/github", *fleet.upstream_success(SHA)) == 202
        wait_for(github.holding.is_set, 30, "the dispatch half-way through")

        server.kill()
        before_kill = {(f"github.com/{d.repo}", d.event_id) for d in received(github)}
        github.release()
        # the worker runs jobs concurrently: others may have been sent meanwhile
        assert len(github.dispatches) >= half
        held_run = json.loads(github.held[0])["workflow_run_id"]
        (held,) = [dispatch for dispatch in github.dispatches if dispatch.run_id == held_run]
        restart_after_kill(server, expire=expire)
        wait_for(lambda: unfinished_jobs(server) == 0, resumed_within, "every job done")

        rows = server.query("SELECT project, id, run_id FROM events WHERE kind = 'trigger'")
        dead = dead_jobs(server)
    assert github.unexpected == []
    return FanOut(
        fleet,
        triggers={project: event for project, event, _ in rows},
        run_ids={event: run for _, event, run in rows},
        dispatches=github.dispatches,
        held=(f"github.com/{held.repo}", held.event_id),
        before_kill=before_kill,
        dead=dead,
        log=server.log(),
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_mid_fan_out_loses_no_downstream_and_sends_none_twice(
    tmp_path: Path, backend: str
) -> None:
    fan_out = kill_mid_fan_out(tmp_path, backend, lists_runs=True)

    assert sorted(fan_out.triggers) == sorted(fan_out.fleet.downstreams)
    # 0 lost: every downstream's workflow was started, for its own trigger event
    assert set(fan_out.dispatched) == set(fan_out.triggers.items()), fan_out.log
    # none twice: the held dispatch was found by the event id in its run's title
    assert fan_out.twice() == []
    assert "was started before" in fan_out.log
    assert fan_out.run_ids == {d.event_id: str(d.run_id) for d in fan_out.dispatches}
    assert fan_out.dead == []


def test_a_restarted_server_resumes_the_killed_ones_jobs_within_30_seconds(
    tmp_path: Path,
) -> None:
    # No lease is made to run out: the killed worker stops saying it is alive, and its jobs
    # are taken again WORKER_TIMEOUT (20 s) after its last heartbeat.
    fan_out = kill_mid_fan_out(
        tmp_path, "sqlite", lists_runs=True, expire=False, resumed_within=30.0
    )
    assert set(fan_out.dispatched) == set(fan_out.triggers.items()), fan_out.log
    assert fan_out.twice() == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_mid_fan_out_sends_none_twice_when_run_names_lack_the_event_id(
    tmp_path: Path, backend: str
) -> None:
    # A workflow without the recipe's `run-name`: each held dispatch is still found, as the
    # one run of its workflow on its ref created since it was sent (CONTRACT §7).
    fan_out = kill_mid_fan_out(tmp_path, backend, lists_runs=True, names_runs=False)

    assert set(fan_out.dispatched) == set(fan_out.triggers.items()), fan_out.log
    assert fan_out.twice() == []
    assert "was started before" in fan_out.log
    assert fan_out.dead == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_mid_fan_out_starts_again_at_most_the_call_in_flight(
    tmp_path: Path, backend: str
) -> None:
    # GitHub does not list the held dispatch's run yet: the restarted server cannot know it
    # was made, and starts that downstream once more. A job sends its batch's calls at once,
    # so each call in flight at the kill (at most a batch's per job) may be sent twice; no
    # call whose start was recorded, and none that had not reached GitHub at the kill.
    fan_out = kill_mid_fan_out(tmp_path, backend, lists_runs=False)

    assert set(fan_out.dispatched) == set(fan_out.triggers.items()), fan_out.log
    twice = fan_out.twice()
    assert fan_out.held in twice
    assert set(twice) <= fan_out.before_kill
    assert len(twice) <= BATCH
    assert all(fan_out.dispatched[pair] == 2 for pair in twice)
    assert fan_out.dead == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_mid_burst_of_results_loses_none(tmp_path: Path, backend: str) -> None:
    fleet = Fleet(size(50, 500))
    database = database_url(backend, tmp_path)
    fleet.seed(database)
    with fake_github_and_server(tmp_path, database) as (github, server):
        assert post(f"{server.url}/webhooks/github", *fleet.upstream_success(SHA)) == 202
        wait_for(lambda: len(github.dispatches) == fleet.size, 60, "every downstream dispatched")
        wait_for(lambda: unfinished_jobs(server) == 0, 30, "the fan-out done")

        # Half the downstreams report through a workflow_run delivery, half through the API.
        results = []
        for index, dispatch in enumerate(github.dispatches):
            if index % 2:
                url = f"{server.url}/api/v1/events/{dispatch.event_id}/status"
                results.append((dispatch.event_id, url, *status_post(dispatch.event_id)))
            else:
                delivery = f"result-{dispatch.event_id}"
                body, headers = fleet.downstream_run(dispatch, delivery=delivery)
                results.append((dispatch.event_id, f"{server.url}/webhooks/github", body, headers))

        def send(index: int) -> int | None:
            time.sleep(index / 100)  # 100 a second, so that the kill lands in the middle
            _, url, body, headers = results[index]
            return post(url, body, headers, timeout=5)

        with ThreadPoolExecutor(16) as senders:
            answers = [senders.submit(send, index) for index in range(len(results))]
            wait_for(
                lambda: sum(a.done() and a.result() == 202 for a in answers) >= len(results) // 2,
                30,
                "half the results taken",
            )
            server.kill()
        statuses = [answer.result() for answer in answers]
        taken = [result for result, status in zip(results, statuses, strict=True) if status == 202]
        missed = [result for result, status in zip(results, statuses, strict=True) if status != 202]
        assert missed, "the burst ended before the kill"

        # Everything answered 202 was kept: a result through the API is recorded, a delivery
        # is stored with its job.
        events = server.query("SELECT id, result FROM events")
        recorded = {event for event, result in events if result is not None}
        stored = {body for (body,) in server.query("SELECT delivery_id FROM deliveries")}
        for event_id, url, _, headers in taken:
            if url.endswith("/status"):
                assert event_id in recorded
            else:
                assert headers["X-GitHub-Delivery"] in stored

        restart_after_kill(server)
        # What got no answer is sent again, as GitHub redelivers and a CI system retries.
        for _, url, body, headers in missed:
            assert post(url, body, headers) in (200, 202)
        wait_for(lambda: unfinished_jobs(server) == 0, LEASE_WAIT, "every job done")

        results_by_event = dict(
            server.query("SELECT id, result FROM events WHERE kind = 'trigger'")
        )
        dead = dead_jobs(server)
    assert results_by_event == {d.event_id: "success" for d in github.dispatches}
    assert dead == []
    reports = [body for repo, _, body in github.statuses if f"github.com/{repo}" == UPSTREAM]
    assert reports[-1]["state"] == "success"
    assert reports[-1]["description"] == f"{fleet.size} of {fleet.size} downstream projects passed"
    assert github.unexpected == []
