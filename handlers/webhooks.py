"""Webhook intake: verify, deduplicate, store, answer. The job queue does the work afterwards."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid

from aiohttp import web
from gidgethub import ValidationFailure
from gidgethub.sansio import validate_event
from sqlalchemy.exc import IntegrityError

from bot import metrics
from bot.models import Delivery
from bot.queue import JobQueue
from handlers.context import RUNTIME, json_answer, json_error

log = logging.getLogger(__name__)

GITHUB_EVENTS = {
    "check_suite",
    "installation",
    "installation_repositories",
    "ping",
    "push",
    "status",
    "workflow_run",
}
GITLAB_EVENTS = {"Pipeline Hook", "Push Hook", "System Hook"}
KEPT_HEADERS = {"content-type", "user-agent", "x-github-hook-installation-target-id"}

routes = web.RouteTableDef()


async def _accept(
    request: web.Request, forge: str, delivery_id: str, event: str, body: bytes
) -> web.Response:
    """Store the delivery and queue its processing in one transaction; a repeat does nothing."""
    runtime = request.app[RUNTIME]
    extra = {"forge": forge, "delivery_id": delivery_id, "event": event}
    try:
        json.loads(body)
    except ValueError:
        metrics.DELIVERIES.labels(forge, "malformed").inc()
        return json_error(400, "the body is not valid JSON")
    headers = {key.lower(): value for key, value in request.headers.items()}
    try:
        async with runtime.sessions.begin() as session:
            delivery = Delivery(
                forge=forge,
                delivery_id=delivery_id,
                event=event,
                headers={key: value for key, value in headers.items() if key in KEPT_HEADERS},
                body=body.decode("utf-8", errors="replace"),
            )
            session.add(delivery)
            await session.flush()
            kind = f"{forge}_delivery"
            if kind in runtime.worker.handlers:  # else kept until this forge's adapter is on
                await JobQueue.enqueue(session, kind, {"delivery": delivery.id})
    except IntegrityError:
        metrics.DELIVERIES.labels(forge, "duplicate").inc()
        log.info("duplicate delivery ignored", extra=extra)
        return json_answer({"status": "duplicate", "delivery": delivery_id})
    runtime.worker.wakeup.set()
    metrics.DELIVERIES.labels(forge, "accepted").inc()
    log.info("delivery accepted", extra=extra)
    return json_answer({"status": "accepted", "delivery": delivery_id}, status=202)


def _ignored(forge: str, delivery_id: str, event: str) -> web.Response:
    metrics.DELIVERIES.labels(forge, "ignored").inc()
    log.info("event type not handled, ignored", extra={"delivery_id": delivery_id, "event": event})
    return json_answer({"status": "ignored", "event": event})


@routes.post("/webhooks/github")
async def github_webhook(request: web.Request) -> web.Response:
    started = time.perf_counter()
    secret = request.app[RUNTIME].settings.github_webhook_secret
    if not secret:
        return json_error(404, "GitHub is not configured on this server")
    body = await request.read()
    signature = request.headers.get("X-Hub-Signature-256")
    if not signature:
        metrics.DELIVERIES.labels("github", "unauthorized").inc()
        return json_error(401, "missing X-Hub-Signature-256 header")
    try:
        validate_event(body, signature=signature, secret=secret)
    except ValidationFailure:
        metrics.DELIVERIES.labels("github", "unauthorized").inc()
        return json_error(401, "X-Hub-Signature-256 does not match the webhook secret")
    event = request.headers.get("X-GitHub-Event", "")
    delivery_id = request.headers.get("X-GitHub-Delivery") or uuid.uuid4().hex
    try:
        if event not in GITHUB_EVENTS:
            return _ignored("github", delivery_id, event)
        return await _accept(request, "github", delivery_id, event, body)
    finally:
        metrics.WEBHOOK_SECONDS.labels("github").observe(time.perf_counter() - started)


@routes.post("/webhooks/gitlab")
async def gitlab_webhook(request: web.Request) -> web.Response:
    started = time.perf_counter()
    secret = request.app[RUNTIME].settings.gitlab_webhook_secret
    if not secret:
        return json_error(404, "GitLab webhooks are not configured on this server")
    token = request.headers.get("X-Gitlab-Token", "")
    if not hmac.compare_digest(token.encode(), secret.encode()):
        metrics.DELIVERIES.labels("gitlab", "unauthorized").inc()
        return json_error(401, "X-Gitlab-Token does not match the webhook secret")
    body = await request.read()
    event = request.headers.get("X-Gitlab-Event", "")
    # older GitLab sends no event UUID: the retry key, else the body, identifies a repeat
    delivery_id = (
        request.headers.get("X-Gitlab-Event-UUID")
        or request.headers.get("Idempotency-Key")
        or hashlib.sha256(body).hexdigest()
    )
    try:
        if event not in GITLAB_EVENTS:
            return _ignored("gitlab", delivery_id, event)
        return await _accept(request, "gitlab", delivery_id, event, body)
    finally:
        metrics.WEBHOOK_SECONDS.labels("gitlab").observe(time.perf_counter() - started)
