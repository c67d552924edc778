"""`Merge Request Hook`: a change of an upstream, run against its downstreams before it is
merged (CONTRACT §8). Opened, reopened, updated with new commits (`oldrev`), closed, merged;
other updates (a title, a label, an approval) change nothing."""

from __future__ import annotations

from typing import Any

from conjunction.engine_api import EngineAPI
from conjunction.runs import Change

STATES = {"opened": "open", "closed": "closed", "merged": "merged", "locked": "closed"}
ACTIONS = {"open", "reopen", "update", "close", "merge"}


def change_of(host: str, hook: dict[str, Any]) -> Change:
    """The merge request as a `Change` of the project it would merge into."""
    request = hook["object_attributes"]
    source, target = request.get("source_project_id"), request.get("target_project_id")
    return Change(
        project=f"{host}/{hook['project']['path_with_namespace']}",
        number=int(request["iid"]),
        url=request["url"],
        head_sha=request["last_commit"]["id"],
        base_sha=str((request.get("diff_refs") or {}).get("base_sha") or ""),
        author=(hook.get("user") or {}).get("username"),
        fork=source is not None and target is not None and source != target,
        state=STATES.get(str(request.get("state")), "open"),  # type: ignore[arg-type]
        title=str(request.get("title") or ""),
    )


async def on_merge_request(hook: dict[str, Any], *, engine: EngineAPI, host: str, **_: Any) -> None:
    request = hook.get("object_attributes") or {}
    action = request.get("action")
    if action not in ACTIONS or (action == "update" and not request.get("oldrev")):
        return  # not a push to it: its head is the one already run
    await engine.change_updated(change_of(host, hook))
