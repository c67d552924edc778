"""A real HTTP receiver on loopback for webhook tests, standing in for a CI system.

It checks `X-Conjunction-Signature-256` as a CI system should (HMAC-SHA256 of the raw body,
compared in constant time) and answers 401 when it does not match; it records every request
and answers as the test tells it, in order (by default 200 with `{}`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
from aiohttp import web
from multidict import CIMultiDict

HOOK_SECRET = "hook-signing-secret-value"


@dataclass
class Received:
    method: str
    path: str
    headers: CIMultiDict[str]
    body: bytes
    signature_ok: bool

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {key: value for key, [value] in parse_qs(self.body.decode()).items()}


@dataclass
class Answer:
    status: int = 200
    body: str = "{}"
    headers: dict[str, str] = field(default_factory=dict)
    echo: bool = False  # answer with the request's headers and body, as some servers do
    delay: float = 0.0  # seconds before answering


@dataclass
class Receiver:
    secret: str | None = HOOK_SECRET
    base: str = ""
    received: list[Received] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return self.base.rstrip("/") + path

    def answer(self, status: int = 200, body: Any = "{}", **options: Any) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        self.answers.append(Answer(status, text, **options))

    def signed(self, body: bytes, signature: str | None) -> bool:
        if self.secret is None or signature is None:
            return False
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        signature_ok = self.signed(body, request.headers.get("X-Conjunction-Signature-256"))
        self.received.append(
            Received(
                request.method, request.path_qs, CIMultiDict(request.headers), body, signature_ok
            )
        )
        if self.secret is not None and not signature_ok:
            return web.json_response({"message": "bad signature"}, status=401)
        answer = self.answers.pop(0) if self.answers else Answer()
        await asyncio.sleep(answer.delay)
        text = answer.body
        if answer.echo:
            text = json.dumps({"headers": dict(request.headers), "body": body.decode()})
        return web.Response(
            status=answer.status,
            text=text,
            headers=answer.headers,
            content_type="application/json",
        )


async def start_receiver(aiohttp_server: Any, secret: str | None = HOOK_SECRET) -> Receiver:
    receiver = Receiver(secret)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver.handle)
    server = await aiohttp_server(app)
    receiver.base = str(server.make_url("/"))
    return receiver


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    return await start_receiver(aiohttp_server)
