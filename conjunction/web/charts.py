"""Small bar charts drawn as SVG on the server: one bar per upstream success or run, oldest on the
left, each with its own title and link, and a dashed line at the median when there is one."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

WIDTH = 600
HEIGHT = 140
AXIS = 44  # room on the left for the scale
GAP = 2


@dataclass(frozen=True)
class Point:
    value: float | None  # None: nothing to draw yet (still running)
    kind: str  # a CSS class: passed, failed, mixed, running
    title: str
    href: str | None = None


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str
    title: str
    href: str | None


@dataclass(frozen=True)
class Chart:
    label: str  # what the chart shows, for people who cannot see it
    bars: tuple[Bar, ...]
    top_label: str
    median_y: float | None
    median_label: str
    width: int = WIDTH
    height: int = HEIGHT
    axis: int = AXIS


def bar_chart(
    label: str,
    points: Sequence[Point],
    *,
    ceiling: float | None = None,
    text: Callable[[float], str] = str,
    median: bool = False,
) -> Chart:
    """Bars scaled to `ceiling` (default: the largest value)."""
    values = [point.value for point in points if point.value is not None]
    top = ceiling if ceiling is not None else max(values, default=0.0)
    slot = (WIDTH - AXIS) / max(len(points), 1)
    bars = []
    for index, point in enumerate(points):
        value = point.value if point.value is not None else 0.0
        height = HEIGHT * value / top if top > 0 else 0.0
        if point.value is None:
            height = HEIGHT * 0.04  # a stub, so a running one is seen
        bars.append(
            Bar(
                x=AXIS + index * slot + GAP / 2,
                y=HEIGHT - height,
                width=max(slot - GAP, 1.0),
                height=height,
                kind=point.kind,
                title=point.title,
                href=point.href,
            )
        )
    middle = statistics.median(values) if median and values else None
    return Chart(
        label=label,
        bars=tuple(bars),
        top_label=text(top),
        median_y=HEIGHT - HEIGHT * middle / top if middle is not None and top > 0 else None,
        median_label=text(middle) if middle is not None else "",
    )
