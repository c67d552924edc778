"""Stored deliveries replayed from the job queue, for a forge whose events are plain JSON
handed to one handler an event name (GitLab, Gitea and Forgejo; GitHub's go through
gidgethub's router)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from conjunction.engine_api import EngineAPI
from conjunction.models import Delivery

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[None]]


class StoredDeliveries:
    """Job handler: replays a stored delivery through the handler of its event; an event
    without one, or a body that is not a JSON object, is left alone."""

    def __init__(self, engine: EngineAPI, host: str, handlers: Mapping[str, Handler]) -> None:
        self.engine = engine
        self.host = host
        self.handlers = handlers

    async def __call__(self, payload: dict[str, Any]) -> None:
        async with self.engine.sessions() as session:
            delivery = await session.get(Delivery, payload["delivery"])
        if delivery is None:
            return
        handler = self.handlers.get(delivery.event)
        data = json.loads(delivery.body)
        if handler is None or not isinstance(data, dict):
            return
        log.info(
            "processing %s",
            delivery.event,
            extra={"delivery_id": delivery.delivery_id, "event": delivery.event},
        )
        await handler(data, engine=self.engine, host=self.host, delivery_id=delivery.delivery_id)
