"""Chains that explain themselves: where each project of one origin's chain stands, what a
downstream reached by several paths (a diamond) still waits for, and triggers that a newer
upstream success makes stale.

The decisions are pure functions (`state_of`, `reachable`, `waiting_on`); `Root` holds one
origin's chain as loaded under a lock on its origin event, so that two upstreams of a diamond
passing at the same moment start its bottom once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import texts
from bot.models import Event, Subscription, utcnow
from bot.names import project_key
from bot.results import Result, Verdict
from bot.runs import Step, TriggerState


class State(StrEnum):
    PASSED = "passed"
    PENDING = "pending"  # queued, running, or a failure being confirmed
    FAILED = "failed"  # ended without passing, or not run


def state_of(result: str | None, step: str | None, confirming: str | None) -> State | None:
    """Where one trigger event leaves its project in the chain; None for a run against another
    upstream commit than the origin's (a confirming re-run against the one the pair last passed
    with, a bisect step, a baseline), which says nothing about this origin."""
    if step in (Step.LAST_PASSED, Step.BISECT, Step.BASELINE):
        return None
    if result is None or confirming:
        return State.PENDING
    return State.PASSED if result == Result.SUCCESS else State.FAILED


def merged(states: Iterable[State]) -> State:
    """A project with several events in one chain (a failure and its re-run): any pass counts,
    then anything still under way."""
    found = set(states)
    for state in (State.PASSED, State.PENDING):
        if state in found:
            return state
    return State.FAILED


def reachable(
    downstreams: Mapping[str, Sequence[str]], start: Iterable[str], avoid: str, limit: int
) -> set[str]:
    """Projects reached from `start` (included) within `limit` links, never through `avoid`."""
    seen = {key for key in start if key != avoid}
    frontier = set(seen)
    for _ in range(limit):
        frontier = {
            below
            for key in frontier
            for below in downstreams.get(key, ())
            if below != avoid and below not in seen
        }
        if not frontier:
            break
        seen |= frontier
    return seen


def waiting_on(
    upstreams: Iterable[str], states: Mapping[str, State], will_run: set[str]
) -> list[str]:
    """The upstreams a downstream still waits for: those on a path from the origin that are
    under way, or that have not run yet but will (a failed one's fallout skips the downstream)."""
    return sorted(
        key
        for key in upstreams
        if states.get(key) is State.PENDING or (key not in states and key in will_run)
    )


def fallout_reason(project: str, result: str | None) -> str:
    """`upstream github.com/acme/b failed`, said of the downstreams that will not run."""
    ended = {
        Result.FAILURE: "failed",
        Result.ERROR: "failed",
        Result.TIMED_OUT: "timed out",
        Result.CANCELLED: "was cancelled",
        Result.SKIPPED: "was skipped",
    }
    return f"upstream {project} {ended.get(Result(result), 'failed') if result else 'failed'}"


@dataclass
class Root:
    """One origin's chain: its origin event (locked) and where each project in it stands."""

    event: Event
    states: dict[str, State] = field(default_factory=dict)
    triggered: set[str] = field(default_factory=set)  # every project with an event in it
    graph: dict[str, list[str]] = field(default_factory=dict)  # downstreams, loaded as needed
    upstreams: dict[str, set[str]] = field(default_factory=dict)  # loaded as needed
    # what `reached` found last, for the graph as loaded then
    _reach: tuple[tuple[frozenset[str], int, int], set[str]] | None = None
    _cyclic: tuple[int, bool] | None = None

    @property
    def waiting(self) -> dict[str, str]:
        """Diamond bottoms not started yet: project key -> the event to start it under."""
        return dict(self.event.waiting or {})

    def wait(self, key: str, source_id: str) -> None:
        self.event.waiting = {**self.waiting, key: source_id}

    def done_waiting(self, key: str) -> None:
        waiting = self.waiting
        if waiting.pop(key, None) is not None:
            self.event.waiting = waiting

    def add(self, key: str, state: State) -> None:
        self.triggered.add(key)
        self.states[key] = merged([state, *([self.states[key]] if key in self.states else [])])

    def will_run(self, start: set[str], key: str, limit: int) -> set[str]:
        """`reachable(graph, start, avoid=key, limit)`, as far as `key`'s upstreams go.

        Without a loop in the graph no path from `start` to an upstream of `key` passes through
        `key`, so one search from `start` with `key` in it answers for every downstream of a
        fan-out; a graph with a loop is searched for each.
        """
        if self.cyclic():
            return reachable(self.graph, start, avoid=key, limit=limit)
        whole = start | {key}
        version = (frozenset(whole), limit, len(self.graph))
        if self._reach is None or self._reach[0] != version:
            self._reach = (version, reachable(self.graph, whole, avoid="", limit=limit))
        return self._reach[1] - {key}

    def cyclic(self) -> bool:
        """Whether the graph as loaded has a loop (checked again when it grows)."""
        if self._cyclic is None or self._cyclic[0] != len(self.graph):
            self._cyclic = (len(self.graph), has_cycle(self.graph))
        return self._cyclic[1]


def has_cycle(downstreams: Mapping[str, Sequence[str]]) -> bool:
    """Whether following downstreams ever leads back to where it started."""
    done: set[str] = set()
    for first in downstreams:
        if first in done:
            continue
        path, stack = {first}, [(first, iter(downstreams.get(first, ())))]
        while stack:
            node, below = stack[-1]
            step = next(below, None)
            if step is None:
                stack.pop()
                path.discard(node)
                done.add(node)
            elif step in path:
                return True
            elif step not in done:
                path.add(step)
                stack.append((step, iter(downstreams.get(step, ()))))
    return False


async def load_root(session: AsyncSession, root_id: str) -> Root:
    """The chain of one origin, its origin event locked for the rest of the transaction."""
    origin = await session.get(Event, root_id, with_for_update=True, populate_existing=True)
    if origin is None:
        raise LookupError(root_id)
    root = Root(origin)
    root.states[project_key(origin.project)] = State.PASSED
    rows = await session.execute(
        select(Event.project, Event.result, Event.step, Event.confirming).where(
            Event.root_id == root_id, Event.kind == "trigger"
        )
    )
    found: dict[str, list[State]] = {}
    for project, result, step, confirming in rows:
        root.triggered.add(project_key(project))
        state = state_of(result, step, confirming)
        if state is not None:
            found.setdefault(project_key(project), []).append(state)
    root.states.update({key: merged(states) for key, states in found.items()})
    return root


async def waits(
    session: AsyncSession, root: Root, key: str, starting: Iterable[str], max_depth: int
) -> list[str]:
    """What the downstream `key` waits for in this chain before it may start."""
    await load_upstreams(session, root, [key])
    pending = {name for name, state in root.states.items() if state is State.PENDING}
    start = pending | set(starting)
    await _load_graph(session, root, [*start, key], max_depth)
    will_run = root.will_run(start - {key}, key, max_depth)
    return waiting_on(root.upstreams[key], root.states, will_run)


async def load_upstreams(session: AsyncSession, root: Root, keys: Iterable[str]) -> None:
    """The declared upstreams of these projects, in one query for those not loaded yet."""
    wanted = {key for key in keys if key not in root.upstreams}
    if not wanted:
        return
    for key in wanted:
        root.upstreams[key] = set()
    rows = await session.execute(
        select(Subscription.downstream, Subscription.upstream).where(
            Subscription.downstream.in_(wanted)
        )
    )
    for downstream, upstream in rows:
        root.upstreams[downstream].add(upstream)


async def _load_graph(
    session: AsyncSession, root: Root, start: Iterable[str], max_depth: int
) -> None:
    frontier = {key for key in start if key not in root.graph}
    for _ in range(max_depth + 1):
        if not frontier:
            return
        rows = await session.execute(
            select(Subscription.upstream, Subscription.downstream).where(
                Subscription.upstream.in_(frontier)
            )
        )
        for key in frontier:
            root.graph.setdefault(key, [])
        for upstream, downstream in rows:
            root.graph[upstream].append(downstream)
        frontier = {below for key in frontier for below in root.graph[key]} - set(root.graph)


async def supersede(session: AsyncSession, source: Event) -> set[str]:
    """Skip the triggers not sent yet of older successes of the same upstream and branch;
    returns the events whose reports change."""
    if source.sha is None or source.ref is None:
        return set()
    older = select(Event.id).where(
        Event.project == source.project,
        Event.ref == source.ref,
        Event.ref_type == source.ref_type,
        Event.sha != source.sha,
        Event.created_at <= source.created_at,
        Event.id != source.id,
    )
    rows = await session.execute(
        update(Event)
        .where(
            Event.kind == "trigger",
            Event.parent_id.in_(older),
            Event.state == TriggerState.PLANNED,
            Event.step == Step.FIRST,
        )
        .values(
            state=TriggerState.SUPERSEDED,
            result=Result.SKIPPED,
            change=Verdict.SKIPPED,
            reason=f"superseded by {texts.short(source.sha)}",
            finished_at=utcnow(),
        )
        .returning(Event.parent_id, Event.root_id)
        .execution_options(synchronize_session=False)
    )
    return {event_id for pair in rows for event_id in pair if event_id is not None}
