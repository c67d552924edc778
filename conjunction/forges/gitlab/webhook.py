"""POST /webhooks/gitlab: a delivery carrying the webhook secret in `X-Gitlab-Token`."""

from __future__ import annotations

import hashlib
import hmac
import time

from aiohttp import web

from conjunction import metrics
from conjunction.forges.gitlab.payloads import PAYLOADS
from conjunction.forges.gitlab.settings import GitLabSettings
from conjunction.web import webhooks
from conjunction.web.bodies import large_body_slot, read_body
from conjunction.web.context import RUNTIME, json_error


async def webhook(request: web.Request) -> web.Response:
    started = time.perf_counter()
    secret = request.app[RUNTIME].settings.forge(GitLabSettings).webhook_secret
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
            delivery_id = webhooks.delivery_id_of(
                request,
                "gitlab",
                ("X-Gitlab-Event-UUID", "Idempotency-Key"),
                hashlib.sha256(body).hexdigest(),
            )
            return await webhooks.accept(request, "gitlab", event, delivery_id, body, PAYLOADS)
    finally:
        metrics.WEBHOOK_SECONDS.labels("gitlab").observe(time.perf_counter() - started)
