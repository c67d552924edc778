"""The GitHub App's settings: GITHUB_APP_ID, its private key (GITHUB_PRIVATE_KEY or the file
GITHUB_PRIVATE_KEY_PATH names) and GITHUB_WEBHOOK_SECRET, all three or none; GITHUB_API_URL and
GITHUB_HOST for GitHub Enterprise Server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import Field, field_validator, model_validator

from conjunction.config.settings import URL, ForgeSettings, HostName, SettingsError

_APP_ID = re.compile(r"[A-Za-z0-9.]+")
PUBLIC_API = "https://api.github.com"


def _is_pem_private_key(text: str) -> bool:
    try:
        # Only the format is checked here; the (slow) RSA consistency check adds nothing that
        # GitHub would not tell at the first call.
        load_pem_private_key(text.encode(), None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError):
        return False
    return True


def _private_key_file(data: dict[str, Any]) -> str | None:
    """GITHUB_PRIVATE_KEY's default: the file GITHUB_PRIVATE_KEY_PATH names, if any."""
    path = data.get("private_key_path")
    if path is None:
        return None
    name = "GITHUB_PRIVATE_KEY_PATH"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{name}: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        text = ""
    if not _is_pem_private_key(text):
        raise SettingsError(f"{name}: {path} is not a PEM private key")
    return text


def _github_host(data: dict[str, Any]) -> str:
    api_url = data.get("api_url", PUBLIC_API)
    if api_url == PUBLIC_API:
        return "github.com"
    return urlsplit(api_url).hostname or "github.com"


class GitHubSettings(ForgeSettings):
    title = "GitHub App"
    needs = (
        ("GITHUB_APP_ID",),
        ("GITHUB_PRIVATE_KEY", "GITHUB_PRIVATE_KEY_PATH"),
        ("GITHUB_WEBHOOK_SECRET",),
    )

    app_id: str | None = Field(default=None, validation_alias="GITHUB_APP_ID")
    private_key_path: Path | None = Field(default=None, validation_alias="GITHUB_PRIVATE_KEY_PATH")
    private_key: str | None = Field(
        default_factory=_private_key_file, repr=False, validation_alias="GITHUB_PRIVATE_KEY"
    )
    webhook_secret: str | None = Field(
        default=None, repr=False, validation_alias="GITHUB_WEBHOOK_SECRET"
    )
    api_url: URL = Field(default=PUBLIC_API, validation_alias="GITHUB_API_URL")
    host: HostName = Field(default_factory=_github_host, validation_alias="GITHUB_HOST")

    @field_validator("app_id")
    @classmethod
    def _app_id(cls, value: str | None) -> str | None:
        if value is not None and not _APP_ID.fullmatch(value):
            raise ValueError(f"expected the App ID or client ID of the GitHub App, got {value!r}")
        return value

    @field_validator("private_key")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.replace("\\n", "\n")  # a one-line variable spells newlines as \n
        if not _is_pem_private_key(value):
            raise ValueError("not a PEM private key (-----BEGIN … PRIVATE KEY-----)")
        return value

    @model_validator(mode="after")
    def _one_private_key(self) -> GitHubSettings:
        if self.private_key_path is not None and "private_key" in self.model_fields_set:
            raise SettingsError(
                "GITHUB_PRIVATE_KEY_PATH: set GITHUB_PRIVATE_KEY or GITHUB_PRIVATE_KEY_PATH, "
                "not both"
            )
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.app_id and self.private_key and self.webhook_secret)

    @property
    def web_url(self) -> str:
        """Where people use GitHub: github.com, or the Enterprise Server host of the API URL."""
        if self.api_url == PUBLIC_API:
            return "https://github.com"
        parts = urlsplit(self.api_url)
        return f"{parts.scheme}://{parts.netloc}"
