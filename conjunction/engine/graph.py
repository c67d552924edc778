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

Each of the cache's maps holds at most `size` projects and starts over when full: plain dicts,
as a fan-out to a thousand downstreams asks for thousands of entries at once (an LRU's
bookkeeping cost more than the reads it saved). A graph that changes every second is read as if
there were no cache, plus the one row of the version.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import TypeVar

from sqlalchemy import Select, Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from conjunction.engine.chains import has_cycle
from conjunction.engine.rows import fetch_all, key_rows, keys_param
from conjunction.engine.subscriptions import Candidate, subscribers
from conjunction.models import GraphVersion, Subscription

IN_LIMIT = 10_000  # keys bound in one `IN (…)`
SIZE = 100_000  # projects kept in each map before it starts over
N = TypeVar("N", tuple[str, ...], frozenset[str])  # the neighbours of a project, as kept
K = TypeVar("K")
VERSION = select(GraphVersion.version)  # its one row


@dataclass
class GraphCache:
    """What this process read of the graph, under the version it was read at."""

    size: int = SIZE
    version: int | None = None
    downstreams: dict[str, tuple[str, ...]] = field(init=False)
    upstreams: dict[str, frozenset[str]] = field(init=False)
    subscribers: dict[str, tuple[Candidate, ...]] = field(init=False)
    acyclic_size: int | None = field(init=False)  # len(downstreams) when it had no loop

    def __post_init__(self) -> None:
        self._empty(None)

    async def view(self, session: AsyncSession) -> GraphView:
        """The graph as this transaction sees it: the version first, then what it asks."""
        version = (await fetch_all(session, VERSION, {}))[0][0]
        if version != self.version:
            self._empty(version)
        return GraphView(self, session, version)

    def _empty(self, version: int | None) -> None:
        self.version = version
        self.downstreams, self.upstreams, self.subscribers = {}, {}, {}
        self.acyclic_size = None


@dataclass(frozen=True)
class GraphView:
    """One transaction's reads of the graph, through the cache."""

    cache: GraphCache
    session: AsyncSession
    version: int

    async def subscribers(self, key: str) -> list[Candidate]:
        """The active downstreams subscribed to the upstream `key`, in the order they subscribed."""
        found = self.cache.subscribers.get(key)
        if found is None:
            found = tuple(await subscribers(self.session, key))
            self._keep(self.cache.subscribers, {key: found})
        return list(found)

    async def downstreams(self, keys: Collection[str]) -> dict[str, tuple[str, ...]]:
        """The projects subscribed to each of these (active or not), in one query for those
        not kept yet."""
        return await self._neighbours(self.cache.downstreams, keys, upward=False, made=tuple)

    async def upstreams(self, keys: Collection[str]) -> dict[str, frozenset[str]]:
        """The upstreams each of these projects declares."""
        return await self._neighbours(self.cache.upstreams, keys, upward=True, made=frozenset)

    async def _neighbours(
        self,
        kept: dict[str, N],
        keys: Collection[str],
        *,
        upward: bool,
        made: type[N],
    ) -> dict[str, N]:
        found = {key: kept[key] for key in keys if key in kept}
        wanted = [key for key in keys if key not in found]
        if wanted:
            read = dict.fromkeys(wanted, made())
            for key, neighbours in await _read_neighbours(self.session, wanted, upward=upward):
                read[key] = made(neighbours)
            self._keep(kept, read)
            found.update(read)
        return found

    def _keep(self, kept: dict[str, K], read: dict[str, K]) -> None:
        if self.cache.version != self.version:
            return  # a newer version emptied the cache meanwhile
        if len(kept) + len(read) > self.cache.size:
            kept.clear()
            self.cache.acyclic_size = None
        kept.update(read)

    async def acyclic(self, keys: Collection[str]) -> bool:
        """Whether the downstreams of these projects, as this view read them, hold no loop.
        True when the whole kept graph has none: checked in a thread each time it grew, then
        known until it grows again (a loop check of thousands of projects costs tens of
        milliseconds). False when unknown."""
        cache = self.cache
        kept = cache.downstreams
        if cache.version != self.version or not all(key in kept for key in keys):
            return False
        if cache.acyclic_size == len(kept):
            return True
        whole = dict(kept)
        if await asyncio.to_thread(has_cycle, whole):
            return False
        if cache.version == self.version and len(kept) == len(whole):
            cache.acyclic_size = len(whole)
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
