"""A forge as a driver: what the service, the command line, the setup check, the intake and the
texts need to know of it, listed once in `conjunction.forges.DRIVERS`.

A forge is one package, named after its driver (`conjunction/forges/gitea/`):

- `__init__.py`: `DRIVER`, which imports its settings model only (the command line reads it);
- `settings.py`: its settings (`conjunction.config.settings.ForgeSettings`), read from its own
  environment variables;
- `client.py`, `host.py`, `payloads.py`, `joining.py`: its client, code host and runner, the shape
  of its webhooks, how a repository joins;
- `events/`, `webhook.py`, `server.py`: its events, its webhook's check and `SERVER`, what the
  running service takes from it, imported only when the service starts;
- `setup.py`: the pages that set it up while no forge is configured, when it has them (GitHub's
  App manifest flow);
- `command.py`: its command group, when it has one (`command`).

A driver reaches the engine only through `conjunction.engine_api`.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp
    from aiohttp import web
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from conjunction.codehost import CodeHost
    from conjunction.config.settings import ForgeSettings, Settings
    from conjunction.engine_api import EngineAPI
    from conjunction.queue import JobHandler


def job_kind(forge: str) -> str:
    """The job that processes a stored delivery of `forge`."""
    return f"{forge}_delivery"


async def _nothing() -> None:
    return None


def _no_background(_engine: EngineAPI) -> Mapping[str, Coroutine[Any, Any, None]]:
    return {}


@dataclass
class Running:
    """What a forge's server part started with the service: its code host (None while the
    forge is not configured), its background work, and what to close at the end."""

    host: CodeHost | None = None
    # the service's background tasks, by name (started only where the service runs its worker)
    background: Callable[[EngineAPI], Mapping[str, Coroutine[Any, Any, None]]] = _no_background
    close: Callable[[], Awaitable[None]] = _nothing


@dataclass(frozen=True)
class Setup:
    """A forge's setup pages, which the service offers at `/` and `/setup` while no forge is
    configured."""

    routes: Sequence[web.RouteDef]
    templates: Path  # the folder of its pages' templates (they extend the service's layout)
    form_targets: Sequence[str]  # where its forms post besides this server (CSP form-action)
    announcement: str  # logged at start after "no forge is configured: ": how to go on


# a forge's setup from the settings, the `.env` it writes to and the service's HTTP session
SetupFactory = Callable[["Settings", Path, Callable[[], "aiohttp.ClientSession"]], Setup]


@dataclass(frozen=True)
class Server:
    """What the running service takes from a forge (conjunction/forges/<forge>/server.py
    `SERVER`)."""

    # POST /webhooks/<name>: verify a delivery and hand it to `conjunction.web.webhooks.accept`
    webhook: Callable[[web.Request], Awaitable[web.StreamResponse]]
    # its code host and background work, built from the settings (when no adapters are given)
    start: Callable[[Settings, aiohttp.ClientSession, async_sessionmaker[AsyncSession]], Running]
    # the job handler of its stored deliveries; None: its deliveries are stored, not processed
    deliveries: Callable[[EngineAPI, Settings, Running | None], JobHandler | None]
    # its setup pages, offered while no forge is configured; None: it has none
    setup: SetupFactory | None = None


@dataclass(frozen=True)
class Driver:
    name: str  # "gitea": /webhooks/gitea, the job `gitea_delivery`, the command `gitea`
    display_name: str  # how texts name it: "GitHub"
    package: str  # its package (`__name__`): `.server` holds `SERVER`, `.command` its command
    settings: type[ForgeSettings]  # its settings, from its own variables
    joined_by: str  # how a repository joins, as `project add` says: "GitLab (… gitlab add)"
    public_host: str | None = None  # the public instance (github.com), named `display_name`
    command: str | None = None  # its line in `conjunction --help`; None: it has no command

    @property
    def webhook_path(self) -> str:
        return f"/webhooks/{self.name}"

    @property
    def job_kind(self) -> str:
        return job_kind(self.name)

    @property
    def command_module(self) -> str:
        return f"{self.package}.command"

    def configured(self, settings: Settings) -> bool:
        """Its settings are all given."""
        return settings.forge(self.settings).enabled

    def load(self) -> Server:
        """Its server part (imports its handlers, the engine's interface and aiohttp)."""
        server: Server = importlib.import_module(f"{self.package}.server").SERVER
        return server
