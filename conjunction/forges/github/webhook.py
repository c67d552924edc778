"""POST /webhooks/github: a delivery signed with the webhook secret (HMAC-SHA256 of the body
in `X-Hub-Signature-256`), refused before its body is read when the signature is malformed."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid

from aiohttp import web

from conjunction import metrics
from conjunction.forges.github.payloads import PAYLOADS
from conjunction.forges.github.settings import GitHubSettings
from conjunction.web import webhooks
from conjunction.web.bodies import large_body_slot, read_body
from conjunction.web.context import RUNTIME, json_error

SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")


async def webhook(request: web.Request) -> web.Response:
    started = time.perf_counter()
    secret = request.app[RUNTIME].settings.forge(GitHubSettings).webhook_secret
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
            delivery_id = webhooks.delivery_id_of(
                request, "github", ("X-GitHub-Delivery",), uuid.uuid4().hex
            )
            return await webhooks.accept(request, "github", event, delivery_id, body, PAYLOADS)
    finally:
        metrics.WEBHOOK_SECONDS.labels("github").observe(time.perf_counter() - started)
