"""A change's pre-merge runs as they were recorded, read the same way by the engine, which reports
them on the change's head, and by the change's page: the heads of a change that ran, each head's
triggers, and each downstream's row (`conjunction.premerge.row_of` over its runs)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from conjunction.config.repo_config import Upstream
from conjunction.excerpts import Excerpt
from conjunction.models import Event, Project, Subscription
from conjunction.names import project_key
from conjunction.premerge import Runs, Shown, row_of
from conjunction.results import Result
from conjunction.runs import Origin, Step
from conjunction.tally import required_in


async def rows_of(
    session: AsyncSession, build: Event, upstream: Project, *, admin: bool = False
) -> list[Shown]:
    """Every downstream's row for the change head `build`, in the order they were started; a
    private downstream of a public upstream unnamed (but for the admin)."""
    required = required_in(upstream)
    runs = await triggers_of(session, build.id)
    names = list(dict.fromkeys(event.project for event in runs if event.step == Step.FIRST))
    private = await private_keys(session, [project_key(name) for name in names])
    shown = []
    for name in names:
        own = [event for event in runs if event.project == name]
        head, base = latest(own, Step.FIRST), latest(own, Step.BASELINE)
        verdict = row_of(await runs_of(session, build, name, own))
        reason = head.reason if head is not None and head.result == Result.SKIPPED else None
        shown.append(
            Shown(
                name=""
                if project_key(name) in private and not upstream.private and not admin
                else name,
                row=verdict.row,
                required=required(name),
                detail=reason or verdict.detail,
                url=head.url if head is not None else None,
                base_url=base.url if base is not None else None,
                excerpt=Excerpt.of(head.excerpt) if head is not None else None,
            )
        )
    return shown


def heads_where(project: str, number: int | None = None) -> list[ColumnElement[bool]]:
    where = [Event.kind == "build", Event.project == project, Event.ref_type == Origin.CHANGE]
    return where if number is None else [*where, Event.change_number == number]


async def open_changes(session: AsyncSession, project: str) -> list[Event]:
    """The newest head of each open change of `project` that ran, newest first."""
    builds = await session.scalars(
        select(Event).where(*heads_where(project)).order_by(Event.created_at.desc()).limit(100)
    )
    newest: dict[int, Event] = {}
    for build in builds:
        if build.change_number is not None:
            newest.setdefault(build.change_number, build)
    return [build for build in newest.values() if build.reason is None]


async def heads_of(session: AsyncSession, project: str, number: int) -> list[Event]:
    """Every head of one change that ran, newest first."""
    rows = await session.scalars(
        select(Event).where(*heads_where(project, number)).order_by(Event.created_at.desc())
    )
    return list(rows)


async def triggers_of(session: AsyncSession, build_id: str) -> list[Event]:
    """Every trigger of a change's head, in the order they were made."""
    rows = await session.scalars(
        select(Event)
        .where(Event.root_id == build_id, Event.kind == "trigger")
        .order_by(Event.created_at)
    )
    return list(rows)


def latest(events: Sequence[Event], step: Step) -> Event | None:
    found = [event for event in events if event.step == step]
    return found[-1] if found else None


async def recorded_base(
    session: AsyncSession, upstream: str, downstream: str, base_sha: str
) -> Result | None:
    """The pair's recorded result on the base commit: a run of the merged commit itself (not
    a pre-merge one), or a baseline run against it, that passed or failed."""
    parent = aliased(Event)
    decisive = [result for result in Result if result.decisive]
    result = await session.scalar(
        select(Event.result)
        .outerjoin(parent, parent.id == Event.parent_id)
        .where(
            Event.kind == "trigger",
            Event.project == downstream,
            Event.upstream == upstream,
            Event.result.in_(decisive),
            or_(
                and_(
                    Event.step == Step.FIRST,
                    Event.change_number.is_(None),
                    parent.sha == base_sha,
                ),
                and_(Event.step == Step.BASELINE, Event.upstream_sha == base_sha),
            ),
        )
        .order_by(Event.created_at.desc())
        .limit(1)
    )
    return Result(result) if result else None


async def runs_of(
    session: AsyncSession, build: Event, downstream: str, own: Sequence[Event]
) -> Runs:
    head = latest(own, Step.FIRST)
    baseline = latest(own, Step.BASELINE)
    again = next(
        (
            event
            for event in reversed(own)
            if head is not None and event.confirms_id == head.id and event.step == Step.AGAIN
        ),
        None,
    )
    if baseline is not None and (baseline.result is None or Result(baseline.result).decisive):
        base_known, base = True, Result(baseline.result) if baseline.result else None
    elif build.base_sha:
        base = await recorded_base(session, build.project, downstream, build.base_sha)
        base_known = base is not None
    else:
        base_known, base = False, None
    return Runs(
        head=Result(head.result) if head is not None and head.result else None,
        base=base,
        base_known=base_known,
        confirm=await confirms(session, build.project, downstream),
        again_started=again is not None,
        again=Result(again.result) if again is not None and again.result else None,
    )


async def confirms(session: AsyncSession, upstream: str, downstream: str) -> bool:
    spec = await session.scalar(
        select(Subscription.spec).where(
            Subscription.downstream == project_key(downstream),
            Subscription.upstream == project_key(upstream),
        )
    )
    return spec is not None and Upstream.model_validate(spec).confirm


async def private_of(session: AsyncSession, names: Sequence[str]) -> set[str]:
    """The keys of those of the projects named that are private."""
    return await private_keys(session, [project_key(name) for name in names])


async def private_keys(session: AsyncSession, keys: Sequence[str]) -> set[str]:
    rows = await session.scalars(
        select(Project.key).where(Project.key.in_(list(keys)), Project.private.is_(True))
    )
    return set(rows)
