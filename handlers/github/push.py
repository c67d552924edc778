"""`push` to the default branch that changes `.conjunction.yml` or CODEOWNERS: re-index."""

from __future__ import annotations

from typing import Any

from gidgethub import routing, sansio
from gidgethub.abc import GitHubAPI

from bot.engine import CODEOWNERS_PATHS, CONFIG_PATH, Engine
from bot.forges.github.checks import post_config_check

router = routing.Router()

INDEXED_PATHS = {CONFIG_PATH, *CODEOWNERS_PATHS}


def changed_paths(push: dict[str, Any]) -> set[str]:
    commits = [*(push.get("commits") or []), push.get("head_commit") or {}]
    return {
        path
        for commit in commits
        for change in ("added", "modified", "removed")
        for path in commit.get(change) or []
    }


@router.register("push")
async def on_push(
    event: sansio.Event, gh: GitHubAPI | None, *args: Any, engine: Engine, host: str, **kw: Any
) -> None:
    push = event.data
    repository = push["repository"]
    on_default_branch = push["ref"] == f"refs/heads/{repository['default_branch']}"
    if not on_default_branch or push.get("deleted") or not changed_paths(push) & INDEXED_PATHS:
        return
    name = f"{host}/{repository['full_name']}"
    was_invalid = await engine.config_error_of(name) is not None
    error = await engine.refresh_project(
        name,
        private=repository["private"],
        default_branch=repository["default_branch"],
        sha=push["after"],
        installation_id=(push.get("installation") or {}).get("id"),
    )
    if gh is not None and (error is not None or was_invalid):
        await post_config_check(gh, repository["full_name"], push["after"], error)
