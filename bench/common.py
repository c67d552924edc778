"""What every section of the benchmark suite shares: its options and the rows it measures.

A section is a module of `bench` with `async def run(options: Options) -> list[Row]`; each row
is one figure, printed beside its goal (or its floor) in the table `python -m bench` prints.
"""

from __future__ import annotations

import os
import resource
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from testkit.databases import reset_postgres

DEFAULT_LATENCY = 0.05  # seconds the fake forge takes to answer every call


@dataclass(frozen=True)
class Options:
    latency: float = DEFAULT_LATENCY
    postgres_url: str | None = None  # its `public` schema is dropped and recreated
    quick: bool = False  # the smallest sizes: a check that every section runs, not figures
    full: bool = False  # the sizes of the goals even where they take longer than 10 minutes
    size: int | None = None  # projects in the simulate section's data set (default 1,000,000)

    @property
    def databases(self) -> list[str]:
        """`sqlite`, and `postgres` when a PostgreSQL URL is given."""
        return ["sqlite", "postgres"] if self.postgres_url else ["sqlite"]


@dataclass
class Row:
    """One figure: `value` in `unit`, against a `goal` in words and whether it was `met`
    (None: no goal, only a figure). `floor` is the least the case allows, where one exists."""

    section: str
    case: str
    value: float
    unit: str
    goal: str = ""
    met: bool | None = None
    floor: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return self.value / self.floor if self.floor else None

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def table(rows: list[Row]) -> str:
    """The rows as one aligned text table."""
    header = ("section", "case", "value", "floor", "ratio", "goal", "met")
    lines = [
        (
            row.section,
            row.case,
            _value(row),
            "" if row.floor is None else _number(row.floor),
            "" if row.ratio is None or "not_run" in row.details else f"{row.ratio:.2f}x",
            row.goal,
            {True: "yes", False: "MISSED", None: ""}[row.met],
        )
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
        for cells in [header, *lines]
    )


def _value(row: Row) -> str:
    return "not run" if "not_run" in row.details else f"{_number(row.value)} {row.unit}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """The peak resident memory of this process (or its waited-for children), in MB."""
    return resource.getrusage(who).ru_maxrss / 1024


def percentile(values: list[float], fraction: float) -> float:
    """The value below which `fraction` of values lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def fresh_database(database: str, options: Options, folder: Path) -> str:
    """The URL of an empty database: SQLite in folder, or the options' PostgreSQL with its
    `public` schema dropped and recreated."""
    if database == "postgres" and options.postgres_url:
        await reset_postgres(options.postgres_url)
        return options.postgres_url
    return f"sqlite:///{folder / 'conjunction.db'}"


def postgres_url_from_env() -> str | None:
    return os.environ.get("CONJUNCTION_BENCH_POSTGRES_URL") or os.environ.get(
        "CONJUNCTION_TEST_POSTGRES_URL"
    )
