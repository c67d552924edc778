"""Which GitHub App installation reaches which project, kept on the project's row."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.models import Project
from conjunction.names import project_key


async def remember(
    sessions: async_sessionmaker[AsyncSession], names: Iterable[str], installation_id: int
) -> None:
    """Record the installation of projects; one not indexed yet gets an inactive row, so that
    indexing it already goes through its installation."""
    async with sessions.begin() as session:
        for name in names:
            project = await session.get(Project, project_key(name))
            if project is None:
                project = Project(key=project_key(name), name=name, active=False)
                session.add(project)
            project.installation_id = installation_id


async def projects_of(
    sessions: async_sessionmaker[AsyncSession], installation_id: int
) -> list[str]:
    """Active projects indexed for one installation."""
    async with sessions() as session:
        names = await session.scalars(
            select(Project.name).where(
                Project.installation_id == installation_id, Project.active.is_(True)
            )
        )
        return list(names)


class InstallationLookup:
    """The installation of a project, as its row says; the lookups asked for together are
    answered by one query. A fan-out's batch makes its calls at once, so the installations of
    all its projects are read in one statement rather than one each."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._asked: dict[str, asyncio.Future[int | None]] = {}
        # held here: the loop keeps only a weak reference to a task
        self._answering: asyncio.Task[None] | None = None

    async def __call__(self, project: str) -> int | None:
        key = project_key(project)
        answer = self._asked.get(key)
        if answer is None:
            loop = asyncio.get_running_loop()
            if not self._asked:
                # runs once the lookups asked in this turn of the loop are all in
                self._answering = loop.create_task(self._answer())
            answer = self._asked[key] = loop.create_future()
        # a caller cancelled must not cancel the answer that others wait for too
        return await asyncio.shield(answer)

    async def _answer(self) -> None:
        asked, self._asked = self._asked, {}
        try:
            async with self._sessions() as session:
                rows = await session.execute(
                    select(Project.key, Project.installation_id).where(Project.key.in_(list(asked)))
                )
                found = {key: installation for key, installation in rows}
        except Exception as exc:
            for answer in asked.values():
                answer.set_exception(exc)
            return
        except asyncio.CancelledError:
            for answer in asked.values():
                answer.cancel()
            raise
        for key, answer in asked.items():
            answer.set_result(found.get(key))


async def forget(sessions: async_sessionmaker[AsyncSession], names: Iterable[str]) -> None:
    """The app was uninstalled from these projects (or suspended)."""
    keys = [project_key(name) for name in names]
    async with sessions.begin() as session:
        await session.execute(
            update(Project).where(Project.key.in_(keys)).values(installation_id=None)
        )
