"""The benchmark suite still runs: each section at its smallest size, on SQLite.

Figures are never asserted (the machines are shared and noisy); what is checked is that every
section measures what it says, loses nothing and reports each figure beside its goal.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench.__main__ import run
from bench.common import Options, table

pytestmark = pytest.mark.faults  # real servers, as the fault suites run them
ROOT = Path(__file__).parent.parent


async def test_each_section_measures_at_its_smallest_size() -> None:
    rows = await run(["intake", "fanout", "scale"], Options(quick=True))

    by_case = {(row.section, row.case): row for row in rows}
    intake = by_case["intake", "sqlite"]
    assert intake.details["lost"] == 0 and intake.details["accepted"] == intake.details["sent"]
    assert intake.value > 0 and intake.goal
    fanout = by_case["fanout", "sqlite N=10 over 1"]
    assert fanout.floor is not None and fanout.value > fanout.floor > 0  # nothing beats it
    assert fanout.details["limit_errors"] == 0
    calls = by_case["fanout", "sqlite N=10 over 1: API calls"]
    assert calls.value >= 10 + 4  # every dispatch, and the upstream commit's report
    assert by_case["verdict", "sqlite N=10 over 1"].details["reports"] >= 1
    lookup = by_case["scale", "lookup p99, sqlite"]
    assert lookup.value > 0 and lookup.unit == "ms" and lookup.goal == "< 2 ms"
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
