"""`Note Hook`: a new comment on a merge request or an issue may hold commands
(`/conjunction …`, CONTRACT §9). An edited note (`action: update`, GitLab 16.11 and later) is
not a new command; before 16.11 GitLab sent a Note Hook for new notes only, without `action`.
Comments on commits and snippets, and GitLab's own system notes, are not commands."""

from __future__ import annotations

from functools import partial
from typing import Any

from conjunction.codehost import CommentRef
from conjunction.engine_api import CommentPosted, EngineAPI
from conjunction.forges.gitlab.host import GitLabHost

ON = {"MergeRequest": "merge_request", "Issue": "issue"}  # noteable_type -> its key


async def on_note(
    data: dict[str, Any], *, engine: EngineAPI, host: str, delivery_id: str = "", **_: Any
) -> None:
    note = data["object_attributes"]
    target = data.get(ON.get(note.get("noteable_type") or "", "")) or {}
    if note.get("action", "create") != "create" or note.get("system") or "iid" not in target:
        return
    project = f"{host}/{data['project']['path_with_namespace']}"
    user = data["user"]
    gitlab = engine.adapters.host(project)
    posted = CommentPosted(
        forge="gitlab",
        delivery_id=delivery_id,
        comment=CommentRef(
            project=project,
            number=int(target["iid"]),
            id=int(note["id"]),
            on_change=note["noteable_type"] == "MergeRequest",
        ),
        author=user["username"],
        body=note.get("note") or "",
        # the hook names the author's id: their membership is asked by it, not by a name
        may_write=partial(gitlab.can_write, project, user["username"], user_id=int(user["id"]))
        if isinstance(gitlab, GitLabHost)
        else None,
    )
    await engine.comment_posted(posted)
