"""`pull_request` opened, synchronize (a push), reopened or closed: a change of an upstream,
run against its downstreams before it is merged (CONTRACT §8)."""

from __future__ import annotations

from typing import Any, Literal

from gidgethub import routing, sansio

from bot.engine_api import EngineAPI
from bot.runs import Change

router = routing.Router()

ACTIONS = ("opened", "synchronize", "reopened", "closed")


def change_of(host: str, payload: dict[str, Any]) -> Change:
    """The pull request as a `Change` of the repository it would merge into."""
    pull = payload["pull_request"]
    base_repo = (pull["base"].get("repo") or {}).get("full_name")
    head_repo = (pull["head"].get("repo") or {}).get("full_name")
    full_name = payload["repository"]["full_name"]
    state: Literal["open", "closed", "merged"] = "open"
    if pull["state"] == "closed":
        state = "merged" if pull.get("merged") else "closed"
    return Change(
        project=f"{host}/{full_name}",
        number=int(pull["number"]),
        url=pull["html_url"],
        head_sha=pull["head"]["sha"],
        base_sha=pull["base"]["sha"],
        author=(pull.get("user") or {}).get("login"),
        # a deleted fork has no repository any more: still not the upstream's own
        fork=head_repo is None or head_repo.casefold() != (base_repo or full_name).casefold(),
        state=state,
        title=str(pull.get("title") or ""),
    )


async def on_pull_request(
    event: sansio.Event, gh: Any, *args: Any, engine: EngineAPI, host: str, **kw: Any
) -> None:
    await engine.change_updated(change_of(host, event.data))


for _action in ACTIONS:
    router.register("pull_request", action=_action)(on_pull_request)
