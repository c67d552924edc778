"""`System Hook` (an instance admin's): pushes of every project, and projects that were
deleted, renamed or moved. Everything else it carries (users, groups, keys) is ignored."""

from __future__ import annotations

import logging
from typing import Any

from conjunction.engine_api import EngineAPI
from conjunction.forges.gitlab.events.push import on_push
from conjunction.models import Project
from conjunction.names import project_key

log = logging.getLogger(__name__)

MOVED = {"project_rename", "project_transfer"}


async def on_system_hook(data: dict[str, Any], *, engine: EngineAPI, host: str, **_: Any) -> None:
    kind = data.get("event_name") or data.get("object_kind")
    if kind == "push":
        await on_push(data, engine=engine, host=host)
    elif kind == "project_destroy" and data.get("path_with_namespace"):
        await engine.drop_project(f"{host}/{data['path_with_namespace']}")
    elif kind in MOVED and data.get("old_path_with_namespace") and data.get("path_with_namespace"):
        await _moved(engine, f"{host}/{data['old_path_with_namespace']}", host, data)


async def _moved(engine: EngineAPI, old: str, host: str, data: dict[str, Any]) -> None:
    """A project that joined under its old path is indexed again under its new one."""
    async with engine.sessions() as session:
        project = await session.get(Project, project_key(old))
    if project is None or not project.active:
        return
    new = f"{host}/{data['path_with_namespace']}"
    await engine.drop_project(old)
    await engine.refresh_project(new)
    log.info("project %s is now %s", old, new)
