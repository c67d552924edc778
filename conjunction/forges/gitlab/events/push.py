"""`Push Hook` to the default branch that changes `.conjunction.yml` or CODEOWNERS: re-index.

A project whose webhook was set up by hand joins this way, at its first such push.
"""

from __future__ import annotations

from typing import Any

from conjunction.engine_api import CONFIG_PATH, EngineAPI
from conjunction.forges.gitlab.host import GitLabHost
from conjunction.web import pushes
from conjunction.web.pushes import NO_COMMIT

INDEXED_PATHS = {CONFIG_PATH, *GitLabHost.codeowners_paths}
PUBLIC = 20  # GitLab's visibility_level of a public project (10 internal, 0 private)


def listed_paths(push: dict[str, Any]) -> set[str] | None:
    """Paths the push's commits list, or None when that is not all of them: GitLab lists at
    most 20 commits of a push, and a System Hook's commits list no files."""
    return pushes.listed_paths(push, push.get("total_commits_count") or 0)


async def on_push(push: dict[str, Any], *, engine: EngineAPI, host: str, **_: Any) -> None:
    project = push.get("project") or {}
    path, default_branch = project.get("path_with_namespace"), project.get("default_branch")
    after = push.get("after") or NO_COMMIT
    if not path or not default_branch or after == NO_COMMIT:
        return  # a branch deleted, or not a project's push
    if push.get("ref") != f"refs/heads/{default_branch}":
        return
    await pushes.reindex_if_touched(
        engine,
        f"{host}/{path}",
        listed_paths(push),
        INDEXED_PATHS,
        before=push.get("before") or NO_COMMIT,
        after=after,
        private=project.get("visibility_level") != PUBLIC,
        default_branch=default_branch,
    )
