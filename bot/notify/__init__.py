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
from fnmatch import fnmatchcase

import aiohttp

from bot.names import project_key
from bot.notify import guard, message
from bot.notify.irc import IrcError, IrcPool
from bot.notify.message import Message
from bot.queue import PermanentError
from config.repo_config import Notify
from config.settings import Settings

SIGNATURE_HEADER = "X-Conjunction-Signature-256"
TIMEOUT = aiohttp.ClientTimeout(total=20)


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def secret_for(settings: Settings, name: str, project: str) -> str:
    """The value of a named secret that `project` may use."""
    secret = settings.secrets.get(name)
    if secret is None:
        raise PermanentError(f"secret {name!r} is not in CONJUNCTION_SECRETS_FILE")
    if not any(fnmatchcase(project_key(project), glob.lower()) for glob in secret.projects):
        raise PermanentError(f"secret {name!r} may not be used by {project}")
    return secret.value


class Notifier:
    def __init__(self, settings: Settings, irc: IrcPool | None = None) -> None:
        self.settings = settings
        self.irc = irc or IrcPool(allow_private=settings.allow_private_webhooks)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, project: str, channel: Notify, text: Message) -> None:
        """Deliver one message on one of `project`'s channels."""
        if channel.slack is not None:
            url = secret_for(self.settings, channel.slack, project)
            await self._post(url, json.dumps(message.slack(text)).encode(), {})
        elif channel.webhook is not None:
            body = json.dumps(message.webhook(text)).encode()
            headers = {}
            if channel.webhook.secret is not None:
                secret = secret_for(self.settings, channel.webhook.secret, project)
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

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            guard.check_url(url, self.settings.allow_private_webhooks)
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
        except guard.Refused as exc:
            raise PermanentError(str(exc)) from None

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            resolver = guard.PublicResolver(self.settings.allow_private_webhooks)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=resolver), timeout=TIMEOUT
            )
        return self._session

    async def close(self) -> None:
        await self.irc.close()
        if self._session is not None:
            await self._session.close()
