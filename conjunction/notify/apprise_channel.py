"""Notifications through the Apprise library (`notify: - apprise: NAME`): one Apprise URL from a
named secret — Discord, Matrix, Microsoft Teams, e-mail, ntfy, Mastodon and the rest.

Apprise is synchronous: each message is sent from a thread (`asyncio.to_thread`).

The address guard is the webhooks' rule (`conjunction.address_guard`): unless
CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS allows them, loopback, private, link-local and other
non-public addresses are refused. Apprise's transports (requests for HTTP, smtplib for e-mail, …)
all resolve names through `socket.getaddrinfo`, which is wrapped once: while a message is sent,
its calls are checked — in the sending thread and in the threads Apprise hands the work to,
which carry the sender's context variables — and the addresses a connection is opened to are
the ones that were checked. Every other caller of `getaddrinfo` is unaffected. A refusal
fails the job for good; nothing else is retried forever either (the queue's attempts).

Apprise's own log names the URLs it sends to, and an Apprise URL holds its credentials: its
logger is silenced, urllib3's lines logged while a message is sent (they hold the URL's path)
are dropped, and every error names the secret, never its value.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from conjunction.address_guard import address_kind

# while a guarded message is sent: the refusals met so far (shared with Apprise's threads)
_REFUSED: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "apprise_refused", default=None
)
_lock = threading.Lock()
_original_getaddrinfo: Callable[..., Any] | None = None
_SENDING: contextvars.ContextVar[bool] = contextvars.ContextVar("apprise_sending", default=False)
# Apprise lowers its logger's level while it sends, to capture its own lines: a filter, which
# drops every record before any handler sees it, keeps the URL out of the log all the same.
logging.getLogger("apprise").addFilter(lambda _record: False)


def _not_while_sending(_record: logging.LogRecord) -> bool:
    return not _SENDING.get()


for _name in ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry"):
    logging.getLogger(_name).addFilter(_not_while_sending)


class AppriseRefused(Exception):
    """The URL is not one Apprise knows, or leads to an address it may not reach."""


class AppriseFailed(OSError):
    """The service did not take the message (retrying may help)."""


def _checked_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    assert _original_getaddrinfo is not None
    infos = _original_getaddrinfo(host, *args, **kwargs)
    refused = _REFUSED.get()
    if refused is not None:
        for info in infos:
            address = str(info[4][0])
            kind = address_kind(address)
            if kind is not None:
                problem = f"{host} resolves to {address}, {kind}"
                refused.append(problem)
                raise socket.gaierror(socket.EAI_FAIL, f"refused: {problem}")
    return infos


def _install_guard() -> None:
    """Wrap `socket.getaddrinfo` once; it checks only in threads sending a guarded message."""
    global _original_getaddrinfo
    with _lock:
        if _original_getaddrinfo is None:
            _original_getaddrinfo = socket.getaddrinfo
            socket.getaddrinfo = _checked_getaddrinfo


def _send(url: str, title: str, body: str, where: str, guard: bool) -> None:
    import apprise  # here: it takes most of a second to import, and most servers never use it

    sender = apprise.Apprise(asset=apprise.AppriseAsset(async_mode=False))
    if not sender.add(url):
        raise AppriseRefused(f"{where} is not a URL Apprise knows")
    refused: list[str] = []
    token = _REFUSED.set(refused if guard else None)
    sending = _SENDING.set(True)
    try:
        sent = sender.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
    finally:
        _SENDING.reset(sending)
        _REFUSED.reset(token)
    if refused:
        raise AppriseRefused(
            f"refused to send to {where}: {refused[0]} "
            "(set CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS=true for services inside your network)"
        )
    if not sent:
        raise AppriseFailed(f"{where} did not take the notification")


async def send(url: str, title: str, body: str, *, where: str, allow_private: bool) -> None:
    """Send one message to the Apprise URL `url`, named `where` in every error."""
    if not allow_private:
        _install_guard()
    await asyncio.to_thread(_send, url, title, body, where, not allow_private)
