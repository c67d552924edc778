"""`pull_request` opened, synchronize (a push), reopened or closed: a change of an upstream,
run against its downstreams before it is merged (CONTRACT §8)."""

from __future__ import annotations

from typing import Any

from gidgethub import routing, sansio

from conjunction.engine_api import EngineAPI
from conjunction.runs import Change

router = routing.Router()

ACTIONS = ("opened", "synchronize", "reopened", "closed")


def change_of(host: str, payload: dict[str, Any]) -> Change:
    """The pull request as a `Change` of the repository it would merge into."""
    return Change.of_pull(f"{host}/{payload['repository']['full_name']}", payload["pull_request"])


async def on_pull_request(
    event: sansio.Event, gh: Any, *args: Any, engine: EngineAPI, host: str, **kw: Any
) -> None:
    await engine.change_updated(change_of(host, event.data))


for _action in ACTIONS:
    router.register("pull_request", action=_action)(on_pull_request)
