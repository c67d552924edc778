"""The subscription graph as this process has read it, kept until it changes.

Planning a fan-out reads the graph around it: the subscribers of the upstream, and the
downstreams and declared upstreams of every project a chain may reach, to tell a diamond's
bottom that must wait. For a fan-out to a thousand downstreams that is thousands of rows, read
again for every success although the graph changes only when a config does.

Every change to `subscriptions`, and to a project's name or `active`, bumps the one row of
`graph_version` in its own transaction: database triggers do it (migration
`0013_graph_version`), so every writer counts — indexing, the CLI, a restore. A planning
transaction reads the version first; a version other than the cache's empties the cache. What
is read after it is kept under that version, and only while the cache still has it: a row read
after the version can be newer than the version (another transaction committed in between),
never older, and a newer version empties it at the next read. Each replica keeps its own cache
and the shared version keeps them right.

Each of the cache's maps holds at most a budget of projects (or subscribers) and starts over
when full: plain dicts, as a fan-out to a thousand downstreams asks for thousands of entries at
once (an LRU's bookkeeping cost more than the reads it saved). A graph that changes every
second is read as if there were no cache, plus the one row of the version.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Generic, TypeVar

from sqlalchemy import Select, Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from conjunction.engine.chains import has_cycle
from conjunction.engine.rows import fetch_all, key_rows, keys_param
from conjunction.engine.subscriptions import Candidate, subscribers
from conjunction.models import GraphVersion, Subscription

IN_LIMIT = 10_000  # keys bound in one `IN (…)`
PROJECTS = 20_000  # projects kept in each of the graph's maps: about 16 MB
CANDIDATES = 10_000  # subscribers kept, over every upstream: about 18 MB
V = TypeVar("V")
N = TypeVar("N", tuple[str, ...], frozenset[str])  # the neighbours of a project, as kept
VERSION = select(GraphVersion.version)  # its one row


@dataclass
class Kept(Generic[V]):
    """A map of what was read, holding up to `budget` (projects, or subscribers) and starting
    over when full."""

    budget: int
    entries: dict[str, V] = field(default_factory=dict)
    used: int = 0
    acyclic: int | None = None  # how many entries there were when they held no loop

    def add(self, read: dict[str, V], weight: int) -> None:
        if self.used + weight > self.budget:
            self.entries, self.used, self.acyclic = {}, 0, None
        if weight <= self.budget:
            self.entries.update(read)
            self.used += weight


@dataclass
class GraphCache:
    """What this process read of the graph, under the version it was read at."""

    projects: int = PROJECTS
    candidates: int = CANDIDATES
    version: int | None = None
    downstreams: Kept[tuple[str, ...]] = field(init=False)
    upstreams: Kept[frozenset[str]] = field(init=False)
    subscribers: Kept[tuple[Candidate, ...]] = field(init=False)

    def __post_init__(self) -> None:
        self._empty(None)

    async def view(self, session: AsyncSession) -> GraphView:
        """The graph as this transaction sees it: the version first, then what it asks."""
        rows = await fetch_all(session, VERSION, {})
        version = rows[0][0] if rows else None  # its row deleted by hand: nothing is kept
        if version is None or version != self.version:
            self._empty(version)
        return GraphView(self, session, version)

    def _empty(self, version: int | None) -> None:
        self.version = version
        self.downstreams = Kept(self.projects)
        self.upstreams = Kept(self.projects)
        self.subscribers = Kept(self.candidates)


@dataclass(frozen=True)
class GraphView:
    """One transaction's reads of the graph, through the cache."""

    cache: GraphCache
    session: AsyncSession
    version: int | None

    async def subscribers(self, key: str) -> list[Candidate]:
        """The active downstreams subscribed to the upstream `key`, in the order they subscribed."""
        found = self.cache.subscribers.entries.get(key)
        if found is None:
            found = tuple(await subscribers(self.session, key))
            if self._current():
                self.cache.subscribers.add({key: found}, weight=len(found))
        return list(found)

    async def downstreams(self, keys: Collection[str]) -> dict[str, tuple[str, ...]]:
        """The projects subscribed to each of these (active or not), in one query for those
        not kept yet."""
        return await self._neighbours(self.cache.downstreams, keys, upward=False, made=tuple)

    async def upstreams(self, keys: Collection[str]) -> dict[str, frozenset[str]]:
        """The upstreams each of these projects declares."""
        return await self._neighbours(self.cache.upstreams, keys, upward=True, made=frozenset)

    async def _neighbours(
        self, kept: Kept[N], keys: Collection[str], *, upward: bool, made: type[N]
    ) -> dict[str, N]:
        found = {key: kept.entries[key] for key in keys if key in kept.entries}
        wanted = [key for key in keys if key not in found]
        if wanted:
            read = dict.fromkeys(wanted, made())
            for key, neighbours in await _read_neighbours(self.session, wanted, upward=upward):
                read[key] = made(neighbours)
            if self._current():
                kept.add(read, weight=len(read))
            found.update(read)
        return found

    def _current(self) -> bool:
        """Whether the cache still holds the version this view read (a newer one empties it)."""
        return self.version is not None and self.cache.version == self.version

    async def acyclic(self, keys: Collection[str]) -> bool:
        """Whether the downstreams of these projects, as this view read them, hold no loop.
        True when the whole kept graph has none: checked in a thread each time it grew, then
        known until it grows again (a loop check of thousands of projects costs tens of
        milliseconds). False when unknown."""
        downstreams = self.cache.downstreams
        if not self._current() or not all(key in downstreams.entries for key in keys):
            return False
        if downstreams.acyclic == len(downstreams.entries):  # it only grows until it starts over
            return True
        whole = dict(downstreams.entries)
        if await asyncio.to_thread(has_cycle, whole):
            return False
        if self._current() and whole.keys() == downstreams.entries.keys():
            downstreams.acyclic = len(whole)
        return True


async def _read_neighbours(
    session: AsyncSession, keys: Iterable[str], *, upward: bool
) -> list[tuple[str, list[str]]]:
    """(key, neighbours) for each of these projects with a subscription: its upstreams
    (`upward`) or its downstreams, a JSON array a row. The keys are bound as one JSON array
    (`rows.key_rows`), `IN_LIMIT` of them a statement: a level of a large graph can hold more
    keys than one statement should carry."""
    connection = await session.connection()
    statement = _neighbours_statement(connection.dialect.name, upward)
    keys = list(keys)
    found: list[tuple[str, list[str]]] = []
    for start in range(0, len(keys), IN_LIMIT):
        part = keys_param(keys[start : start + IN_LIMIT])
        rows = await fetch_all(session, statement, {"keys": part})
        found += [(key, json.loads(neighbours)) for key, neighbours in rows]
    return found


@cache
def _neighbours_statement(dialect: str, upward: bool) -> Select[str, str]:
    near, far = Subscription.downstream, Subscription.upstream
    if not upward:
        near, far = far, near
    neighbours = (
        func.json_group_array(far) if dialect == "sqlite" else cast(func.json_agg(far), Text)
    )
    return select(near, neighbours).where(near.in_(key_rows(dialect))).group_by(near)
