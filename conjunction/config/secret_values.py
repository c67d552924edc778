"""Secrets written into `.conjunction.yml` by mistake.

A config lives in the repository, often a public one, so it names secrets and never holds
them (CONTRACT §4). Where a secret's name is expected, a URL is a value: a webhook URL carries
its token in its path, an Apprise URL its credentials. Where a URL is expected, its user and
password would be published with it. The messages never repeat the value.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

STORE_IT = (
    "store it in the server's secrets file (CONJUNCTION_SECRETS_FILE) under a name and write "
    "the name here"
)

# service, host (a leading "*." takes any subdomain), and the path its token sits under
_WEBHOOKS: tuple[tuple[str, str, str], ...] = (
    ("Slack", "hooks.slack.com", "/"),
    ("Discord", "discord.com", "/api/webhooks"),
    ("Discord", "discordapp.com", "/api/webhooks"),
    ("Discord", "*.discord.com", "/api/webhooks"),
    ("Microsoft Teams", "outlook.office.com", "/webhook"),
    ("Microsoft Teams", "*.webhook.office.com", "/"),
    ("Microsoft Teams", "*.logic.azure.com", "/workflows"),
    ("Telegram", "api.telegram.org", "/bot"),
    ("Zapier", "hooks.zapier.com", "/"),
    ("Google Chat", "chat.googleapis.com", "/v1/spaces"),
)
# tokens people paste whole: Slack, GitHub, GitLab, Matrix (Synapse)
_TOKEN = re.compile(r"^(xox[abposr]-|gh[pousr]_|github_pat_|glpat-|syt_)[A-Za-z0-9_-]{8,}")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def secret_name_problem(value: str) -> str | None:
    """Why `value`, written where the name of a secret is expected, is a secret itself."""
    text = value.strip()
    if _TOKEN.match(text):
        return f"looks like an access token; a token is a secret: {STORE_IT}"
    # a webhook's address copied without its scheme is as much a secret
    schemeless = not _SCHEME.match(text)
    parts = _split(f"https://{text}" if schemeless else text)
    webhook = _webhook_service(parts) if parts else None
    if webhook is not None:
        return f"looks like a {webhook} webhook URL; a webhook URL is a secret: {STORE_IT}"
    if schemeless:
        return None
    if parts is not None and _has_credentials(parts):
        return f"looks like a URL with credentials; a URL with credentials is a secret: {STORE_IT}"
    return f"is a URL, not the name of a secret; the URL may hold a secret: {STORE_IT}"


def url_problem(value: str) -> str | None:
    """Why `value`, written where a URL is expected, publishes a secret with it."""
    parts = _split(value.strip())
    if parts is None:
        return None
    if _has_credentials(parts):
        return (
            "holds a user and password; they are a secret: put them in a header with a "
            "${secret:NAME} placeholder instead"
        )
    webhook = _webhook_service(parts)
    if webhook is not None:
        return (
            f"looks like a {webhook} webhook URL; a webhook URL is a secret: use notify's "
            f"{'slack' if webhook == 'Slack' else 'apprise'}: channel with the URL "
            "stored in the server's secrets file (CONJUNCTION_SECRETS_FILE)"
        )
    return None


def _split(url: str) -> SplitResult | None:
    try:
        return urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket
        return None


def _has_credentials(parts: SplitResult) -> bool:
    return bool(parts.username or parts.password)


def _webhook_service(parts: SplitResult) -> str | None:
    if parts.scheme not in ("http", "https"):
        return None
    host = (parts.hostname or "").lower()
    for service, pattern, path in _WEBHOOKS:
        wildcard = pattern.startswith("*.")
        if (host.endswith(pattern[1:]) if wildcard else host == pattern) and (
            parts.path.startswith(path)
        ):
            return service
    return None
