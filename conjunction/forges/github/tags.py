"""Tags on GitHub (CONTRACT §7): a run started by a tag push names the tag only as its
`head_branch` (a check suite not even that), so a run is a tag's when the repository's `push`
delivery announced that tag at the run's commit, or when GitHub's git refs have a tag of that
name; `tags:` globs then select it and `branches:` globs never match it."""

from __future__ import annotations

import logging
from typing import Any

import gidgethub
from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.models import Project, Tag
from conjunction.names import project_key
from conjunction.runs import Origin

log = logging.getLogger(__name__)

TAG_PREFIX = "refs/tags/"


def _known(*, named: bool) -> Select[str | None, str | None]:
    """The project's default branch and a tag at the commit — the one named `ref`, or any (a
    check suite of a tag push names no ref at all): one statement, asked of every run."""
    tag = select(Tag.name).where(Tag.project == bindparam("project"), Tag.sha == bindparam("sha"))
    if named:
        tag = tag.where(Tag.name == bindparam("ref"))
    return select(
        select(Project.default_branch).where(Project.key == bindparam("project")).scalar_subquery(),
        tag.limit(1).scalar_subquery(),
    )


KNOWN_TAG, ANY_TAG = _known(named=True), _known(named=False)


async def remember(
    sessions: async_sessionmaker[AsyncSession], project: str, ref: str, sha: str, deleted: bool
) -> None:
    """A `push` of `refs/tags/NAME`: keep (or forget) the tag and its commit."""
    name = ref.removeprefix(TAG_PREFIX)
    async with sessions.begin() as session:
        if deleted:
            tag = await session.get(Tag, (project_key(project), name))
            if tag is not None:
                await session.delete(tag)
        else:
            await session.merge(Tag(project=project_key(project), name=name, sha=sha))


async def ref_of(
    sessions: async_sessionmaker[AsyncSession],
    gh: Any,
    project: str,
    ref: str | None,
    sha: str | None,
    *,
    ask: bool,
    default_branch: str | None = None,
) -> tuple[Origin, str | None]:
    """Whether a run on `ref` at `sha` ran on a tag or a branch, and its name. Known tags first;
    with `ask` (the run could start downstreams), GitHub's git refs for a ref that is unknown
    and not the default branch."""
    known = KNOWN_TAG if ref is not None else ANY_TAG
    async with sessions() as session:
        connection = await session.connection()
        answer = await connection.execute(
            known, {"project": project_key(project), "ref": ref, "sha": sha}
        )
        indexed_branch, tag_name = answer.one()
    if tag_name is not None:
        return Origin.TAG, tag_name
    if indexed_branch is not None:
        default_branch = indexed_branch
    if ref is None or sha is None or gh is None or not ask or ref == default_branch:
        return Origin.BRANCH, ref
    full_name = project.split("/", 1)[1]
    try:
        await gh.getitem(f"/repos/{full_name}/git/ref/tags/{ref}")
    except gidgethub.BadRequest as exc:
        if exc.status_code != 404:
            raise
        return Origin.BRANCH, ref
    await remember(sessions, project, TAG_PREFIX + ref, sha, deleted=False)
    return Origin.TAG, ref
