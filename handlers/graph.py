"""The dependency graph as a picture: upstreams on the left, their downstreams in layers to the
right, laid out by grandalf's Sugiyama layout (few edge crossings, cycles allowed).

`neighbourhood` keeps the projects within a few links of one project, so that one project's
corner of a few hundred stays readable; `layout` places what is left.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from grandalf.graphs import Edge, Graph, Vertex
from grandalf.layouts import SugiyamaLayout

from bot.badges import text_width

NODE_HEIGHT = 30
NODE_GAP = 12  # between nodes of one layer
LAYER_GAP = 70  # between layers
MARGIN = 16
LABEL_PADDING = 20
ISOLATED_COLUMNS = 4  # projects with no link are set in a grid below the rest


@dataclass(frozen=True)
class PlacedNode:
    name: str
    label: str
    x: float  # top left
    y: float
    width: float
    height: float = NODE_HEIGHT


@dataclass(frozen=True)
class PlacedEdge:
    upstream: str
    downstream: str
    path: str  # SVG path data


@dataclass(frozen=True)
class Drawing:
    nodes: tuple[PlacedNode, ...]
    edges: tuple[PlacedEdge, ...]
    width: float
    height: float


def label(name: str) -> str:
    """A node shows the project's path; its full name is in the node's title."""
    return name.partition("/")[2] or name


def neighbourhood(
    focus: str, edges: Iterable[tuple[str, str]], depth: int
) -> tuple[set[str], list[tuple[str, str]]]:
    """The projects at most `depth` links up or down from `focus`, and the edges among them."""
    edges = list(edges)
    downstream: dict[str, set[str]] = {}
    upstream: dict[str, set[str]] = {}
    for up, down in edges:
        downstream.setdefault(up, set()).add(down)
        upstream.setdefault(down, set()).add(up)
    kept = {focus}
    for links in (downstream, upstream):
        frontier = {focus}
        for _ in range(depth):
            frontier = {near for name in frontier for near in links.get(name, ())} - kept
            kept |= frontier
    return kept, [(up, down) for up, down in edges if up in kept and down in kept]


class _Box:
    """What grandalf places. The drawing is turned a quarter: grandalf stacks layers from top to
    bottom, so a node's width along its layer is its height on the page, and the reverse."""

    def __init__(self, width: float) -> None:
        self.w = NODE_HEIGHT
        self.h = width
        self.xy = (0.0, 0.0)


class _Route:
    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []

    def setpath(self, points: list[tuple[float, float]]) -> None:
        self.points = points


def layout(names: Sequence[str], edges: Sequence[tuple[str, str]]) -> Drawing:
    """Place every project and draw every edge (cached: the same graph is drawn once)."""
    return _layout(tuple(sorted(names)), tuple(sorted(edges)))


@lru_cache(maxsize=32)
def _layout(names: tuple[str, ...], edges: tuple[tuple[str, str], ...]) -> Drawing:
    widths = {name: float(text_width(label(name)) + LABEL_PADDING) for name in names}
    vertices = {name: Vertex(name) for name in names}
    for name, vertex in vertices.items():
        vertex.view = _Box(widths[name])
    links = []
    for up, down in edges:
        if up != down and up in vertices and down in vertices:
            edge = Edge(vertices[up], vertices[down])
            edge.view = _Route()
            links.append(edge)
    graph = Graph(list(vertices.values()), links)
    placed: dict[str, tuple[float, float]] = {}  # centre, on the page
    paths: list[PlacedEdge] = []
    top = float(MARGIN)
    isolated = []
    for component in graph.C:
        if len(component.sV) == 1:
            isolated.append(component.sV[0].data)
            continue
        sugiyama = SugiyamaLayout(component)
        sugiyama.xspace, sugiyama.yspace = NODE_GAP, LAYER_GAP
        sugiyama.init_all()
        sugiyama.draw()
        # turned a quarter: grandalf's y (layers) is the page's x
        left = min(v.view.xy[1] - v.view.h / 2 for v in component.sV)
        upper = min(v.view.xy[0] - v.view.w / 2 for v in component.sV)
        for vertex in component.sV:
            across, along = vertex.view.xy
            placed[vertex.data] = (MARGIN + along - left, top + across - upper)
        for edge in component.sE:
            points = [
                (MARGIN + along - left, top + across - upper) for across, along in edge.view.points
            ]
            paths.append(_edge(edge.v[0].data, edge.v[1].data, points, widths))
        top = max(y for x, y in placed.values()) + NODE_HEIGHT / 2 + LAYER_GAP / 2
    column_width = max((widths[name] for name in isolated), default=0) + NODE_GAP
    for index, name in enumerate(sorted(isolated)):
        row, column = divmod(index, ISOLATED_COLUMNS)
        placed[name] = (
            MARGIN + column * column_width + widths[name] / 2,
            top + row * (NODE_HEIGHT + NODE_GAP) + NODE_HEIGHT / 2,
        )
    nodes = tuple(
        PlacedNode(name, label(name), x - widths[name] / 2, y - NODE_HEIGHT / 2, widths[name])
        for name, (x, y) in placed.items()
    )
    width = max((node.x + node.width for node in nodes), default=0) + MARGIN
    height = max((node.y + node.height for node in nodes), default=0) + MARGIN
    return Drawing(nodes, tuple(paths), width, height)


def _edge(
    up: str, down: str, points: list[tuple[float, float]], widths: dict[str, float]
) -> PlacedEdge:
    """From the upstream's right side to the downstream's left, through the layout's bends, as
    smooth curves leaving and entering each point level."""
    if not points:
        return PlacedEdge(up, down, "")
    (x0, y0), (x1, y1) = points[0], points[-1]
    forward = x1 >= x0
    points[0] = (x0 + widths[up] / 2 * (1 if forward else -1), y0)
    points[-1] = (x1 - widths[down] / 2 * (1 if forward else -1), y1)
    path = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
    for (ax, ay), (bx, by) in itertools.pairwise(points):
        bend = (bx - ax) / 2
        path.append(f"C{ax + bend:.1f},{ay:.1f} {bx - bend:.1f},{by:.1f} {bx:.1f},{by:.1f}")
    return PlacedEdge(up, down, " ".join(path))
