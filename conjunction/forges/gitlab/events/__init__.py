"""GitLab events, processed from the job queue: each module translates one event family.

GitLab sends one `X-Gitlab-Event` per family; a System Hook (set up by an instance admin) carries
pushes and project changes of every project on the instance in one family.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from conjunction.engine_api import EngineAPI
from conjunction.forges.gitlab.events import merge_request, note, pipeline, push, system
from conjunction.models import Delivery

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[None]]

HANDLERS: dict[str, Handler] = {
    "Merge Request Hook": merge_request.on_merge_request,
    "Note Hook": note.on_note,
    "Pipeline Hook": pipeline.on_pipeline,
    "Push Hook": push.on_push,
    "System Hook": system.on_system_hook,
}


class GitLabDeliveries:
    """Job handler: replays a stored GitLab delivery through the handler of its event."""

    def __init__(self, engine: EngineAPI, host: str) -> None:
        self.engine = engine
        self.host = host

    async def __call__(self, payload: dict[str, Any]) -> None:
        async with self.engine.sessions() as session:
            delivery = await session.get(Delivery, payload["delivery"])
        if delivery is None:
            return
        handler = HANDLERS.get(delivery.event)
        data = json.loads(delivery.body)
        if handler is None or not isinstance(data, dict):
            return
        log.info(
            "processing %s",
            delivery.event,
            extra={"delivery_id": delivery.delivery_id, "event": delivery.event},
        )
        await handler(data, engine=self.engine, host=self.host, delivery_id=delivery.delivery_id)
