"""GitHub events, processed from the job queue: each module translates one event family."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gidgethub import routing, sansio
from gidgethub.abc import GitHubAPI
from sqlalchemy import bindparam, select

from conjunction.engine_api import EngineAPI
from conjunction.forges.github.events import (
    check_suite,
    installation,
    issue_comment,
    pull_request,
    push,
    workflow_run,
)
from conjunction.models import Delivery

log = logging.getLogger(__name__)

router = routing.Router(
    installation.router,
    push.router,
    workflow_run.router,
    check_suite.router,
    pull_request.router,
    issue_comment.router,
)

STORED = select(Delivery.body, Delivery.event, Delivery.delivery_id).where(
    Delivery.id == bindparam("id")
)
ClientFor = Callable[[sansio.Event], Awaitable[GitHubAPI | None]]


class GitHubDeliveries:
    """Job handler: replays a stored GitHub delivery through the routers."""

    def __init__(self, engine: EngineAPI, host: str, client_for: ClientFor) -> None:
        self.engine = engine
        self.host = host
        self.client_for = client_for

    async def __call__(self, payload: dict[str, Any]) -> None:
        async with self.engine.sessions() as session:
            connection = await session.connection()
            stored = await connection.execute(STORED, {"id": payload["delivery"]})
            delivery = stored.first()
        if delivery is None:
            return
        body, name, delivery_id = delivery
        event = sansio.Event(json.loads(body), event=name, delivery_id=delivery_id)
        installation = (event.data.get("installation") or {}).get("id")
        log.info(
            "processing %s.%s",
            event.event,
            event.data.get("action", ""),
            extra={
                "delivery_id": event.delivery_id,
                "event": event.event,
                "installation_id": installation,
            },
        )
        gh = await self.client_for(event)
        await router.dispatch(event, gh, engine=self.engine, host=self.host)
