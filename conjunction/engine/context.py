"""What every part of the engine works with: the database, the adapters, settings, the signer,
the named secrets, the notifier, the subscription graph as this process read it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.adapters import Adapters
from conjunction.config.settings import Settings
from conjunction.engine.graph import GraphCache
from conjunction.engine_api import config_of as config_of  # where the engine's modules find it
from conjunction.notify import Notifier
from conjunction.secrets import SecretStore
from conjunction.tokens import CallbackSigner


class UnknownEvent(LookupError):
    pass


@dataclass
class Context:
    sessions: async_sessionmaker[AsyncSession]
    adapters: Adapters
    settings: Settings
    signer: CallbackSigner
    secrets: SecretStore = field(default_factory=SecretStore)
    notifier: Notifier = field(init=False)
    graph: GraphCache = field(default_factory=GraphCache)

    def __post_init__(self) -> None:
        self.notifier = Notifier(self.settings, self.secrets)

    def event_url(self, event_id: str) -> str:
        return f"{self.settings.public_url}/events/{event_id}"

    def callback_url(self, event_id: str) -> str:
        return f"{self.settings.public_url}/api/v1/events/{event_id}/status"


def new_event_id() -> str:
    return uuid.uuid4().hex
