"""Build-time figures: how long downstream pipelines take, and what that says about one that runs.

Durations are a trigger event's `finished_at - started_at` (started: when its pipeline was
started). The estimate for a running pipeline is its pair's median less the time it has run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from conjunction.models import Event
from conjunction.names import project_key
from conjunction.results import Result

SAMPLES = 30  # the latest runs of each pair that figures are drawn from

Pair = tuple[str, str]  # (upstream key, downstream key)


@dataclass(frozen=True)
class Figures:
    runs: int
    median: float
    p90: float

    def json(self) -> dict[str, float | int]:
        return {
            "runs": self.runs,
            "median_seconds": round(self.median, 1),
            "p90_seconds": round(self.p90, 1),
        }


def figures(seconds: Iterable[float]) -> Figures | None:
    """Median and 90th percentile (nearest rank) of some durations; None without any."""
    ordered = sorted(seconds)
    if not ordered:
        return None
    rank = max(math.ceil(0.9 * len(ordered)) - 1, 0)
    return Figures(len(ordered), statistics.median(ordered), ordered[rank])


def duration(event: Event) -> float | None:
    if event.started_at is None or event.finished_at is None:
        return None
    return max((event.finished_at - event.started_at).total_seconds(), 0.0)


def remaining(typical: Figures | None, started_at: datetime | None, now: datetime) -> float | None:
    """Seconds a running pipeline probably still needs: its pair's median less what it ran."""
    if typical is None or started_at is None:
        return None
    return max(typical.median - (now - started_at).total_seconds(), 0.0)


def time_left(seconds: float) -> str:
    """`about 12 min left`, for a status description and a page."""
    if seconds < 60:
        return "less than a minute left"
    return f"about {math.ceil(seconds / 60)} min left"


async def pair_durations(session: AsyncSession, pairs: Iterable[Pair]) -> dict[Pair, Figures]:
    """Figures of the latest finished runs of each (upstream, downstream) pair."""
    wanted = set(pairs)
    if not wanted:
        return {}
    rows = await session.execute(
        select(Event.upstream, Event.project, Event.started_at, Event.finished_at)
        .where(
            Event.kind == "trigger",
            func.lower(Event.project).in_({downstream for _, downstream in wanted}),
            Event.result.is_not(None),
            Event.result != Result.SKIPPED,
            Event.started_at.is_not(None),
            Event.finished_at.is_not(None),
        )
        .order_by(Event.created_at.desc())
        .limit(SAMPLES * len(wanted) * 4)
    )
    samples: dict[Pair, list[float]] = {}
    for upstream, project, started_at, finished_at in rows:
        pair = (project_key(upstream or ""), project_key(project))
        if started_at is None or finished_at is None:
            continue
        if pair in wanted and len(samples.setdefault(pair, [])) < SAMPLES:
            samples[pair].append(max((finished_at - started_at).total_seconds(), 0.0))
    return {pair: found for pair, values in samples.items() if (found := figures(values))}
