"""Webhook deliveries signed as GitHub signs them (`X-Hub-Signature-256`), with the secret the
tests' and the benchmarks' servers are configured with."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

WEBHOOK_SECRET = "webhook-secret-for-tests"


def signed_headers(event: str, body: bytes, delivery: str | None = None) -> dict[str, str]:
    digest = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
    }


def signed(
    event: str, payload: dict[str, Any], delivery: str | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, signed_headers(event, body, delivery)
