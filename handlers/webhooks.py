"""Webhook intake: verify, check, deduplicate, store, answer. The job queue does the work after.

A GitHub delivery without a well-formed signature is refused before its body is read; a body
is read in chunks under the size cap while its HMAC is computed, a large one only in one of a
few slots (handlers/bodies.py). A delivery is stored and queued only when it can be processed:
a payload that does not fit its event family's model is answered 200 "ignored", since no retry
could make it succeed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
import uuid
from collections.abc import Mapping

from aiohttp import web
from pydantic import BaseModel, ValidationError

from bot import metrics
from bot.forges.gitea import payloads as gitea_payloads
from bot.forges.github import payloads as github_payloads
from bot.forges.gitlab import payloads as gitlab_payloads
from bot.intake import Incoming
from bot.limits import DELIVERY_ID
from handlers.bodies import large_body_slot, parse_json, problems, read_body
from handlers.context import RUNTIME, json_answer, json_error
from handlers.errors import RequestError

log = logging.getLogger(__name__)

KEPT_HEADERS = {"content-type", "user-agent", "x-github-hook-installation-target-id"}
SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
HEX_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")  # Gitea's and Forgejo's: the bare hex digest
GITEA_SIGNATURES = ("X-Gitea-Signature", "X-Forgejo-Signature")
DELIVERY = re.compile(rf"[!-~]{{1,{DELIVERY_ID}}}")  # visible ASCII: GitHub and GitLab send UUIDs

routes = web.RouteTableDef()


def _delivery_id(request: web.Request, forge: str, headers: tuple[str, ...], default: str) -> str:
    """The delivery id from the first of `headers` given, else `default`."""
    for header in headers:
        delivery_id = request.headers.get(header)
        if not delivery_id:
            continue
        if not DELIVERY.fullmatch(delivery_id):
            metrics.DELIVERIES.labels(forge, "malformed").inc()
            raise RequestError(
                400, f"{header} must be at most {DELIVERY_ID} visible ASCII characters"
            )
        return delivery_id
    return default


async def _intake(
    request: web.Request,
    forge: str,
    event: str,
    delivery_id: str,
    body: bytearray,
    models: Mapping[str, type[BaseModel]],
) -> web.Response:
    """Check an authenticated delivery, then store it and queue its processing (with others
    arriving meanwhile, `bot.intake`); a repeated delivery id does nothing."""
    model = models.get(event)
    if model is None:
        return _ignored(forge, delivery_id, event, "event type not handled")
    try:
        parse_json(body, model)
    except RequestError:
        metrics.DELIVERIES.labels(forge, "malformed").inc()
        raise
    except ValidationError as exc:
        return _ignored(forge, delivery_id, event, f"payload not as expected: {problems(exc)}")
    extra = {"forge": forge, "delivery_id": delivery_id, "event": event}
    headers = {key.lower(): _text(value) for key, value in request.headers.items()}
    incoming = Incoming(
        forge=forge,
        delivery_id=delivery_id,
        event=event,
        headers={key: value for key, value in headers.items() if key in KEPT_HEADERS},
        body=body.decode(),
    )
    if not await request.app[RUNTIME].intake.store(incoming):
        metrics.DELIVERIES.labels(forge, "duplicate").inc()
        log.info("duplicate delivery ignored", extra=extra)
        return json_answer({"status": "duplicate", "delivery": delivery_id})
    metrics.DELIVERIES.labels(forge, "accepted").inc()
    log.info("delivery accepted", extra=extra)
    return json_answer({"status": "accepted", "delivery": delivery_id}, status=202)


def _text(header: str) -> str:
    """A header value as text a database can store: bytes that are not UTF-8 replaced."""
    return header.encode(errors="surrogateescape").decode(errors="replace")


def _ignored(forge: str, delivery_id: str, event: str, reason: str) -> web.Response:
    metrics.DELIVERIES.labels(forge, "ignored").inc()
    log.info("delivery ignored: %s", reason, extra={"delivery_id": delivery_id, "event": event})
    return json_answer({"status": "ignored", "event": event, "reason": reason})


@routes.post("/webhooks/github")
async def github_webhook(request: web.Request) -> web.Response:
    started = time.perf_counter()
    secret = request.app[RUNTIME].settings.github_webhook_secret
    if not secret:
        return json_error(404, "GitHub is not configured on this server")
    header = request.headers.get("X-Hub-Signature-256")
    signature = SIGNATURE.fullmatch(header or "")
    if signature is None:
        metrics.DELIVERIES.labels("github", "unauthorized").inc()
        problem = "missing" if header is None else "malformed (expected sha256=<64 hex digits>)"
        return json_error(401, f"X-Hub-Signature-256 header {problem}")
    try:
        async with large_body_slot(request):
            digest = hmac.new(secret.encode(), digestmod=hashlib.sha256)
            body = await read_body(request, digest)
            if not hmac.compare_digest(digest.hexdigest(), signature[1].lower()):
                metrics.DELIVERIES.labels("github", "unauthorized").inc()
                return json_error(401, "X-Hub-Signature-256 does not match the webhook secret")
            event = request.headers.get("X-GitHub-Event", "")
            delivery_id = _delivery_id(request, "github", ("X-GitHub-Delivery",), uuid.uuid4().hex)
            return await _intake(
                request, "github", event, delivery_id, body, github_payloads.PAYLOADS
            )
    finally:
        metrics.WEBHOOK_SECONDS.labels("github").observe(time.perf_counter() - started)


@routes.post("/webhooks/gitlab")
async def gitlab_webhook(request: web.Request) -> web.Response:
    started = time.perf_counter()
    secret = request.app[RUNTIME].settings.gitlab_webhook_secret
    if not secret:
        return json_error(404, "GitLab webhooks are not configured on this server")
    token = request.headers.get("X-Gitlab-Token", "")
    if not hmac.compare_digest(token.encode(errors="surrogateescape"), secret.encode()):
        metrics.DELIVERIES.labels("gitlab", "unauthorized").inc()
        return json_error(401, "X-Gitlab-Token does not match the webhook secret")
    try:
        async with large_body_slot(request):
            body = await read_body(request)
            event = request.headers.get("X-Gitlab-Event", "")
            # older GitLab sends no event UUID: the retry key, else the body, identifies a repeat
            delivery_id = _delivery_id(
                request,
                "gitlab",
                ("X-Gitlab-Event-UUID", "Idempotency-Key"),
                hashlib.sha256(body).hexdigest(),
            )
            return await _intake(
                request, "gitlab", event, delivery_id, body, gitlab_payloads.PAYLOADS
            )
    finally:
        metrics.WEBHOOK_SECONDS.labels("gitlab").observe(time.perf_counter() - started)


@routes.post("/webhooks/gitea")
async def gitea_webhook(request: web.Request) -> web.Response:
    """Gitea signs the body with HMAC-SHA256 in `X-Gitea-Signature`; Forgejo sends the same
    digest in `X-Forgejo-Signature` too (and its `X-Forgejo-*` delivery and event headers beside
    the `X-Gitea-*` ones). Either signature header will do; a given one must match."""
    started = time.perf_counter()
    secret = request.app[RUNTIME].settings.gitea_webhook_secret
    if not secret:
        return json_error(404, "Gitea webhooks are not configured on this server")
    given = [request.headers[name] for name in GITEA_SIGNATURES if name in request.headers]
    if not given or not all(HEX_SIGNATURE.fullmatch(value) for value in given):
        metrics.DELIVERIES.labels("gitea", "unauthorized").inc()
        problem = "missing" if not given else "malformed (expected 64 hex digits)"
        return json_error(401, f"X-Gitea-Signature header {problem}")
    try:
        async with large_body_slot(request):
            digest = hmac.new(secret.encode(), digestmod=hashlib.sha256)
            body = await read_body(request, digest)
            expected = digest.hexdigest()
            if not all(hmac.compare_digest(expected, value.lower()) for value in given):
                metrics.DELIVERIES.labels("gitea", "unauthorized").inc()
                return json_error(401, "X-Gitea-Signature does not match the webhook secret")
            event = request.headers.get("X-Gitea-Event") or request.headers.get("X-Forgejo-Event")
            delivery_id = _delivery_id(
                request,
                "gitea",
                ("X-Gitea-Delivery", "X-Forgejo-Delivery"),
                hashlib.sha256(body).hexdigest(),
            )
            return await _intake(
                request, "gitea", event or "", delivery_id, body, gitea_payloads.PAYLOADS
            )
    finally:
        metrics.WEBHOOK_SECONDS.labels("gitea").observe(time.perf_counter() - started)
