"""Which GitHub App installation reaches which project, kept on the project's row."""

from __future__ import annotations

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


async def installation_of(sessions: async_sessionmaker[AsyncSession], project: str) -> int | None:
    async with sessions() as session:
        row = await session.get(Project, project_key(project))
    return row.installation_id if row is not None else None


async def forget(sessions: async_sessionmaker[AsyncSession], names: Iterable[str]) -> None:
    """The app was uninstalled from these projects (or suspended)."""
    keys = [project_key(name) for name in names]
    async with sessions.begin() as session:
        await session.execute(
            update(Project).where(Project.key.in_(keys)).values(installation_id=None)
        )
