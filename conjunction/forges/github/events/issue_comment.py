"""`issue_comment` created: a new comment on an issue or a pull request may hold commands
(`/conjunction …`, CONTRACT §9). An edited comment is not a new command."""

from __future__ import annotations

from typing import Any

from gidgethub import routing, sansio

from conjunction.codehost import CommentRef
from conjunction.engine_api import CommentPosted, EngineAPI

router = routing.Router()


@router.register("issue_comment", action="created")
async def on_comment_created(
    event: sansio.Event, gh: Any, *args: Any, engine: EngineAPI, host: str, **kw: Any
) -> None:
    issue, comment = event.data["issue"], event.data["comment"]
    posted = CommentPosted(
        forge="github",
        delivery_id=event.delivery_id,
        comment=CommentRef(
            project=f"{host}/{event.data['repository']['full_name']}",
            number=int(issue["number"]),
            id=int(comment["id"]),
            on_change=issue.get("pull_request") is not None,
        ),
        author=comment["user"]["login"],
        body=comment.get("body") or "",
    )
    await engine.comment_posted(posted)
