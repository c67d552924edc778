"""Settings as the tests change them: one forge's in place of what they held."""

from __future__ import annotations

from conjunction.config.settings import ForgeSettings, Settings


def with_forge(settings: Settings, forge: ForgeSettings) -> Settings:
    """`settings` with `forge` in place of the settings of its forge."""
    others = tuple(given for given in settings.forges if type(given) is not type(forge))
    return settings.model_copy(update={"forges": (*others, forge)})
