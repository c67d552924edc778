"""The dependency graph as a picture: upstreams on the left, their downstreams in layers to the
right, laid out by grandalf's Sugiyama layout (few edge crossings, cycles allowed).

`neighbourhood` keeps the projects within a few links of one project, so that one project's
corner of a few hundred stays readable; `layout` places what is left, setting a layer of
hundreds in several columns.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from grandalf.graphs import Edge, Graph, Vertex
from grandalf.layouts import SugiyamaLayout

from conjunction.badges import text_width
from conjunction.views.labels import short_labels

NODE_HEIGHT = 30
NODE_GAP = 12  # between nodes of one layer
LAYER_GAP = 120  # between layers: room for an edge to show its dash style
MARGIN = 16
LABEL_PADDING = 20
ISOLATED_COLUMNS = 4  # projects with no link are set in a grid below the rest
LAYER_ROWS = 24  # a longer layer is set in several columns


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
    # a node shows its short label (the repository's name, more where two collide); its full
    # name is in its title
    labels = short_labels(names)
    widths = {name: float(text_width(labels[name]) + LABEL_PADDING) for name in names}
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
    components = [
        _place_component(component, widths) for component in graph.C if len(component.sV) > 1
    ]
    isolated = sorted(component.sV[0].data for component in graph.C if len(component.sV) == 1)
    placed: dict[str, tuple[float, float]] = {}  # centre, on the page
    paths: list[PlacedEdge] = []
    bottom = float(MARGIN)
    for (dx, dy), (centres, routes) in _shelves(components, widths):
        placed.update({name: (x + dx, y + dy) for name, (x, y) in centres.items()})
        for up, down, points in routes:
            paths.append(_edge(up, down, [(x + dx, y + dy) for x, y in points], widths))
        bottom = max(bottom, max(y + dy for _, y in centres.values()) + NODE_HEIGHT / 2)
    top = bottom + (LAYER_GAP / 2 if components else 0.0)
    column_width = max((widths[name] for name in isolated), default=0) + NODE_GAP
    for index, name in enumerate(isolated):
        row, column = divmod(index, ISOLATED_COLUMNS)
        placed[name] = (
            MARGIN + column * column_width + widths[name] / 2,
            top + row * (NODE_HEIGHT + NODE_GAP) + NODE_HEIGHT / 2,
        )
    nodes = tuple(
        PlacedNode(name, labels[name], x - widths[name] / 2, y - NODE_HEIGHT / 2, widths[name])
        for name, (x, y) in placed.items()
    )
    width = max((node.x + node.width for node in nodes), default=0) + MARGIN
    height = max((node.y + node.height for node in nodes), default=0) + MARGIN
    return Drawing(nodes, tuple(paths), width, height)


Route = tuple[str, str, list[tuple[float, float]]]
Component = tuple[dict[str, tuple[float, float]], list[Route]]  # centres and edges from (0, 0)


def _place_component(component: Graph, widths: dict[str, float]) -> Component:
    """One connected part of the graph by grandalf's Sugiyama layout, turned a quarter:
    grandalf's y (its layers) is the page's x."""
    sugiyama = SugiyamaLayout(component)
    sugiyama.xspace, sugiyama.yspace = NODE_GAP, LAYER_GAP
    sugiyama.init_all()
    sugiyama.draw()
    left = min(v.view.xy[1] - v.view.h / 2 for v in component.sV)
    upper = min(v.view.xy[0] - v.view.w / 2 for v in component.sV)
    centres = {
        vertex.data: (vertex.view.xy[1] - left, vertex.view.xy[0] - upper)
        for vertex in component.sV
    }
    wrapped = _wrap_long_layers(centres, widths)
    routes = [
        (
            edge.v[0].data,
            edge.v[1].data,
            [wrapped[edge.v[0].data], wrapped[edge.v[1].data]]
            if wrapped
            else [(along - left, across - upper) for across, along in edge.view.points],
        )
        for edge in component.sE
    ]
    return wrapped or centres, routes


def _shelves(
    components: list[Component], widths: dict[str, float]
) -> list[tuple[tuple[float, float], Component]]:
    """Many separate parts are set side by side in rows (tallest first), so that together they
    are about as wide as tall rather than one long column; each with its offset."""
    sized = []
    for component in components:
        centres = component[0]
        right = max(x + widths[name] / 2 for name, (x, _) in centres.items())
        below = max(y for _, y in centres.values()) + NODE_HEIGHT / 2
        sized.append((right, below, component))
    sized.sort(key=lambda item: -item[1])
    area = sum((right + LAYER_GAP) * (below + LAYER_GAP) for right, below, _ in sized)
    row_width = max([math.sqrt(area) * 1.5, *(right for right, _, _ in sized)])
    placed = []
    x, y, row_height = float(MARGIN), float(MARGIN), 0.0
    for right, below, component in sized:
        if x > MARGIN and x + right > MARGIN + row_width:
            x, y, row_height = float(MARGIN), y + row_height + LAYER_GAP / 2, 0.0
        placed.append(((x, y), component))
        x += right + LAYER_GAP
        row_height = max(row_height, below)
    return placed


def _wrap_long_layers(
    centres: dict[str, tuple[float, float]], widths: dict[str, float]
) -> dict[str, tuple[float, float]] | None:
    """With a few hundred projects one layer can hold hundreds: such a layer is set in several
    columns of at most LAYER_ROWS, in the layout's order, and every layer is stacked from the
    top, so the picture stays about as wide as tall. None when no layer is that long (the
    layout stands as it is)."""
    layers: dict[int, list[str]] = {}
    for name, (x, _) in centres.items():
        layers.setdefault(round(x), []).append(name)
    if max(len(names) for names in layers.values()) <= LAYER_ROWS:
        return None
    wrapped: dict[str, tuple[float, float]] = {}
    left = 0.0
    for x in sorted(layers):
        names = sorted(layers[x], key=lambda name: centres[name][1])
        columns = math.ceil(len(names) / LAYER_ROWS)
        rows = math.ceil(len(names) / columns)
        column_width = max(widths[name] for name in names) + NODE_GAP * 2
        for index, name in enumerate(names):
            column, row = divmod(index, rows)
            wrapped[name] = (
                left + column * column_width + column_width / 2,
                row * (NODE_HEIGHT + NODE_GAP) + NODE_HEIGHT / 2,
            )
        left += columns * column_width + LAYER_GAP
    return wrapped


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
