"""The event page's tree: every event from the origin of one, as this caller may see it, with
what the report on its commit says of the runs below it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.durations import Figures, pair_durations, remaining
from conjunction.history import last_passed, of_failures, tried, upstream_build
from conjunction.models import Bisect, Event, IssueLink, Project, utcnow
from conjunction.names import project_key
from conjunction.progress import progress
from conjunction.results import Result
from conjunction.runs import Step
from conjunction.tally import Count, count_of, describe, required_in, rows_below
from conjunction.views.session import reading
from conjunction.views.visibility import hidden_projects, shown_changes

TREE_LIMIT = 2000  # events of one origin shown on an event page


@dataclass
class TreeNode:
    """One event of an origin's tree, as this caller may see it."""

    event: Event
    name: str | None  # None: a private project
    children: list[TreeNode] = field(default_factory=list)
    typical: Figures | None = None  # the pair's past durations
    left: float | None = None  # seconds a running one probably still needs
    running_for: float | None = None
    compare_url: str | None = None
    issue_url: str | None = None
    changes: dict[str, Any] | None = None  # what changed since the pair last passed
    steps: list[RerunStep] = field(default_factory=list)  # re-runs confirming this failure
    search: list[RerunStep] = field(default_factory=list)  # its culprit search's steps
    culprit: dict[str, Any] | None = None  # that search: its state and answer, as shown

    @property
    def confirming(self) -> bool:
        """A failure whose confirming re-runs are still under way."""
        return bool(self.event.confirming)


@dataclass(frozen=True)
class RerunStep:
    """One confirming re-run of a failure (CONTRACT §7), and the upstream commit it ran
    against (None when that upstream is hidden from this caller)."""

    node: TreeNode
    step: Step
    upstream_sha: str | None


@dataclass(frozen=True)
class EventTree:
    event: Event  # the event asked for
    root: TreeNode
    count: Count  # the downstream runs below it, as the report on its commit counts them
    description: str  # of them, in the words of that report's commit status
    skipped: int
    everything: Count  # every downstream run from the origin, as its report counts them
    running: int
    elapsed: float  # seconds since the event was recorded
    left: float | None  # seconds its running downstreams probably still need
    artifacts: list[dict[str, Any]]  # what this build made
    upstream_artifacts: list[dict[str, Any]]  # what a triggered run was started with
    upstream_commit: tuple[str, str] | None = None  # a triggered run's (upstream, commit),
    # when this caller may see that upstream

    @property
    def title(self) -> str:
        """A downstream run is named for the upstream commit it ran against, which is what its
        upstream's maintainer looks for; an upstream success for its own commit."""
        event = self.event
        if event.kind == "build":
            return f"{event.project}: upstream success at {(event.sha or 'an unknown commit')[:12]}"
        if self.upstream_commit is None:
            return f"{event.project}: downstream run"
        upstream, sha = self.upstream_commit
        return f"{upstream} {sha[:12]} in {event.project}"


async def event_tree(
    sessions: async_sessionmaker[AsyncSession],
    event_id: str,
    *,
    admin: bool,
    compare: Callable[[str, str, str], str | None] | None = None,
) -> EventTree | None:
    """The tree of every event from the origin of this one; None when the caller may not see
    it. `compare(upstream, base, head)` links what changed upstream since a failing pair last
    passed."""
    async with reading(sessions) as session:
        event = await session.get(Event, event_id)
        if event is None:
            return None
        hidden = await hidden_projects(session, admin)
        if project_key(event.project) in hidden:
            return None
        events = list(
            await session.scalars(
                select(Event)
                .where(Event.root_id == event.root_id)
                .order_by(Event.created_at)
                .limit(TREE_LIMIT)
            )
        )
        nodes = {
            item.id: TreeNode(item, None if project_key(item.project) in hidden else item.project)
            for item in events
        }
        running = [node for node in nodes.values() if node.event.result is None]
        typical = await pair_durations(session, {_pair(node.event) for node in running})
        links = await _issue_links(session, [node.event for node in nodes.values()], hidden)
        for node in nodes.values():
            await _annotate(session, node, nodes, typical, links, compare, hidden)
        for failure_id, search in (await of_failures(session, list(nodes))).items():
            node = nodes[failure_id]
            if node.name is not None:
                node.culprit = culprit_view(search, _pair(node.event)[0] not in hidden)
        origin = nodes.get(event.root_id, nodes[event.id]).event
        upstreams = {
            project.key: project
            for project in await session.scalars(
                select(Project).where(
                    Project.key.in_({project_key(event.project), project_key(origin.project)})
                )
            )
        }
        triggers = [item for item in events if item.kind == "trigger"]
        # the rows of the reports on its commit and on the origin's
        below = rows_below(event, triggers, required_in(upstreams.get(project_key(event.project))))
        everything = rows_below(
            origin, triggers, required_in(upstreams.get(project_key(origin.project)))
        )
        started = await progress(session, [row.event for row in below])
        parent = nodes.get(event.parent_id or "")
        build = await upstream_build(session, event, parent.event) if parent else None
    _link_up(nodes)
    root = nodes.get(event.root_id) or nodes[event.id]
    shown = _failure_of(nodes, nodes[event.id]) or nodes[event.id]
    estimates = [node.left for node in _below(shown) if node.left is not None]
    return EventTree(
        event=event,
        root=root,
        count=count_of(below),
        description=describe(below, started),
        skipped=sum(row.result is Result.SKIPPED for row in below),
        everything=count_of(everything),
        running=len(running),
        elapsed=(utcnow() - event.created_at).total_seconds(),
        left=max(estimates) if estimates else None,
        artifacts=event.artifacts or [],
        upstream_artifacts=(build.artifacts or []) if build else [],
        upstream_commit=_upstream_commit(event, parent),
    )


def _upstream_commit(event: Event, parent: TreeNode | None) -> tuple[str, str] | None:
    if event.kind != "trigger" or parent is None or parent.name is None:
        return None
    sha = event.upstream_sha or parent.event.sha
    return (parent.name, sha) if sha else None


def culprit_view(search: Bisect, upstream_visible: bool) -> dict[str, Any]:
    """A failure's culprit search on the event page: under way or done, and what it found —
    its commits only for a caller who may see the upstream."""
    answer = search.answer or {}
    commits = {commit["sha"]: commit for commit in search.commits}
    shown = upstream_visible
    suspects = answer.get("suspects") or []
    return {
        "running": search.answer is None,
        "total": len(search.commits),
        "runs": answer.get("runs", len(tried(search))),
        "max_runs": search.max_runs,
        "culprit": commits.get(answer.get("culprit") or "") if shown else None,
        "found": bool(answer.get("culprit")),
        "suspects": [commits[sha] for sha in suspects if sha in commits] if shown else [],
        "count": len(suspects),
        "ending": answer.get("ending"),
        "flaky": answer.get("flaky") or [] if shown else [],
    }


def _link_up(nodes: dict[str, TreeNode]) -> None:
    """Hang each node under its parent; a confirming re-run is a step of the failure it
    confirms, and what ran after it (a flake's downstreams) hangs under that failure."""
    for node in nodes.values():
        failure = _failure_of(nodes, node)
        if failure is not None:
            steps = failure.search if node.event.step == Step.BISECT else failure.steps
            steps.append(_step(node, failure, nodes.get(failure.event.parent_id or "")))
            continue
        parent = nodes.get(node.event.parent_id or "")
        if parent is not None:
            (_failure_of(nodes, parent) or parent).children.append(node)


def _step(rerun: TreeNode, failure: TreeNode, source: TreeNode | None) -> RerunStep:
    step = Step(rerun.event.step or Step.AGAIN)
    if source is None or source.name is None:
        return RerunStep(rerun, step, None)
    if step is Step.AGAIN:
        return RerunStep(rerun, step, source.event.sha)
    sha = rerun.event.upstream_sha or failure.event.last_passed_sha
    return RerunStep(rerun, step, sha)


def _failure_of(nodes: dict[str, TreeNode], node: TreeNode) -> TreeNode | None:
    """The failure a confirming re-run confirms, when it is in the tree."""
    return nodes.get(node.event.confirms_id or "")


def _below(node: TreeNode) -> list[TreeNode]:
    under = [*(step.node for step in node.steps), *node.children]
    return [node, *(below for child in under for below in _below(child))]


def _pair(event: Event) -> tuple[str, str]:
    return project_key(event.upstream or ""), project_key(event.project)


async def _issue_links(
    session: AsyncSession, events: list[Event], hidden: set[str]
) -> dict[str, IssueLink]:
    """The issue each event acted on, by event id; and each pair's open issue, by pair — in
    the repositories this caller may see."""
    ids = [event.id for event in events]
    downstreams = {project_key(event.project) for event in events}
    links = await session.scalars(
        select(IssueLink).where(
            IssueLink.downstream.in_(downstreams),
            IssueLink.last_event_id.in_(ids) | (IssueLink.state == "open"),
        )
    )
    found: dict[str, IssueLink] = {}
    for link in links:
        if project_key(link.repository) in hidden:
            continue
        if link.last_event_id:
            found.setdefault(link.last_event_id, link)
        if link.state == "open":
            found.setdefault(f"{link.upstream}|{link.downstream}", link)
    return found


async def _annotate(
    session: AsyncSession,
    node: TreeNode,
    nodes: dict[str, TreeNode],
    typical: dict[tuple[str, str], Figures],
    links: dict[str, IssueLink],
    compare: Callable[[str, str, str], str | None] | None,
    hidden: set[str],
) -> None:
    event = node.event
    if node.name is None or event.kind != "trigger":
        return
    upstream_visible = _pair(event)[0] not in hidden
    node.changes = shown_changes(event, upstream_visible=upstream_visible)
    node.typical = typical.get(_pair(event))
    result = event.result
    if result is None:
        now = utcnow()
        node.left = remaining(node.typical, event.started_at, now)
        node.running_for = (now - event.started_at).total_seconds() if event.started_at else None
        return
    link = links.get(event.id)
    if Result(result).broken:
        link = link or links.get("|".join(_pair(event)))
        if upstream_visible:
            node.compare_url = await _compare_url(session, event, nodes, compare)
    node.issue_url = link.url if link is not None else None


async def _compare_url(
    session: AsyncSession,
    event: Event,
    nodes: dict[str, TreeNode],
    compare: Callable[[str, str, str], str | None] | None,
) -> str | None:
    parent = nodes.get(event.parent_id or "")
    if compare is None or parent is None or parent.event.sha is None:
        return None
    passed = await last_passed(session, event)
    if passed is None or passed.parent_id is None:
        return None
    base = await session.get(Event, passed.parent_id)
    if base is None or base.sha in (None, parent.event.sha):
        return None
    return compare(parent.event.project, base.sha or "", parent.event.sha)
