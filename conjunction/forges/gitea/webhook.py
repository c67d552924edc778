"""POST /webhooks/gitea: a Gitea or Forgejo delivery signed with the webhook secret."""

from __future__ import annotations

import hashlib
import hmac
import re
import time

from aiohttp import web

from conjunction import metrics
from conjunction.forges.gitea.payloads import PAYLOADS
from conjunction.forges.gitea.settings import GiteaSettings
from conjunction.web import webhooks
from conjunction.web.bodies import large_body_slot, read_body
from conjunction.web.context import RUNTIME, json_error

HEX_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")  # Gitea's and Forgejo's: the bare hex digest
GITEA_SIGNATURES = ("X-Gitea-Signature", "X-Forgejo-Signature")


async def webhook(request: web.Request) -> web.Response:
    """Gitea signs the body with HMAC-SHA256 in `X-Gitea-Signature`; Forgejo sends the same
    digest in `X-Forgejo-Signature` too (and its `X-Forgejo-*` delivery and event headers beside
    the `X-Gitea-*` ones). Either signature header will do; a given one must match."""
    started = time.perf_counter()
    secret = request.app[RUNTIME].settings.forge(GiteaSettings).webhook_secret
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
            delivery_id = webhooks.delivery_id_of(
                request,
                "gitea",
                ("X-Gitea-Delivery", "X-Forgejo-Delivery"),
                hashlib.sha256(body).hexdigest(),
            )
            return await webhooks.accept(request, "gitea", event or "", delivery_id, body, PAYLOADS)
    finally:
        metrics.WEBHOOK_SECONDS.labels("gitea").observe(time.perf_counter() - started)
