"""Chains that explain themselves: where each project of one origin's chain stands, and what a
downstream reached by several paths (a diamond) still waits for.

Pure functions and a plain `Root`: one origin's chain as `conjunction.engine.fanout` loads it (under
a lock on its origin event, so that two upstreams of a diamond passing at the same moment start
its bottom once) and `conjunction.engine.planning` moves it along.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from conjunction.results import Result
from conjunction.runs import Step


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
    """One origin's chain, as loaded: where each project in it stands, the graph around it,
    and its diamond bottoms not started yet. The planner moves it along as it plans."""

    root_id: str
    states: dict[str, State] = field(default_factory=dict)
    triggered: set[str] = field(default_factory=set)  # every project with an event in it
    graph: dict[str, list[str]] = field(default_factory=dict)  # downstreams, as far as loaded
    upstreams: dict[str, set[str]] = field(default_factory=dict)  # declared, as far as loaded
    waiting: dict[str, str] = field(default_factory=dict)  # bottom -> the event to start it under
    # what `will_run` found last: (starting, limit, the projects it started from, reached)
    _reach: tuple[frozenset[str], int, set[str], set[str]] | None = None
    _cyclic: bool | None = None

    def copy(self) -> Root:
        """A copy to plan on: what planning changes is its own, the graph is shared."""
        return Root(
            self.root_id,
            dict(self.states),
            set(self.triggered),
            self.graph,
            self.upstreams,
            dict(self.waiting),
            _cyclic=self._cyclic,
        )

    def wait(self, key: str, source_id: str) -> None:
        self.waiting[key] = source_id

    def done_waiting(self, key: str) -> None:
        self.waiting.pop(key, None)

    def add(self, key: str, state: State) -> None:
        self.triggered.add(key)
        self.states[key] = merged([state, *([self.states[key]] if key in self.states else [])])
        if self._reach is not None and key not in self._reach[2]:
            self._reach = None  # one more project under way: more will run

    def waits(self, key: str, starting: frozenset[str], limit: int) -> list[str]:
        """What the downstream `key` waits for in this chain before it may start, while the
        projects `starting` (`key` among them or not) start now."""
        upstreams = self.upstreams.get(key, set()) - {key}
        return waiting_on(upstreams, self.states, self.will_run(starting, key, limit))

    def will_run(self, starting: frozenset[str], key: str, limit: int) -> set[str]:
        """What runs from the projects under way and `starting` (but `key`) within `limit`
        links, as far as `key`'s upstreams go: `reachable(graph, those - {key}, avoid=key)`.

        Without a loop in the graph, nothing reached through `key` is one of its upstreams, so
        one search answers for every downstream of a fan-out and every diamond bottom waiting
        in the chain, until another project is under way; a graph with a loop is searched for
        each.
        """
        reach = self._reach
        if self.cyclic() or reach is None or reach[0] is not starting or reach[1] != limit:
            pending = {name for name, state in self.states.items() if state is State.PENDING}
            start = pending | starting
            if self.cyclic():
                return reachable(self.graph, start - {key}, avoid=key, limit=limit)
            reach = (starting, limit, start, reachable(self.graph, start, avoid="", limit=limit))
            self._reach = reach
        return reach[3]

    def acyclic(self) -> None:
        """The graph is known to have no loop (`conjunction.engine.graph`)."""
        self._cyclic = False

    def cyclic(self) -> bool:
        """Whether the graph has a loop."""
        if self._cyclic is None:
            self._cyclic = has_cycle(self.graph)
        return self._cyclic


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
