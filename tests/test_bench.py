"""The benchmark suite still runs: each section at its smallest size, on SQLite.

Figures are never asserted (the machines are shared and noisy); what is checked is that every
section measures what it says, loses nothing and reports each figure beside its goal.
"""

from __future__ import annotations

import ast
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bench.__main__ import run
from bench.common import Options, table
from testkit.databases import postgres_or_skip

pytestmark = pytest.mark.faults  # real servers, as the fault suites run them
ROOT = Path(__file__).parent.parent


async def test_each_section_measures_at_its_smallest_size() -> None:
    rows = await run(["intake", "fanout", "scale"], Options(quick=True))

    by_case = {(row.section, row.case): row for row in rows}
    intake = by_case["intake", "sqlite"]  # intake alone: the server runs no jobs meanwhile
    assert intake.details["lost"] == 0 and intake.details["accepted"] == intake.details["sent"]
    assert intake.details["sent"] == intake.details["done"] == 2 * 60  # both measures' rounds
    assert intake.value > 0 and intake.goal and intake.details["server_cpu_ms_per_delivery"] > 0
    busy = by_case["intake", "sqlite, worker running"]  # a figure beside intake's goal
    assert busy.value > 0 and not busy.goal and busy.met is None
    assert by_case["intake", "sqlite p99, worker running"].value > 0
    fanout = by_case["fanout", "sqlite N=10 over 1"]
    assert fanout.floor is not None and fanout.value > fanout.floor > 0  # nothing beats it
    assert fanout.details["limit_errors"] == 0
    calls = by_case["fanout", "sqlite N=10 over 1: API calls"]
    assert calls.value >= 10 + 4  # every dispatch, and the upstream commit's report
    assert by_case["verdict", "sqlite N=10 over 1"].details["reports"] >= 1
    lookup = by_case["scale", "lookup p99, sqlite"]
    assert lookup.value > 0 and lookup.unit == "ms" and lookup.goal == "< 1 ms"
    assert {row.section for row in rows} == {"intake", "fanout", "verdict", "scale"}

    printed = table(rows)
    assert "section" in printed.splitlines()[0]
    assert all(row.case in printed for row in rows)


def test_the_benchmarks_and_what_they_share_with_the_tests_import_nothing_from_the_tests() -> None:
    """The fakes and server helpers both use live in `testkit/`, which imports neither."""
    for path in sorted([*(ROOT / "bench").glob("*.py"), *(ROOT / "testkit").glob("*.py")]):
        tree = ast.parse(path.read_text())
        imported = {
            name
            for node in ast.walk(tree)
            for name in (
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            )
            + ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        }
        forbidden = {"tests"} | ({"bench"} if path.parent.name == "testkit" else set())
        assert not {name for name in imported if name.split(".")[0] in forbidden}, path


async def test_the_bisect_section_finds_the_culprit_within_its_goal() -> None:
    rows = await run(["bisect"], Options(quick=True))

    by_case = {row.case: row for row in rows}
    most = by_case["pure core, 100 commits: most runs"]
    assert (most.value, most.goal, most.met) == (7, "≤ 7", True)
    engine = by_case["engine on sqlite, 100 commits: runs"]
    assert engine.met and 1 <= engine.value <= 7
    assert by_case["engine on sqlite, 100 commits: failure to answer"].value > 0


async def test_a_second_organisations_success_is_dispatched_during_a_burst() -> None:
    rows = await run(["burst"], Options(quick=True))

    dispatched, per_second, cpu = rows
    assert dispatched.case == "second organisation dispatched, 200 at 200/s, sqlite"
    assert dispatched.details["lost"] == 0 and dispatched.details["sent"] == 201
    assert dispatched.details["answers"] == {"202": 201}
    assert dispatched.value > 0 and dispatched.unit == "s"
    assert 0 < per_second.value <= 201 / 1.0 and per_second.unit == "/s"  # sent over 1 s
    assert cpu.value > 0 and cpu.unit == "ms"


@pytest.mark.postgres
async def test_the_simulation_builds_its_data_set_once_and_measures_it() -> None:
    url = postgres_or_skip()
    options = Options(postgres_url=url, size=2_000)
    try:
        built = {row.case: row for row in await run(["simulate"], options)}
        reused = {row.case: row for row in await run(["simulate"], options)}
    finally:
        await drop_database(url, f"{make_url(url).database}_sim2000")

    lookup = built["lookup p99, 2,000 projects"]
    assert lookup.unit == "ms" and lookup.goal == "< 1 ms" and lookup.value > 0
    # 5 upstreams each but project 0 and the first five, which have fewer below them
    assert 5 * 2_000 - 20 <= lookup.details["edges"] <= 5 * 2_000 - 15
    assert lookup.details["reused"] is False and lookup.details["subscribers_per_lookup"] > 1
    assert reused["lookup p99, 2,000 projects"].details["reused"] is True
    reads = built["fan-out reads, 200 downstreams, 2,000 projects"]
    assert (reads.details["subscribers"], reads.details["selected"]) == (200, 200)
    assert reads.details["their_upstreams"] >= 200  # each names project 0, most also others
    sizes = {case: row.value for case, row in built.items() if case.startswith("size of")}
    assert (
        sizes["size of subscriptions, 2,000 projects"]
        > sizes["size of ix_subscriptions_upstream, 2,000 projects"]
        > 0
    )


async def test_without_postgresql_the_simulation_says_why_it_did_not_run() -> None:
    (row,) = await run(["simulate"], Options(size=2_000))

    assert row.details["not_run"].startswith("no PostgreSQL")
    assert "not run" in table([row])


async def drop_database(url: str, name: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
