"""Planning a fan-out as a pure function (`conjunction.engine.planning`): a plain snapshot of an
upstream success, its subscribers and the chain around it in, a plan out — no database, no forge."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from conjunction.config.repo_config import Upstream
from conjunction.engine.chains import Root, State
from conjunction.engine.planning import (
    BATCH,
    Candidate,
    OpenTrigger,
    Plan,
    Snapshot,
    Source,
    plan_fallout,
    plan_success,
)

SHA, OLD = "a" * 40, "b" * 40
A, B, C, D, E = (f"github.com/acme/{name}" for name in "abcde")


def key(name: str) -> str:
    return name.lower()


def ids() -> Any:
    numbers = itertools.count(1)
    return lambda: f"t{next(numbers)}"


def subscribers(graph: Mapping[str, Sequence[str]], **specs: Any) -> dict[str, list[Candidate]]:
    """The candidates of each upstream in `graph` (upstream -> downstreams)."""
    return {
        key(upstream): [
            Candidate(key(name), name, Upstream(project=upstream, **specs.get(name, {})))
            for name in names
        ]
        for upstream, names in graph.items()
    }


def chain_of(
    graph: Mapping[str, Sequence[str]],
    root_id: str = "o",
    states: Mapping[str, State] | None = None,
    waiting: Mapping[str, str] | None = None,
) -> Root:
    """The chain as the loader gives it: the whole graph, every project's declared upstreams."""
    edges = {key(up): [key(down) for down in downs] for up, downs in graph.items()}
    upstreams: dict[str, set[str]] = {}
    for upstream, downstreams in edges.items():
        for downstream in downstreams:
            upstreams.setdefault(downstream, set()).add(upstream)
    chosen = dict(states or {})
    return Root(
        root_id,
        states=chosen,
        triggered=set(chosen) - {key(A)},
        graph=edges,
        upstreams=upstreams,
        waiting=dict(waiting or {}),
    )


def build(project: str = A, sha: str = SHA) -> Source:
    return Source("o", project, "o", 0, (key(project),), sha, "main")


def plan(
    graph: Mapping[str, Sequence[str]],
    source: Source | None = None,
    *,
    chain: Root | None = None,
    specs: Mapping[str, Any] | None = None,
    max_depth: int = 5,
    **snapshot: Any,
) -> Plan:
    source = source or build()
    return plan_success(
        Snapshot(
            source=source,
            success=source.success(),
            chain=chain or chain_of(graph, states={key(A): State.PASSED}),
            candidates=subscribers(graph, **(specs or {})),
            **snapshot,
        ),
        max_depth=max_depth,
        new_id=ids(),
    )


def started(plan: Plan) -> list[str]:
    return [trigger.project for trigger in plan.started]


def skipped(plan: Plan) -> list[tuple[str, str | None]]:
    return [(t.project, t.skip_reason) for t in plan.triggers if t.skip_reason is not None]


def test_each_downstream_is_started_once_under_its_upstream_build() -> None:
    result = plan({A: [B, C, B]})
    assert started(result) == [B, C]
    [first, _] = result.triggers
    assert (first.source.id, first.source.root_id, first.chain) == ("o", "o", [key(A), key(B)])
    assert result.reports == ["o"]
    assert (result.superseded, result.waiting) == ([], {})


def test_filters_of_the_upstream_entry_decide_who_runs() -> None:
    result = plan({A: [B, C, D]}, specs={C: {"branches": ["release/*"]}, D: {"pipelines": ["CI"]}})
    assert started(result) == [B]


def test_a_downstream_triggered_for_the_commit_by_another_pipeline_is_left_alone() -> None:
    assert started(plan({A: [B, C]}, already=frozenset({key(C)}))) == [B]


def test_a_loop_and_the_depth_limit_are_recorded_as_skipped_with_the_reason() -> None:
    deep = Source("t9", C, "o", 2, (key(A), key(B), key(C)), SHA, "main")
    loop = plan({C: [A, D]}, deep, chain=chain_of({A: [B], B: [C], C: [A, D]}))
    assert skipped(loop) == [(A, f"loop: {A} is already in this chain")]
    assert started(loop) == [D]

    too_deep = plan({C: [D]}, deep, chain=chain_of({C: [D]}), max_depth=2)
    assert skipped(too_deep) == [(D, "chain longer than CONJUNCTION_MAX_DEPTH (2)")]
    assert too_deep.batches() == []


def test_a_diamond_bottom_waits_for_its_other_path_then_starts_once() -> None:
    """A -> B -> D and A -> C -> D: D waits for B and C, under the origin's `waiting`."""
    graph = {A: [B, C], B: [D], C: [D]}
    first = plan(graph)
    assert started(first) == [B, C]
    assert first.waiting == {}  # D is no subscriber of A: nothing waits yet

    states = {key(A): State.PASSED, key(B): State.PASSED, key(C): State.PENDING}
    b_passed = Source("tb", B, "o", 1, (key(A), key(B)), SHA, "main")
    waits = plan(graph, b_passed, chain=chain_of(graph, states=states))
    assert (started(waits), waits.waiting) == ([], {key(D): "tb"})

    states[key(C)] = State.PASSED
    c_passed = Source("tc", C, "o", 1, (key(A), key(C)), SHA, "main")
    chain = chain_of(graph, states=states, waiting={key(D): "tb"})
    last = plan(graph, c_passed, chain=chain, waiting_sources={"tb": b_passed})
    assert started(last) == [D]
    assert last.triggers[0].source == c_passed
    assert last.waiting == {}


def test_a_bottom_reached_directly_and_through_a_longer_path_waits_for_the_longer() -> None:
    """A -> B -> C and A -> C: C starts after B, not with it."""
    graph = {A: [B, C], B: [C]}
    first = plan(graph)
    assert (started(first), first.waiting) == ([B], {key(C): "o"})

    states = {key(A): State.PASSED, key(B): State.PASSED}
    b_passed = Source("tb", B, "o", 1, (key(A), key(B)), SHA, "main")
    chain = chain_of(graph, states=states, waiting={key(C): "o"})
    second = plan(graph, b_passed, chain=chain, waiting_sources={"o": build()})
    assert started(second) == [C]
    assert second.triggers[0].source.id == "tb"  # B's own fan-out starts it, under B
    assert second.waiting == {}


def test_a_failure_skips_everything_below_it_and_starts_a_bottom_that_waited_only_on_it() -> None:
    """A -> B -> D -> E, A -> C -> D: B fails; D and E are its fallout."""
    graph = {A: [B, C], B: [D], C: [D], D: [E]}
    states = {key(A): State.PASSED, key(B): State.FAILED, key(C): State.PASSED}
    failed = Source("tb", B, "o", 1, (key(A), key(B)), result="failure")
    result = plan_fallout(
        Snapshot(
            source=failed,
            success=failed.success(),
            chain=chain_of(graph, states=states, waiting={key(D): "tc"}),
            candidates=subscribers(graph),
        ),
        max_depth=5,
        new_id=ids(),
    )
    assert skipped(result) == [(D, f"upstream {B} failed"), (E, f"upstream {B} failed")]
    assert [t.fallout for t in result.triggers] == [B, B]
    [d, e] = result.triggers
    assert (e.source.id, e.chain) == (d.id, [key(A), key(B), key(D), key(E)])
    assert (result.started, result.waiting) == ([], {})
    assert result.reports == ["tb", "o", d.id]


def test_a_newer_success_supersedes_the_open_triggers_of_other_commits_only() -> None:
    open_triggers = [
        OpenTrigger("old1", "b1", "b1", OLD),
        OpenTrigger("same", "b2", "b2", SHA),  # another pipeline of this very commit
    ]
    result = plan({A: [B]}, open_triggers=open_triggers)
    assert (result.superseded, result.superseded_by) == (["old1"], SHA)
    assert result.reports == ["b1", "o"]


def test_triggers_are_started_in_jobs_of_a_batch_each_owner_together_where_it_fits() -> None:
    many = [f"github.com/acme/app{i}" for i in range(BATCH + 1)]
    others = ["gitlab.com/globex/app", "github.com/initech/app"]
    result = plan({A: [*many, *others]})
    batches = [(batch.concurrency_key, len(batch.event_ids)) for batch in result.batches()]
    assert batches == [("github.com/acme", BATCH), (None, 3)]
    assert [i for batch in result.batches() for i in batch.event_ids] == [
        t.id for t in result.triggers
    ]

    one_owner = plan({A: [B, C]}).batches()
    assert [(b.concurrency_key, len(b.event_ids)) for b in one_owner] == [("github.com/acme", 2)]


def test_planning_leaves_its_snapshot_as_it_was() -> None:
    chain = chain_of({A: [B]}, states={key(A): State.PASSED})
    before = (dict(chain.states), set(chain.triggered), dict(chain.waiting))
    plan({A: [B]}, chain=chain)
    assert (chain.states, chain.triggered, chain.waiting) == before
