"""The read side of pre-merge runs: a change's page (its heads, rows, baselines and steps) and
the open changes a project page lists, as the caller may see them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction import premerge_runs
from conjunction.models import Event, Project
from conjunction.names import project_key
from conjunction.premerge import PRIVATE, Shown, describe, state_of


@dataclass(frozen=True)
class Run:
    """One trigger of a head: a downstream with the change, on the base, or once more."""

    event: Event
    name: str | None  # None: a private project
    step: str  # in a person's words


@dataclass(frozen=True)
class Head:
    build: Event
    rows: list[Shown]
    runs: list[Run]
    state: str
    description: str


@dataclass(frozen=True)
class ChangePage:
    project: Project
    number: int
    url: str | None
    base_sha: str | None
    closed: str | None  # "the change was merged", or None while open
    heads: list[Head]  # newest first


STEPS = {
    "first": "with the change",
    "baseline": "on the base commit",
    "again": "with the change, once more (confirming)",
}


async def change_page(
    sessions: async_sessionmaker[AsyncSession], name: str, number: int, *, admin: bool
) -> ChangePage | None:
    async with sessions() as session:
        project = await session.get(Project, project_key(name))
        if project is None or (project.private and not admin):
            return None
        builds = await premerge_runs.heads_of(session, project.name, number)
        if not builds:
            return None
        heads = [await _head(session, build, project, admin) for build in builds]
    newest = builds[0]
    return ChangePage(project, number, newest.change_url, newest.base_sha, newest.reason, heads)


async def _head(session: AsyncSession, build: Event, project: Project, admin: bool) -> Head:
    rows = await premerge_runs.rows_of(session, build, project, admin=admin)
    triggers = await premerge_runs.triggers_of(session, build.id)
    names = [event.project for event in triggers]
    hidden = set() if admin else await premerge_runs.private_of(session, names)
    runs = [
        Run(
            event,
            None if project_key(event.project) in hidden and not project.private else event.project,
            STEPS.get(str(event.step), str(event.step)),
        )
        for event in triggers
    ]
    return Head(build, rows, runs, state_of(rows) if rows else "pending", describe(rows))


async def open_changes(
    sessions: async_sessionmaker[AsyncSession], project: Project, *, admin: bool
) -> list[Head]:
    """The newest head of each open change of the project, with its rows."""
    async with sessions() as session:
        return [
            await _head(session, build, project, admin)
            for build in await premerge_runs.open_changes(session, project.name)
        ]


__all__ = ["PRIVATE", "ChangePage", "Head", "Run", "change_page", "open_changes"]
