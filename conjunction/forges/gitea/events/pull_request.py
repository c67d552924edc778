"""`pull_request` opened, synchronized (a push), reopened or closed: a change of an upstream,
run against its downstreams before it is merged (CONTRACT §8). Gitea sends every other action
on a pull request (edited, assigned, label_updated, review_requested, …) under the same event:
those change neither its head nor its state."""

from __future__ import annotations

from typing import Any

from conjunction.engine_api import EngineAPI
from conjunction.runs import Change

ACTIONS = {"opened", "synchronized", "reopened", "closed"}


async def on_pull_request(data: dict[str, Any], *, engine: EngineAPI, host: str, **_: Any) -> None:
    if data.get("action") not in ACTIONS:
        return
    project = f"{host}/{data['repository']['full_name']}"
    await engine.change_updated(Change.of_pull(project, data["pull_request"]))
