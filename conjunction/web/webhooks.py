"""Webhook intake: check, deduplicate, store, answer. The job queue does the work after.

Each forge's route (`/webhooks/<driver>`, conjunction/web/<forge>/webhook.py) verifies its
deliveries: one without a well-formed signature is refused before its body is read; a body is read
in chunks under the size cap while its HMAC is computed, a large one only in one of a few slots
(conjunction/web/bodies.py). It then hands the delivery to `accept`: a delivery is stored and queued
only when it can be processed: a payload that does not fit its event family's model is answered 200
"ignored", since no retry could make it succeed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from aiohttp import web
from pydantic import BaseModel, ValidationError

from conjunction import forges, metrics
from conjunction.delivery_owner import delivery_owner
from conjunction.intake import Incoming
from conjunction.limits import DELIVERY_ID
from conjunction.web.bodies import parse_json, problems
from conjunction.web.context import RUNTIME, json_answer
from conjunction.web.errors import RequestError

log = logging.getLogger(__name__)

KEPT_HEADERS = {"content-type", "user-agent", "x-github-hook-installation-target-id"}
DELIVERY = re.compile(rf"[!-~]{{1,{DELIVERY_ID}}}")  # visible ASCII: GitHub and GitLab send UUIDs


def delivery_id_of(request: web.Request, forge: str, headers: tuple[str, ...], default: str) -> str:
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


async def accept(
    request: web.Request,
    forge: str,
    event: str,
    delivery_id: str,
    body: bytearray,
    models: Mapping[str, type[BaseModel]],
) -> web.Response:
    """Check an authenticated delivery, then store it and queue its processing (with others
    arriving meanwhile, `conjunction.intake`); a repeated delivery id does nothing."""
    model = models.get(event)
    if model is None:
        return _ignored(forge, delivery_id, event, "event type not handled")
    try:
        payload = parse_json(body, model)
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
        owner=delivery_owner(_host(request, forge), payload),
    )
    if not await request.app[RUNTIME].intake.store(incoming):
        metrics.DELIVERIES.labels(forge, "duplicate").inc()
        log.info("duplicate delivery ignored", extra=extra)
        return json_answer({"status": "duplicate", "delivery": delivery_id})
    metrics.DELIVERIES.labels(forge, "accepted").inc()
    log.info("delivery accepted", extra=extra)
    return json_answer({"status": "accepted", "delivery": delivery_id}, status=202)


def _host(request: web.Request, forge: str) -> str:
    """The host in the names of the forge's projects."""
    settings = request.app[RUNTIME].settings
    driver = next(driver for driver in forges.DRIVERS if driver.name == forge)
    return settings.forge(driver.settings).host or forge


def _text(header: str) -> str:
    """A header value as text a database can store: bytes that are not UTF-8 replaced."""
    return header.encode(errors="surrogateescape").decode(errors="replace")


def _ignored(forge: str, delivery_id: str, event: str, reason: str) -> web.Response:
    metrics.DELIVERIES.labels(forge, "ignored").inc()
    log.info("delivery ignored: %s", reason, extra={"delivery_id": delivery_id, "event": event})
    return json_answer({"status": "ignored", "event": event, "reason": reason})
