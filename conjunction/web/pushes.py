"""A push to a default branch, as GitLab and Gitea announce it: which paths it changed, and
whether `.conjunction.yml` or CODEOWNERS is among them, so the project is indexed again."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from conjunction.engine_api import EngineAPI
from conjunction.models import Project
from conjunction.names import project_key

NO_COMMIT = "0" * 40
CHANGES = ("added", "modified", "removed")


def listed_paths(push: dict[str, Any], total: int) -> set[str] | None:
    """Paths the push's commits list, or None when that is not all of them: the forge lists
    only some commits of a large push (`total` counts them all), or lists no files."""
    commits = [commit for commit in push.get("commits") or [] if isinstance(commit, dict)]
    if len(commits) < total:
        return None
    if any(not any(change in commit for change in CHANGES) for commit in commits):
        return None
    return {path for commit in commits for change in CHANGES for path in commit.get(change) or []}


async def reindex_if_touched(
    engine: EngineAPI,
    name: str,
    listed: set[str] | None,
    indexed: Collection[str],
    *,
    before: str,
    after: str,
    private: bool,
    default_branch: str,
) -> None:
    """Index the project again when the push changed one of the `indexed` paths. When the
    payload does not list them all, the code host is asked; when that cannot say either, only
    a project that joined is indexed again."""
    paths = listed if listed is not None else await _compared(engine, name, before, after)
    if paths is None:
        if not await _known(engine, name):
            return
    elif not paths & set(indexed):
        return
    await engine.config_pushed(name, sha=after, private=private, default_branch=default_branch)


async def _compared(engine: EngineAPI, name: str, before: str, after: str) -> set[str] | None:
    code_host = engine.adapters.host(name)
    if code_host is None or before == NO_COMMIT:
        return None
    changed = await code_host.changed_files(name, before, after)
    return set(changed) if changed is not None else None


async def _known(engine: EngineAPI, name: str) -> bool:
    async with engine.sessions() as session:
        project = await session.get(Project, project_key(name))
    return project is not None and project.active
