"""Gitea and Forgejo events, processed from the job queue: each module translates one event
family (`push`: the config; `runs`: Actions runs and commit statuses; `pull_request`: pre-merge
runs; `issue_comment`: commands).

A new event family is a model in conjunction/forges/gitea/payloads.py and a handler here; until
then the intake answers it "ignored".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from conjunction.engine_api import EngineAPI
from conjunction.forges.gitea.events import issue_comment, pull_request, push, runs
from conjunction.models import Delivery

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[None]]

HANDLERS: dict[str, Handler] = {
    "push": push.on_push,
    "status": runs.on_status,
    "workflow_run": runs.on_workflow_run,
    "action_run": runs.on_action_run,
    "action_run_success": runs.on_action_run,
    "action_run_failure": runs.on_action_run,
    "action_run_recover": runs.on_action_run,
    "pull_request": pull_request.on_pull_request,
    "issue_comment": issue_comment.on_issue_comment,
}


class GiteaDeliveries:
    """Job handler: replays a stored Gitea or Forgejo delivery through the handler of its
    event."""

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
