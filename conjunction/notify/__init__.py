"""Notifications (`notify:`): Slack incoming webhooks, a generic signed JSON webhook, IRC and
Apprise URLs.

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

from conjunction.address_guard import AddressRefused, GuardedResolver, check_literal
from conjunction.config.repo_config import Notify
from conjunction.config.settings import Settings
from conjunction.notify import apprise_channel, message
from conjunction.notify.irc import IrcError, IrcPool
from conjunction.notify.message import Message
from conjunction.queue import PermanentError
from conjunction.secrets import SecretRefused, SecretStore

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
            where = f"the Slack URL in secret {channel.slack}"  # the URL itself is the secret
            body = json.dumps(message.slack(text)).encode()
            await self._post(url, body, {}, where, scheme="https")
        elif channel.webhook is not None:
            body = json.dumps(message.webhook(text)).encode()
            headers = {}
            if channel.webhook.secret is not None:
                secret = self._secret(channel.webhook.secret, project)
                headers[SIGNATURE_HEADER] = signature(secret, body)
            await self._post(channel.webhook.url, body, headers, "the notify webhook URL")
        elif channel.irc is not None:
            host, port = channel.irc.address
            try:
                await self.irc.send(
                    host, port, channel.irc.tls, channel.irc.channel, message.irc(text)
                )
            except IrcError as exc:
                raise OSError(str(exc)) from None  # the queue retries it
        elif channel.apprise is not None:
            url = self._secret(channel.apprise, project)
            title, words = message.apprise(text)
            try:
                await apprise_channel.send(
                    url,
                    title,
                    words,
                    where=f"the Apprise URL in secret {channel.apprise}",
                    allow_private=self.settings.allow_private_webhooks,
                )
            except apprise_channel.AppriseRefused as exc:
                raise PermanentError(str(exc)) from None

    def _secret(self, name: str, project: str) -> str:
        """A channel's secret that `project` may use; retrying cannot help when it may not."""
        try:
            return self.secrets.value(name, project)
        except SecretRefused as exc:
            raise PermanentError(str(exc)) from None

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str], where: str, scheme: str = "http(s)"
    ) -> None:
        """POST to `url`, named `where` in every error: aiohttp's errors quote the whole URL,
        and a Slack URL is a secret that must reach neither a job's last error nor the log."""
        invalid = f"{where} is not a valid {scheme} URL"
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:  # e.g. an unclosed IPv6 bracket
            raise PermanentError(invalid) from None
        try:
            if not self.settings.allow_private_webhooks:
                check_literal(host.strip("[]"))
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
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError):
            raise PermanentError(invalid) from None
        except aiohttp.ClientError as exc:  # connection, TLS, protocol: the queue retries it
            raise OSError(f"{where} could not be reached ({type(exc).__name__})") from None
        except ValueError as exc:  # a request aiohttp will not make; its text may hold the URL
            raise PermanentError(f"the request to {where} failed ({type(exc).__name__})") from None

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
