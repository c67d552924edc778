"""`issue_comment` created: a new comment on an issue or a pull request may hold commands
(`/conjunction …`, CONTRACT §9). An edited or deleted comment is not a new command."""

from __future__ import annotations

from typing import Any

from conjunction.codehost import CommentRef
from conjunction.engine_api import CommentPosted, EngineAPI


async def on_issue_comment(
    data: dict[str, Any], *, engine: EngineAPI, host: str, delivery_id: str = "", **_: Any
) -> None:
    if data.get("action") != "created":
        return
    issue, comment = data["issue"], data["comment"]
    posted = CommentPosted(
        forge="gitea",
        delivery_id=delivery_id,
        comment=CommentRef(
            project=f"{host}/{data['repository']['full_name']}",
            number=int(issue["number"]),
            id=int(comment["id"]),
            # `is_pull`; the issue of a pull request carries `pull_request` too
            on_change=bool(data.get("is_pull")) or issue.get("pull_request") is not None,
        ),
        author=comment["user"]["login"],
        body=comment.get("body") or "",
    )
    await engine.comment_posted(posted)
