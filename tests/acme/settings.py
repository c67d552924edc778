"""Acme's settings: ACME_TOKEN and ACME_WEBHOOK_SECRET, together."""

from __future__ import annotations

from pydantic import Field

from conjunction.config.settings import ForgeSettings


class AcmeSettings(ForgeSettings):
    title = "Acme Forge"
    needs = (("ACME_TOKEN",), ("ACME_WEBHOOK_SECRET",))

    token: str | None = Field(default=None, repr=False, validation_alias="ACME_TOKEN")
    webhook_secret: str | None = Field(
        default=None, repr=False, validation_alias="ACME_WEBHOOK_SECRET"
    )
    host: str = Field(default="git.acme.test", validation_alias="ACME_HOST")

    @property
    def enabled(self) -> bool:
        return bool(self.token and self.webhook_secret)
