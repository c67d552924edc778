"""Badges: the downstream pass rate of a project's latest upstream success, as an SVG in the flat
style of shields.io (drawn here, no external call) and as shields.io's endpoint JSON."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from conjunction.tally import Count

LABEL = "downstream"
# Verdana 11px advance widths (font units of 2048 per em, scaled), the font badges are drawn in.
_UNITS = {
    " ": 720, "%": 2178, "(": 932, ")": 932, ",": 727, "-": 842, ".": 727, "/": 1178,
    "0": 1302, "1": 1302, "2": 1302, "3": 1302, "4": 1302, "5": 1302, "6": 1302, "7": 1302,
    "8": 1302, "9": 1302, "a": 1227, "b": 1278, "c": 1067, "d": 1278, "e": 1219, "f": 720,
    "g": 1278, "h": 1296, "i": 562, "j": 680, "k": 1219, "l": 562, "m": 1992, "n": 1296,
    "o": 1250, "p": 1278, "q": 1278, "r": 874, "s": 1067, "t": 807, "u": 1296, "v": 1219,
    "w": 1675, "x": 1219, "y": 1219, "z": 1067,
}  # fmt: skip
_WIDE = 1400  # capitals and anything else: a generous width, so text never overflows
_PADDING = 10
_COLORS = {
    "brightgreen": "#4c1",
    "yellowgreen": "#a4a61d",
    "yellow": "#dfb317",
    "orange": "#fe7d37",
    "red": "#e05d44",
    "blue": "#007ec6",
    "lightgrey": "#9f9f9f",
}
_svg = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class Badge:
    message: str
    color: str  # a shields.io colour name

    def shields_json(self) -> dict[str, object]:
        """shields.io's endpoint schema (it accepts no other keys)."""
        return {"schemaVersion": 1, "label": LABEL, "message": self.message, "color": self.color}


def badge_of(latest: Count | None) -> Badge:
    """The latest upstream success's count in `conjunction.tally`'s words; its colour by the whole
    tree (a failure deeper down is not green)."""
    if latest is None or latest.tree.total == 0:
        return Badge("no downstream runs", "lightgrey")
    tree = latest.tree
    if not tree.settled:
        return Badge(latest.short(), "blue")
    ratio = tree.passed / tree.total
    if ratio == 1:
        color = "brightgreen"
    elif ratio >= 0.75:
        color = "yellowgreen"
    elif ratio >= 0.5:
        color = "yellow"
    elif ratio > 0:
        color = "orange"
    else:
        color = "red"
    return Badge(latest.short(), color)


def change(latest: Count | None, previous: Count | None) -> str | None:
    """`improved`, `broke` or `unchanged` against the previous upstream success, by how many of
    its tree did not pass."""
    if latest is None or previous is None or not latest.tree.settled:
        return None
    if not previous.tree.settled:
        return None
    now = latest.tree.total - latest.tree.passed
    before = previous.tree.total - previous.tree.passed
    if now > before:
        return "broke"
    return "improved" if now < before else "unchanged"


def text_width(text: str) -> int:
    return round(sum(_UNITS.get(char, _WIDE) for char in text) * 11 / 2048)


def svg(badge: Badge) -> str:
    label_width = text_width(LABEL) + _PADDING
    message_width = text_width(badge.message) + _PADDING
    return _svg.get_template("badge.svg").render(
        label=LABEL,
        message=badge.message,
        color=_COLORS[badge.color],
        label_width=label_width,
        message_width=message_width,
        width=label_width + message_width,
    )
