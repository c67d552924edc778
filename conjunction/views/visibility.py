"""Who may see what. A private project, its events and pages exist only for the admin; on what
anyone else sees, a private project is "a private project" (`PRIVATE`), with no name, link or id
that leads to it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from conjunction.models import Event, IssueLink, Project
from conjunction.names import project_key

PRIVATE = "a private project"  # what a caller who may not see a project sees of it


def shown_changes(event: Event, *, upstream_visible: bool) -> dict[str, Any] | None:
    """What changed since a failing pair last passed, as `conjunction.engine.changes` stored it: a
    private upstream's commits stay with it."""
    changes = event.changes
    if not changes:
        return None
    return changes if upstream_visible else {**changes, "upstream": None}


async def private_projects(session: AsyncSession, names: set[str]) -> set[str]:
    """The keys of those of `names` that are private."""
    keys = {project_key(name) for name in names}
    rows = await session.scalars(
        select(Project.key).where(Project.key.in_(keys), Project.private.is_(True))
    )
    return set(rows)


async def visible_projects(session: AsyncSession, admin: bool) -> dict[str, Project]:
    """The active projects this caller may see, by key."""
    query = select(Project).where(Project.active.is_(True)).order_by(Project.key)
    if not admin:
        query = query.where(Project.private.is_(False))
    return {project.key: project for project in await session.scalars(query)}


async def hidden_projects(session: AsyncSession, admin: bool) -> set[str]:
    """Keys of the projects this caller may not see."""
    if admin:
        return set()
    return set(await session.scalars(select(Project.key).where(Project.private.is_(True))))


async def open_issues(session: AsyncSession, key: str, hidden: set[str]) -> list[IssueLink]:
    """The breakage issues open about a project, upstream or downstream, the latest first;
    none about a pair with a project hidden from the viewer."""
    links = await session.scalars(
        select(IssueLink)
        .where(
            IssueLink.state == "open",
            (IssueLink.upstream == key) | (IssueLink.downstream == key),
        )
        .order_by(IssueLink.updated_at.desc())
    )
    return [link for link in links if not {link.upstream, link.downstream} & hidden]
