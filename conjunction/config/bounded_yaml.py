"""YAML loading whose cost is bounded by the text, whatever the text holds.

PyYAML's safe loader with its composer checked as the document is built: nesting depth, number
of values and characters of scalar text are counted with every alias expanded (so a small file of
aliases cannot stand for a huge document), an alias may not sit inside the node it names, and a
key may not appear twice in one mapping. A plain key is text (`on:` is "on", not YAML 1.1's
true). Values that the safe constructor cannot build (a 13th month, an integer of more digits
than Python converts) are YAML errors at their line, not crashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import ConstructorError

MAX_DEPTH = 20
MAX_NODES = 10_000
MAX_TEXT = 64 * 1024  # characters of scalar text: as much as the largest accepted file holds
BOOL_TAG, STR_TAG = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:str"


class Refused(yaml.YAMLError):
    """The document is valid YAML but over a limit, or repeats a key."""

    def __init__(self, mark: Any, path: list[str | int | None], message: str) -> None:
        super().__init__(message)
        self.line = mark.line + 1
        self.path = tuple(part for part in path if part is not None)
        self.message = message


@dataclass(frozen=True)
class _Extent:
    """What one anchored node weighs, repeated by each alias to it."""

    nodes: int
    text: int
    levels: int


class BoundedLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        # keys of the nodes being composed, from the root down (None for the root and for keys)
        self._path: list[str | int | None] = []
        self._nodes = 0
        self._text = 0
        self._deepest = 0
        self._extents: dict[str, _Extent] = {}
        # for each mapping being composed, where each of its keys was first written
        self._keys: list[dict[tuple[str, str], Any]] = []

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)  # refuses an undefined alias
            self._repeat(event)
        else:
            node = self._compose_counted(event, parent, index)
        if index is None and isinstance(parent, yaml.MappingNode):
            self._check_key(node, event.start_mark)
        return node

    def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:
        self._keys.append({})
        node = super().compose_mapping_node(anchor)
        self._keys.pop()
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception:
            # the safe constructors trust the resolver and the tags: `!!int ''`, `2001-13-01` and
            # 5,000 digits fail deep inside them with IndexError, ValueError, AttributeError, ...
            what = "this value"
            if isinstance(node, yaml.ScalarNode):
                what = repr(node.value if len(node.value) <= 40 else node.value[:37] + "...")
            problem = f"cannot read {what} as {node.tag.rpartition(':')[2]}"
            raise ConstructorError(None, None, problem, node.start_mark) from None

    def _compose_counted(
        self, event: yaml.Event, parent: yaml.Node | None, index: Any
    ) -> yaml.Node | None:
        if len(self._path) >= MAX_DEPTH:
            raise Refused(event.start_mark, self._path, f"nested deeper than {MAX_DEPTH} levels")
        nodes_before, text_before, deepest_outside = self._nodes, self._text, self._deepest
        text = len(event.value) if isinstance(event, yaml.ScalarEvent) else 0
        self._count(event.start_mark, 1, text)
        self._path.append(_key(index))
        self._deepest = depth = len(self._path)
        node = super().compose_node(parent, index)
        self._path.pop()
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            levels = self._deepest - depth + 1
            self._extents[anchor] = _Extent(
                self._nodes - nodes_before, self._text - text_before, levels
            )
        self._deepest = max(self._deepest, deepest_outside)
        return node

    def _check_key(self, key: yaml.Node | None, mark: Any) -> None:
        if not isinstance(key, yaml.ScalarNode):
            return
        if key.tag == BOOL_TAG and key.style is None:
            key.tag = STR_TAG  # a plain `on:` is the key "on", not True (YAML 1.1's booleans)
        first = self._keys[-1].setdefault((key.tag, key.value), mark)
        if first is not mark:
            message = f"duplicate key {key.value!r}, first on line {first.line + 1}"
            raise Refused(mark, [*self._path, key.value], message)

    def _repeat(self, alias: yaml.AliasEvent) -> None:
        extent = self._extents.get(alias.anchor or "")
        if extent is None:
            message = f"alias *{alias.anchor} is inside the node it names"
            raise Refused(alias.start_mark, self._path, message)
        self._count(alias.start_mark, extent.nodes, extent.text)
        self._deepest = max(self._deepest, len(self._path) + extent.levels)
        if self._deepest > MAX_DEPTH:
            message = f"nested deeper than {MAX_DEPTH} levels once aliases are expanded"
            raise Refused(alias.start_mark, self._path, message)

    def _count(self, mark: Any, nodes: int, text: int) -> None:
        self._nodes += nodes
        self._text += text
        if self._nodes > MAX_NODES:
            message = f"more than {MAX_NODES} values, counting what each alias repeats"
            raise Refused(mark, self._path, message)
        if self._text > MAX_TEXT:
            message = f"more than {MAX_TEXT} characters of text, counting what each alias repeats"
            raise Refused(mark, self._path, message)


def _key(index: Any) -> str | int | None:
    """The name of a node in its parent: a list position, a mapping's key, None for keys."""
    if isinstance(index, int):
        return index
    if isinstance(index, yaml.ScalarNode):
        return str(index.value)
    return None


def load(text: str) -> tuple[Any, yaml.Node | None]:
    """The one document in `text`, and its root node for finding lines; None for an empty text."""
    loader = BoundedLoader(text)
    try:
        root = loader.get_single_node()
        return (loader.construct_document(root) if root is not None else None), root
    finally:
        loader.dispose()
