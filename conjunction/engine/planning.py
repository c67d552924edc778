"""A fan-out planned: which downstreams an upstream success starts, skips or leaves waiting
(a diamond's bottom), which older triggers it supersedes, and which downstreams a failure
leaves skipped as its fallout — pure functions from a plain `Snapshot` to a `Plan`.

`conjunction.engine.fanout` loads the snapshot in one place and writes the plan in a few statements;
nothing here reads the database or the clock, so each rule is tested on plain data
(tests/test_planning.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from conjunction.engine.chains import Root, State, fallout_reason
from conjunction.engine.subscriptions import Candidate
from conjunction.engine_api import UpstreamSuccess
from conjunction.names import owner_of, project_key

# Triggers started by one job at most: what one job has in flight, and what a crash while
# they are in flight may send twice where the runner cannot tell (GitHub allows 100
# concurrent requests).
BATCH = 100


@dataclass(frozen=True)
class Selected:
    name: str
    key: str
    skip_reason: str | None = None  # recorded as skipped instead of started


@dataclass(frozen=True)
class Source:
    """The event triggers are planned under: an upstream build, or a downstream's trigger
    event (continuing its chain, or skipped by a failure's fallout)."""

    id: str
    project: str
    root_id: str
    depth: int = 0
    chain: tuple[str, ...] = ()
    sha: str | None = None
    ref: str | None = None
    ref_type: str = "branch"
    pipeline: str | None = None
    result: str | None = None

    def success(self) -> UpstreamSuccess:
        return UpstreamSuccess(self.project, self.sha, self.ref, self.ref_type, self.pipeline)


@dataclass(frozen=True)
class OpenTrigger:
    """A trigger not sent yet of an earlier success of the same upstream and ref."""

    id: str
    parent_id: str
    root_id: str
    build_sha: str | None


@dataclass(frozen=True)
class Snapshot:
    """What planning reads, loaded in one place (`conjunction.engine.fanout`)."""

    source: Source
    success: UpstreamSuccess
    chain: Root
    candidates: Mapping[str, Sequence[Candidate]]  # by upstream key, active downstreams only
    default_branches: Mapping[str, str] = field(default_factory=dict)  # by project key
    already: frozenset[str] = frozenset()  # triggered for this commit by another pipeline
    open_triggers: Sequence[OpenTrigger] = ()
    waiting_sources: Mapping[str, Source] = field(default_factory=dict)  # by event id
    names: Mapping[str, str] = field(default_factory=dict)  # waiting bottoms that still exist


@dataclass(frozen=True)
class NewTrigger:
    """A trigger event to create: started, or recorded as skipped with the reason."""

    id: str
    project: str
    key: str
    source: Source
    skip_reason: str | None = None
    fallout: str | None = None  # skipped because this upstream of the chain failed

    @property
    def chain(self) -> list[str]:
        return [*self.source.chain, self.key]


@dataclass(frozen=True)
class Batch:
    """Triggers started by one job; the owner whose forge budget they all spend, if one."""

    concurrency_key: str | None
    event_ids: tuple[str, ...]


@dataclass
class Plan:
    triggers: list[NewTrigger] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)  # ids of open triggers now skipped
    superseded_by: str | None = None  # the commit that supersedes them
    waiting: dict[str, str] = field(default_factory=dict)  # the origin's bottoms, afterwards
    reports: list[str] = field(default_factory=list)  # events whose reports change

    @property
    def started(self) -> list[NewTrigger]:
        return [trigger for trigger in self.triggers if trigger.skip_reason is None]

    def batches(self, size: int = BATCH) -> list[Batch]:
        """The started triggers in jobs of at most `size`, each owner's together where they
        fit: a job of one owner names it (a worker runs only so many of one owner's jobs at
        once); one of several owners names none, as each call is paced by its own owner."""
        by_owner: dict[str, list[str]] = {}
        for trigger in self.started:
            by_owner.setdefault(owner_of(trigger.project), []).append(trigger.id)
        chunks = [
            (owner, ids[at : at + size])
            for owner, ids in by_owner.items()
            for at in range(0, len(ids), size)
        ]
        packed: list[tuple[set[str], list[str]]] = []
        for owner, ids in chunks:
            if not packed or len(packed[-1][1]) + len(ids) > size:
                packed.append((set(), []))
            packed[-1][0].add(owner)
            packed[-1][1].extend(ids)
        return [
            Batch(next(iter(owners)) if len(owners) == 1 else None, tuple(ids))
            for owners, ids in packed
        ]

    def report(self, *event_ids: str | None) -> None:
        for event_id in event_ids:
            if event_id is not None and event_id not in self.reports:
                self.reports.append(event_id)


def select_downstreams(
    success: UpstreamSuccess,
    candidates: Iterable[Candidate],
    *,
    default_branch: str,
    chain: Sequence[str],
    already: set[str] | frozenset[str],
    depth: int,
    max_depth: int,
) -> list[Selected]:
    """The downstreams a success starts (or records as stopped), each once, in order."""
    ref = success.ref or default_branch  # a downstream run that did not say ran the default
    changed = list(success.changed_paths) if success.changed_paths is not None else None
    selected: dict[str, Selected] = {}
    for candidate in candidates:
        spec = candidate.spec
        if (
            candidate.key in selected
            or candidate.key in already
            or not spec.watches_ref(success.ref_type, ref, default_branch)  # type: ignore[arg-type]
            or not spec.watches_pipeline(success.pipeline)
            or not spec.watches_paths(changed)
        ):
            continue
        reason = None
        if candidate.key in chain:
            reason = f"loop: {candidate.name} is already in this chain"
        elif depth > max_depth:
            reason = f"chain longer than CONJUNCTION_MAX_DEPTH ({max_depth})"
        selected[candidate.key] = Selected(candidate.name, candidate.key, reason)
    return list(selected.values())


IdMaker = Callable[[], str]
NOTHING: frozenset[str] = frozenset()  # starting with a diamond bottom: nothing else


def plan_success(snapshot: Snapshot, *, max_depth: int, new_id: IdMaker) -> Plan:
    """An upstream success (or a downstream's pass continuing its chain): the older successes
    of the same upstream and ref lose their triggers not sent yet; each selected downstream
    gets a trigger, except one reached by several paths from the origin (a diamond), which
    waits until every upstream it has on those paths passed, and starts once."""
    source, root = snapshot.source, snapshot.chain.copy()
    plan = Plan()
    for stale in snapshot.open_triggers:
        if stale.build_sha != source.sha:
            plan.superseded.append(stale.id)
            plan.report(stale.parent_id, stale.root_id)
    plan.superseded_by = source.sha if plan.superseded else None
    # in a chain, "already triggered" is per origin; for an origin, per upstream commit
    already = root.triggered if source.id != source.root_id else snapshot.already
    selected = _select(snapshot, source, snapshot.success, already, max_depth)
    starting = frozenset(choice.key for choice in selected if choice.skip_reason is None)
    for choice in selected:
        if choice.skip_reason is None and root.waits(choice.key, starting, max_depth):
            root.wait(choice.key, source.id)
            continue
        _start(plan, root, source, choice, choice.skip_reason, new_id)
    _start_waiting(plan, root, snapshot, max_depth, new_id)
    plan.waiting = root.waiting
    return plan


def plan_fallout(snapshot: Snapshot, *, max_depth: int, new_id: IdMaker) -> Plan:
    """A downstream ended without passing: its own downstreams, and theirs, will not run for
    this origin; each is recorded as skipped, naming the upstream that failed. A diamond
    bottom that waited only for it starts now."""
    failed, root = snapshot.source, snapshot.chain.copy()
    reason = fallout_reason(failed.project, failed.result)
    plan = Plan()
    frontier = [failed]
    while frontier:
        source = frontier.pop(0)
        for choice in _select(snapshot, source, source.success(), root.triggered, max_depth):
            if choice.skip_reason is None:  # a loop or the depth limit stops it anyway
                skipped = _start(plan, root, source, choice, reason, new_id, failed.project)
                frontier.append(
                    Source(
                        skipped.id,
                        skipped.project,
                        source.root_id,
                        source.depth + 1,
                        tuple(skipped.chain),
                    )
                )
    _start_waiting(plan, root, snapshot, max_depth, new_id)
    plan.waiting = root.waiting
    return plan


def _select(
    snapshot: Snapshot,
    source: Source,
    success: UpstreamSuccess,
    already: set[str] | frozenset[str],
    max_depth: int,
) -> list[Selected]:
    upstream_key = project_key(success.project)
    default_branch = snapshot.default_branches.get(upstream_key) or success.default_branch
    return select_downstreams(
        success,
        snapshot.candidates.get(upstream_key, ()),
        default_branch=default_branch or "main",
        chain=list(source.chain or [upstream_key]),
        already=already,
        depth=source.depth + 1,
        max_depth=max_depth,
    )


def _start(
    plan: Plan,
    root: Root,
    source: Source,
    choice: Selected,
    skip_reason: str | None,
    new_id: IdMaker,
    fallout: str | None = None,
) -> NewTrigger:
    trigger = NewTrigger(new_id(), choice.name, choice.key, source, skip_reason, fallout)
    plan.triggers.append(trigger)
    plan.report(source.id, source.root_id)
    root.add(choice.key, State.PENDING if skip_reason is None else State.FAILED)
    root.done_waiting(choice.key)
    return trigger


def _start_waiting(
    plan: Plan, root: Root, snapshot: Snapshot, max_depth: int, new_id: IdMaker
) -> None:
    """Start the diamond bottoms of this chain that wait for nothing any more."""
    sources = {**snapshot.waiting_sources, snapshot.source.id: snapshot.source}
    names = dict(snapshot.names)
    for candidates in snapshot.candidates.values():
        names.update((candidate.key, candidate.name) for candidate in candidates)
    for key, source_id in list(root.waiting.items()):
        if key in root.triggered:
            root.done_waiting(key)  # started, or skipped by an upstream's fallout
            continue
        if root.waits(key, NOTHING, max_depth):
            continue
        source, name = sources.get(source_id), names.get(key)
        if source is None or name is None:
            root.done_waiting(key)
            continue
        _start(plan, root, source, Selected(name, key), None, new_id)
