"""Chains that explain themselves (CONTRACT §7): fallout of a failure, diamonds started once after
all their upstreams passed, and triggers superseded by a newer upstream success."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from conjunction import db
from conjunction.adapters import Adapters
from conjunction.config.settings import Settings
from conjunction.engine import Engine, UpstreamSuccess, graph
from conjunction.engine.chains import (
    Root,
    State,
    fallout_reason,
    has_cycle,
    reachable,
    state_of,
    waiting_on,
)
from conjunction.models import Event
from conjunction.runner import TriggerRequest
from conjunction.tokens import CallbackSigner
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs
from tests.test_flow import events_of, index, report_status, upstream_of

A, B, C, D = (f"github.com/acme/{name}" for name in "abcd")
SHA = "a" * 40


def test_reachable_never_goes_through_the_project_that_waits() -> None:
    graph = {"a": ["b", "c"], "b": ["d"], "c": ["x"], "x": ["d", "c"], "d": ["y"], "y": ["b2"]}
    assert reachable(graph, ["a"], avoid="d", limit=5) == {"a", "b", "c", "x"}
    assert reachable(graph, ["a"], avoid="zz", limit=1) == {"a", "b", "c"}
    assert reachable(graph, ["d"], avoid="d", limit=5) == set()


def test_a_loop_is_found_wherever_it_is() -> None:
    assert not has_cycle({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []})
    assert has_cycle({"a": ["b"], "b": ["c"], "c": ["a"]})
    assert has_cycle({"a": ["b"], "x": ["y"], "y": ["x"]})
    assert has_cycle({"a": ["a"]})


@pytest.mark.parametrize(
    "graph",
    [
        {"a": ["b", "c", "d"], "b": ["d", "e"], "c": ["e"], "d": ["f"], "e": ["f"], "f": []},
        {"a": ["b", "c"], "b": ["d"], "c": ["x"], "x": ["d", "c"], "d": ["y"], "y": ["b"]},
    ],
    ids=["without a loop", "with loops"],
)
def test_one_search_answers_for_every_downstream_as_each_own_would(
    graph: dict[str, list[str]],
) -> None:
    root = Root("origin", graph=graph)
    upstreams = {key: {up for up, below in graph.items() if key in below} for key in graph}
    for start in ({"a"}, {"b", "c"}, {"a", "d"}):
        for key in graph:
            each_own = reachable(graph, start - {key}, avoid=key, limit=5)
            once = root.will_run(frozenset(start - {key}), key, 5)
            assert once & upstreams[key] == each_own & upstreams[key], (start, key)


def test_what_a_diamond_bottom_waits_for() -> None:
    states = {"a": State.PASSED, "b": State.PASSED, "c": State.PENDING, "e": State.FAILED}
    assert waiting_on({"b", "c"}, states, will_run=set()) == ["c"]
    assert waiting_on({"b", "e"}, states, will_run={"e"}) == []  # e's fallout decides
    assert waiting_on({"b", "f"}, states, will_run={"f"}) == ["f"]  # f has not run yet
    assert waiting_on({"b", "g"}, states, will_run=set()) == []  # g is on no path from here


def test_where_an_event_leaves_its_project() -> None:
    assert state_of(None, "first", None) is State.PENDING
    assert state_of("success", "first", None) is State.PASSED
    assert state_of("failure", "first", "again") is State.PENDING  # being confirmed
    assert state_of("failure", "first", None) is State.FAILED
    assert state_of("success", "last passed", None) is None  # an older upstream commit
    assert state_of("failure", "bisect", None) is None  # a commit of a culprit search
    assert fallout_reason(B, "error") == f"upstream {B} failed"
    assert fallout_reason(B, "timed_out") == f"upstream {B} timed out"


def started(forge: MemoryHost) -> list[TriggerRequest]:
    return [request for _, request in forge.of("start_pipeline")]


def request_of(forge: MemoryHost, project: str) -> TriggerRequest:
    return next(request for request in reversed(started(forge)) if request.project == project)


async def answer(
    client: TestClient[Any, Any], forge: MemoryHost, project: str, result: str, sha: str = ""
) -> None:
    request = request_of(forge, project)
    sha = sha or project[-1] * 40  # each downstream runs on its own commit
    reply = await report_status(client, request.event_id, result, metadata={"sha": sha})
    assert reply.status == 202
    await run_jobs(client)


async def a_succeeds(client: TestClient[Any, Any], sha: str = SHA, run_id: int = 1) -> None:
    await post_github(client, "workflow_run", workflow_run("acme/a", sha, run_id=run_id))
    await run_jobs(client)


def a_report(forge: MemoryHost) -> Any:
    """The latest check run posted on A's commit."""
    return next(report for project, (_, report) in reversed(forge.of("check")) if project == A)


async def test_when_b_fails_its_downstreams_are_fallout_and_a_says_so(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, A, None)
    await index(client, B, upstream_of(A))
    await index(client, C, upstream_of(B))
    await index(client, D, upstream_of(C))
    await a_succeeds(client)
    await answer(client, forge, B, "failure")

    assert [request.project for request in started(forge)] == [B]
    [c] = await events_of(client, C)
    [d] = await events_of(client, D)
    for skipped in (c, d):
        assert (skipped.result, skipped.change, skipped.reason) == (
            "skipped",
            "skipped",
            f"upstream {B} failed",
        )
    report = a_report(forge)
    assert (report.state, report.description) == (
        "success",
        ("0 of 1 downstream projects passed, 1 failed, 2 skipped; none blamed on this commit"),
    )
    assert f"| {B} | ❌ failed |" in report.summary
    table, fallout = report.summary.split("**Fallout**: not run because an upstream failed")
    assert C not in table
    assert f"- {C}: upstream {B} failed\n- {D}: upstream {B} failed" in fallout


async def test_a_chain_that_passes_is_reported_whole_on_its_origin(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, A, None)
    await index(client, B, upstream_of(A))
    await index(client, C, upstream_of(B))
    await a_succeeds(client)
    await answer(client, forge, B, "success")
    assert a_report(forge).state == "pending"  # C runs now
    await answer(client, forge, C, "success")

    report = a_report(forge)
    assert (report.state, report.description) == (
        "success",
        "1 of 1 downstream projects passed (2 of 2 in the tree)",
    )
    assert f"| {C} (via {B}) | ✅ passed |" in report.summary
    [c] = started(forge)[1:]
    assert (c.upstream, c.upstream_sha, c.depth) == (B, "b" * 40, 2)


async def test_a_regression_deeper_in_the_chain_links_the_changes_of_its_own_upstream(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, A, None)
    await index(client, B, upstream_of(A))
    await index(client, C, upstream_of(B))
    await a_succeeds(client, "1" * 40, 1)
    await answer(client, forge, B, "success", "b1" * 20)
    await answer(client, forge, C, "success")
    await a_succeeds(client, "2" * 40, 2)
    await answer(client, forge, B, "success", "b2" * 20)
    await answer(client, forge, C, "failure")

    report = a_report(forge)
    assert (report.state, report.description) == (
        "failure",
        "1 of 1 downstream projects passed (1 of 2 in the tree), 1 new regression",
    )
    compare = f"https://{B}/compare/{'b1' * 20}...{'b2' * 20}"
    assert f"| {C} (via {B}) | ❌ new regression |" in report.summary
    assert f"[compare]({compare})" in report.summary


async def diamond(client: TestClient[Any, Any]) -> None:
    await index(client, A, None)
    await index(client, B, upstream_of(A))
    await index(client, C, upstream_of(A))
    await index(client, D, upstream_of(B, C))
    await a_succeeds(client)


async def test_a_diamond_bottom_starts_once_after_both_paths_passed(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await diamond(client)
    assert [request.project for request in started(forge)] == [B, C]
    await answer(client, forge, B, "success")
    assert [request.project for request in started(forge)] == [B, C], "D waits for C"
    await answer(client, forge, C, "success")
    assert [request.project for request in started(forge)] == [B, C, D]
    d = request_of(forge, D)
    assert (d.upstream, d.upstream_sha) == (C, "c" * 40)
    await answer(client, forge, D, "success")

    assert len(await events_of(client, D)) == 1
    assert a_report(forge).description == "2 of 2 downstream projects passed (3 of 3 in the tree)"


async def test_a_graph_read_a_slice_of_keys_at_a_time_plans_the_same_fan_out(
    client: TestClient[Any, Any], forge: MemoryHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A level of a large graph holds more keys than one statement may bind: read in slices
    (here of one key), the diamond is planned as when read whole."""
    monkeypatch.setattr(graph, "IN_LIMIT", 1)
    await diamond(client)
    assert [request.project for request in started(forge)] == [B, C]
    await answer(client, forge, B, "success")
    await answer(client, forge, C, "success")
    assert [request.project for request in started(forge)] == [B, C, D]


async def test_a_diamond_bottom_is_fallout_when_one_path_fails(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await diamond(client)
    await answer(client, forge, C, "failure")
    await answer(client, forge, B, "success")
    assert [request.project for request in started(forge)] == [B, C]
    [d] = await events_of(client, D)
    assert (d.result, d.reason) == ("skipped", f"upstream {C} failed")
    assert a_report(forge).description == (
        "1 of 2 downstream projects passed, 1 failed, 1 skipped; none blamed on this commit"
    )


async def test_a_downstream_of_the_origin_and_of_its_downstream_waits_for_the_longer_path(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, A, None)
    await index(client, B, upstream_of(A))
    await index(client, D, upstream_of(A, B))
    await a_succeeds(client)
    assert [request.project for request in started(forge)] == [B]
    await answer(client, forge, B, "success")
    assert [request.project for request in started(forge)] == [B, D]
    assert request_of(forge, D).upstream == B


async def test_a_diamond_bottom_waiting_for_a_path_that_never_comes_starts_all_the_same(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    """C only follows A's release branches: D, downstream of B and C, does not wait for it."""
    await index(client, A, None)
    await index(client, B, upstream_of(A))
    await index(client, C, f"upstreams:\n  - project: {A}\n    branches: [release/*]\n")
    await index(client, D, upstream_of(B, C))
    await a_succeeds(client)
    await answer(client, forge, B, "success")
    assert [request.project for request in started(forge)] == [B, D]


async def test_a_newer_success_supersedes_triggers_not_sent_yet(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, A, None)
    await index(client, B, upstream_of(A))
    for run_id, sha in enumerate(["1" * 40, "2" * 40, "3" * 40], start=1):
        await post_github(client, "workflow_run", workflow_run("acme/a", sha, run_id=run_id))
    await run_jobs(client)  # the three deliveries are handled before any trigger is sent

    assert [request.upstream_sha for request in started(forge)] == ["3" * 40]
    events = await events_of(client, B)
    assert [(event.result, event.reason) for event in events] == [
        ("skipped", "superseded by 2222222"),
        ("skipped", "superseded by 3333333"),
        (None, None),
    ]
    reports = {sha: report for project, (sha, report) in forge.of("status") if project == A}
    assert reports["1" * 40].description == (
        "no downstream projects ran, 1 skipped; none blamed on this commit"
    )
    assert reports["2" * 40].state == "success"
    assert reports["3" * 40].state == "pending"
    checks = {sha: report for _, (sha, report) in forge.of("check")}
    assert f"| {B} | ⏭ skipped: superseded by 2222222 |" in checks["1" * 40].summary


async def test_a_trigger_already_sent_is_not_superseded(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, A, None)
    await index(client, B, upstream_of(A))
    await a_succeeds(client, "1" * 40, 1)
    await a_succeeds(client, "2" * 40, 2)
    assert [request.upstream_sha for request in started(forge)] == ["1" * 40, "2" * 40]


async def test_a_flake_in_the_middle_of_a_chain_lets_the_chain_go_on(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, A, None)
    await index(client, B, f"upstreams:\n  - project: {A}\n    confirm: true\n")
    await index(client, C, upstream_of(B))
    await a_succeeds(client, "1" * 40, 1)
    await answer(client, forge, B, "success")
    await answer(client, forge, C, "success")
    await a_succeeds(client, "2" * 40, 2)
    await answer(client, forge, B, "failure")
    assert a_report(forge).description == (
        "0 of 1 downstream projects passed, confirming 1 failure"
    )
    await answer(client, forge, B, "success")  # the re-run passes: a flake
    assert [request.project for request in started(forge)] == [B, C, B, B, C]
    await answer(client, forge, C, "success")

    report = a_report(forge)
    assert (report.state, report.description) == (
        "success",
        (
            "0 of 1 downstream projects passed (1 of 2 in the tree), "
            "1 flaky; none blamed on this commit"
        ),
    )
    assert f"| {B} | ⚠️ flaky |" in report.summary
    assert f"| {C} (via {B}) | ✅ passed |" in report.summary


@pytest.fixture
async def engine(database_url: str, forge: MemoryHost) -> AsyncIterator[Engine]:
    """The engine alone, on SQLite and on PostgreSQL: B follows every branch of A, C its default
    branch, D follows B and C."""
    database = db.create_engine(database_url)
    await db.migrate(database)
    settings = Settings(database_url=database_url, public_url="https://conjunction.test")
    engine = Engine(
        db.sessionmaker(database), Adapters.of(forge), settings, CallbackSigner("k" * 20)
    )
    every_branch = f"upstreams:\n  - project: {A}\n    branches: ['*']\n"
    for name, config in [
        (A, None),
        (B, every_branch),
        (C, upstream_of(A)),
        (D, upstream_of(B, C)),
    ]:
        await engine.index_project(name, private=False, default_branch="main", config_text=config)
    yield engine
    await database.dispose()


async def test_superseding_in_storage(engine: Engine) -> None:
    await engine.upstream_success(UpstreamSuccess(A, "1" * 40, "main"))
    await engine.upstream_success(UpstreamSuccess(A, "2" * 40, "release"))  # another branch
    await engine.upstream_success(UpstreamSuccess(A, "3" * 40, "main"))
    pending = await engine.pending_triggers(B)
    assert len(pending) == 2  # the release branch's and the newest main's
    async with engine.sessions() as session:
        reasons = list(
            await session.scalars(
                select(Event.reason).where(Event.project == B, Event.result == "skipped")
            )
        )
    assert reasons == ["superseded by 3333333"]


@pytest.mark.postgres
async def test_two_upstreams_passing_at_once_start_the_diamond_bottom_once(
    engine: Engine, database_url: str
) -> None:
    """Two workers run the chain jobs of B and C at the same moment (PostgreSQL, several
    processes): the lock on the origin lets only one of them start D."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite serves one process, whose worker runs one job at a time")
    await engine.upstream_success(UpstreamSuccess(A, SHA, "main"))
    [b] = await engine.pending_triggers(B)
    [c] = await engine.pending_triggers(C)
    await engine.record_result(b.id, "success", sha="b" * 40)
    await engine.record_result(c.id, "success", sha="c" * 40)
    chain = engine.job_handlers()["chain"]
    await asyncio.gather(chain({"event_id": b.id}), chain({"event_id": c.id}))
    assert len(await engine.pending_triggers(D)) == 1


async def test_a_burst_of_superseded_triggers_does_not_hide_the_last_pass(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    await index(client, A, None)
    await index(client, B, upstream_of(A))
    await a_succeeds(client, "0" * 40, 100)
    await answer(client, forge, B, "success")
    for run_id in range(1, 24):
        sha = f"{run_id:02x}" * 20
        await post_github(client, "workflow_run", workflow_run("acme/a", sha, run_id=run_id))
    await run_jobs(client)
    await answer(client, forge, B, "failure")
    events = await events_of(client, B)
    superseded = [event.reason for event in events if event.result == "skipped"]
    assert len(superseded) == 22
    assert superseded[-1] == "superseded by 1717171"
    assert [event.change for event in events][-1] == "new regression"
