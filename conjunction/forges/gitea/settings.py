"""Gitea's and Forgejo's settings: the bot account's instance (GITEA_URL: they have no default
one), GITEA_TOKEN and GITEA_WEBHOOK_SECRET, all three or none; GITEA_HOST where the projects' names
should not use the URL's host."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field

from conjunction.config.settings import URL, ForgeSettings, HostName


class GiteaSettings(ForgeSettings):
    title = "Gitea"
    needs = (("GITEA_URL",), ("GITEA_TOKEN",), ("GITEA_WEBHOOK_SECRET",))
    extras = ("GITEA_HOST",)

    url: URL | None = Field(default=None, validation_alias="GITEA_URL")
    token: str | None = Field(default=None, repr=False, validation_alias="GITEA_TOKEN")
    webhook_secret: str | None = Field(
        default=None, repr=False, validation_alias="GITEA_WEBHOOK_SECRET"
    )
    host: HostName | None = Field(
        default_factory=lambda data: urlsplit(data["url"]).hostname if data.get("url") else None,
        validation_alias="GITEA_HOST",
    )

    @property
    def enabled(self) -> bool:
        """A Gitea or Forgejo bot account: its URL, token and webhook secret (all three, or
        start-up stops)."""
        return bool(self.url and self.token and self.webhook_secret)

    @property
    def described(self) -> str:
        return str(self.url)
