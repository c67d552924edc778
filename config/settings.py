"""Server settings, read once from the environment and `.env` (the environment wins)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from dotenv import dotenv_values


class SettingsError(Exception):
    """A missing or malformed setting; the message names the variable."""


@dataclass(frozen=True)
class NamedSecret:
    value: str = field(repr=False)
    projects: tuple[str, ...]


@dataclass(frozen=True)
class Settings:
    port: int = 3000
    database_url: str = "sqlite:///conjunction.db"
    public_url: str = "http://localhost:3000"
    secret_key: str | None = field(default=None, repr=False)
    max_depth: int = 5
    result_timeout: float = 6 * 3600
    poll_interval: float = 300
    secrets: Mapping[str, NamedSecret] = field(default_factory=dict, repr=False)
    admin_token: str | None = field(default=None, repr=False)
    allow_private_webhooks: bool = False
    github_app_id: str | None = None
    github_private_key: str | None = field(default=None, repr=False)
    github_webhook_secret: str | None = field(default=None, repr=False)
    github_api_url: str = "https://api.github.com"
    github_host: str = "github.com"
    gitlab_url: str = "https://gitlab.com"
    gitlab_token: str | None = field(default=None, repr=False)
    gitlab_webhook_secret: str | None = field(default=None, repr=False)
    gitlab_host: str = "gitlab.com"

    @property
    def github_enabled(self) -> bool:
        return bool(self.github_app_id and self.github_private_key and self.github_webhook_secret)

    @property
    def github_web_url(self) -> str:
        """Where people use GitHub: github.com, or the Enterprise Server host of the API URL."""
        if self.github_api_url == "https://api.github.com":
            return "https://github.com"
        parts = urlsplit(self.github_api_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def gitlab_enabled(self) -> bool:
        return bool(self.gitlab_token)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(name: str, text: str) -> float:
    match = _DURATION.match(text)
    if not match or float(match[1]) <= 0:
        raise SettingsError(f"{name}: expected a duration like 90s, 30m, 6h or 1d, got {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def _int(name: str, text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name}: expected a whole number, got {text!r}") from None
    if value < minimum:
        raise SettingsError(f"{name}: must be at least {minimum}, got {value}")
    return value


def _bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name}: expected true or false, got {text!r}")


def _url(name: str, text: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    parts = urlsplit(text)
    if parts.scheme not in schemes or not parts.netloc:
        raise SettingsError(f"{name}: expected an {' or '.join(schemes)} URL, got {text!r}")
    return text.rstrip("/")


def _database_url(text: str) -> str:
    scheme = text.split(":", 1)[0].split("+", 1)[0]
    if scheme not in {"sqlite", "postgresql", "postgres"} or "://" not in text:
        raise SettingsError(
            "CONJUNCTION_DATABASE_URL: expected sqlite:///FILE or postgresql://USER@HOST/DB"
        )
    return text


def load_secrets(path: str) -> dict[str, NamedSecret]:
    name = "CONJUNCTION_SECRETS_FILE"
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise SettingsError(f"{name}: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{name}: {path} is not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{name}: {path} must map secret names to {{value, projects}}")
    secrets = {}
    for key, entry in data.items():
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("value"), str)
            or not isinstance(entry.get("projects", []), list)
        ):
            raise SettingsError(
                f"{name}: secret {key!r} needs a string 'value' and a list 'projects'"
            )
        secrets[str(key)] = NamedSecret(entry["value"], tuple(map(str, entry.get("projects", []))))
    return secrets


def _private_key(env: Mapping[str, str]) -> str | None:
    if env.get("GITHUB_PRIVATE_KEY"):
        return env["GITHUB_PRIVATE_KEY"].replace("\\n", "\n")
    path = env.get("GITHUB_PRIVATE_KEY_PATH")
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(
            f"GITHUB_PRIVATE_KEY_PATH: cannot read {path}: {exc.strerror}"
        ) from None


def settings_from(env: Mapping[str, str]) -> Settings:
    """Build settings from a mapping of variables; raises SettingsError naming the variable."""
    get = env.get
    port = _int("PORT", get("PORT", "3000"), 1)
    github_api_url = _url("GITHUB_API_URL", get("GITHUB_API_URL", "https://api.github.com"))
    default_github_host = (
        "github.com"
        if github_api_url == "https://api.github.com"
        else urlsplit(github_api_url).hostname
    )
    gitlab_url = _url("GITLAB_URL", get("GITLAB_URL", "https://gitlab.com"))
    secret_key = get("CONJUNCTION_SECRET_KEY") or None
    if secret_key is not None and len(secret_key) < 16:
        raise SettingsError("CONJUNCTION_SECRET_KEY: must be at least 16 characters")
    secrets_file = get("CONJUNCTION_SECRETS_FILE")
    return Settings(
        port=port,
        database_url=_database_url(get("CONJUNCTION_DATABASE_URL", "sqlite:///conjunction.db")),
        public_url=_url(
            "CONJUNCTION_PUBLIC_URL", get("CONJUNCTION_PUBLIC_URL", f"http://localhost:{port}")
        ),
        secret_key=secret_key,
        max_depth=_int("CONJUNCTION_MAX_DEPTH", get("CONJUNCTION_MAX_DEPTH", "5"), 1),
        result_timeout=parse_duration(
            "CONJUNCTION_RESULT_TIMEOUT", get("CONJUNCTION_RESULT_TIMEOUT", "6h")
        ),
        poll_interval=parse_duration(
            "CONJUNCTION_POLL_INTERVAL", get("CONJUNCTION_POLL_INTERVAL", "5m")
        ),
        secrets=load_secrets(secrets_file) if secrets_file else {},
        admin_token=get("CONJUNCTION_ADMIN_TOKEN") or None,
        allow_private_webhooks=_bool(
            "CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS", get("CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS", "false")
        ),
        github_app_id=get("GITHUB_APP_ID") or None,
        github_private_key=_private_key(env),
        github_webhook_secret=get("GITHUB_WEBHOOK_SECRET") or None,
        github_api_url=github_api_url,
        github_host=(get("GITHUB_HOST") or default_github_host or "github.com").lower(),
        gitlab_url=gitlab_url,
        gitlab_token=get("GITLAB_TOKEN") or None,
        gitlab_webhook_secret=get("GITLAB_WEBHOOK_SECRET") or None,
        gitlab_host=(get("GITLAB_HOST") or urlsplit(gitlab_url).hostname or "gitlab.com").lower(),
    )


def load_settings(env_file: str | Path = ".env") -> Settings:
    """Settings from `.env` (if present) overlaid by the process environment."""
    merged: dict[str, str] = {
        key: value for key, value in dotenv_values(env_file).items() if value is not None
    }
    merged.update(os.environ)
    return settings_from(merged)
