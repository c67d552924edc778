"""`push` to the default branch that changes `.conjunction.yml` or CODEOWNERS: re-index; `push`
of a tag: remember it, so that runs of the tag are known as the tag's
(`conjunction.forges.github.tags`)."""

from __future__ import annotations

from typing import Any

from gidgethub import routing, sansio

from conjunction.engine_api import CONFIG_PATH, EngineAPI
from conjunction.forges.github import installations, tags
from conjunction.forges.github.forge import GitHubForge

router = routing.Router()

INDEXED_PATHS = {CONFIG_PATH, *GitHubForge.codeowners_paths}


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
    event: sansio.Event, gh: Any, *args: Any, engine: EngineAPI, host: str, **kw: Any
) -> None:
    push = event.data
    repository = push["repository"]
    if str(push.get("ref") or "").startswith(tags.TAG_PREFIX):
        name = f"{host}/{repository['full_name']}"
        await tags.remember(
            engine.sessions,
            name,
            push["ref"],
            str(push.get("after") or ""),
            bool(push.get("deleted")),
        )
        return
    on_default_branch = push["ref"] == f"refs/heads/{repository['default_branch']}"
    if not on_default_branch or push.get("deleted") or not changed_paths(push) & INDEXED_PATHS:
        return
    name = f"{host}/{repository['full_name']}"
    await engine.config_pushed(
        name,
        sha=push["after"],
        private=repository["private"],
        default_branch=repository["default_branch"],
    )
    installation = (push.get("installation") or {}).get("id")
    if installation is not None:
        await installations.remember(engine.sessions, [name], int(installation))
