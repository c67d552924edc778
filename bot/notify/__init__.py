"""Notifications (`notify:`): Slack incoming webhooks, a generic signed JSON webhook and IRC.

`Notifier.send` delivers one message on one channel and raises when it could not: the job that
called it is retried by the queue, or dead at once (`PermanentError`) when retrying cannot help —
a secret missing from CONJUNCTION_SECRETS_FILE, a private address, a URL the receiver refuses.
Channel secrets come only from the secrets file, and only for the projects its globs allow.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import urlsplit

import aiohttp

from bot.forges.address_guard import AddressRefused, GuardedResolver, check_literal
from bot.notify import message
from bot.notify.irc import IrcError, IrcPool
from bot.notify.message import Message
from bot.queue import PermanentError
from bot.secrets import SecretRefused, SecretStore
from config.repo_config import Notify
from config.settings import Settings

SIGNATURE_HEADER = "X-Conjunction-Signature-256"
TIMEOUT = aiohttp.ClientTimeout(total=20)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Notifier:
    def __init__(
        self, settings: Settings, secrets: SecretStore, irc: IrcPool | None = None
    ) -> None:
        self.settings = settings
        self.secrets = secrets
        self.irc = irc or IrcPool(allow_private=settings.allow_private_webhooks)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, project: str, channel: Notify, text: Message) -> None:
        """Deliver one message on one of `project`'s channels."""
        if channel.slack is not None:
            url = self._secret(channel.slack, project)
            await self._post(url, json.dumps(message.slack(text)).encode(), {})
        elif channel.webhook is not None:
            body = json.dumps(message.webhook(text)).encode()
            headers = {}
            if channel.webhook.secret is not None:
                secret = self._secret(channel.webhook.secret, project)
                headers[SIGNATURE_HEADER] = signature(secret, body)
            await self._post(channel.webhook.url, body, headers)
        elif channel.irc is not None:
            host, port = channel.irc.address
            try:
                await self.irc.send(
                    host, port, channel.irc.tls, channel.irc.channel, message.irc(text)
                )
            except IrcError as exc:
                raise OSError(str(exc)) from None  # the queue retries it

    def _secret(self, name: str, project: str) -> str:
        """A channel's secret that `project` may use; retrying cannot help when it may not."""
        try:
            return self.secrets.value(name, project)
        except SecretRefused as exc:
            raise PermanentError(str(exc)) from None

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            if not self.settings.allow_private_webhooks:
                check_literal((urlsplit(url).hostname or "").strip("[]"))
            async with (await self._http()).post(
                url,
                data=body,
                headers={"Content-Type": "application/json", **headers},
                allow_redirects=False,
            ) as answer:
                if answer.status == 429 or answer.status >= 500:
                    raise OSError(f"{answer.status} from the notification receiver")
                if answer.status >= 300:
                    raise PermanentError(f"the notification receiver answered {answer.status}")
        except AddressRefused as exc:
            raise PermanentError(str(exc)) from None

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = (
                aiohttp.TCPConnector()
                if self.settings.allow_private_webhooks
                else aiohttp.TCPConnector(resolver=GuardedResolver())
            )
            self._session = aiohttp.ClientSession(connector=connector, timeout=TIMEOUT)
        return self._session

    async def close(self) -> None:
        await self.irc.close()
        if self._session is not None:
            await self._session.close()
