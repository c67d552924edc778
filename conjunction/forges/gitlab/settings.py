"""GitLab's settings: the bot account's GITLAB_TOKEN and GITLAB_WEBHOOK_SECRET, together (a token
without the secret would start pipelines but never hear how they ended); GITLAB_URL and
GITLAB_HOST for another instance than gitlab.com."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field

from conjunction.config.settings import URL, ForgeSettings, HostName


class GitLabSettings(ForgeSettings):
    title = "GitLab"
    needs = (("GITLAB_TOKEN",), ("GITLAB_WEBHOOK_SECRET",))
    extras = ("GITLAB_URL", "GITLAB_HOST")

    url: URL = Field(default="https://gitlab.com", validation_alias="GITLAB_URL")
    token: str | None = Field(default=None, repr=False, validation_alias="GITLAB_TOKEN")
    webhook_secret: str | None = Field(
        default=None, repr=False, validation_alias="GITLAB_WEBHOOK_SECRET"
    )
    host: HostName = Field(
        default_factory=lambda data: urlsplit(data["url"]).hostname or "gitlab.com",
        validation_alias="GITLAB_HOST",
    )

    @property
    def enabled(self) -> bool:
        return bool(self.token)

    @property
    def described(self) -> str:
        return self.url
