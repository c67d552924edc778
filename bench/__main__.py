"""The benchmark suite: every section against fake forges on loopback, one table, one JSON file.

    scripts/bench [--only fanout,scale] [--latency 0.05] [--quick | --full] [--size N]
                  [--json bench.json]

PostgreSQL figures are measured when CONJUNCTION_BENCH_POSTGRES_URL (or
CONJUNCTION_TEST_POSTGRES_URL, or --postgres-url) names a database: its `public` schema is
dropped and recreated. What each figure means and what sets its floor: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime

from bench.common import DEFAULT_LATENCY, Options, Row, postgres_url_from_env, table

SECTIONS = ("intake", "fanout", "scale", "replicas", "bisect", "burst", "simulate")


async def run(sections: list[str], options: Options) -> list[Row]:
    rows: list[Row] = []
    for name in sections:
        started = time.perf_counter()
        print(f"-- {name} …", file=sys.stderr, flush=True)
        section = importlib.import_module(f"bench.{name}")
        rows += await section.run(options)
        took = time.perf_counter() - started
        print(f"-- {name}: {took:.0f} s", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--latency", type=float, default=DEFAULT_LATENCY)
    parser.add_argument("--postgres-url", default=postgres_url_from_env())
    parser.add_argument("--quick", action="store_true", help="smallest sizes, to check it runs")
    parser.add_argument("--full", action="store_true", help="the goals' sizes, however long")
    parser.add_argument("--size", type=int, help="projects in the simulate section's data set")
    parser.add_argument("--json", dest="out", default="bench.json")
    arguments = parser.parse_args()
    sections = arguments.only.split(",") if arguments.only else list(SECTIONS)
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)}; the sections are {SECTIONS}")
    options = Options(
        arguments.latency, arguments.postgres_url, arguments.quick, arguments.full, arguments.size
    )
    rows = asyncio.run(run(sections, options))
    print(table(rows))
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "options": {"latency": options.latency, "databases": options.databases},
        "rows": [row.as_json() for row in rows],
    }
    with open(arguments.out, "w") as file:
        json.dump(report, file, indent=2)
    print(f"written: {arguments.out}")


if __name__ == "__main__":
    main()
