"""What the service offers while no forge is configured: the setup pages of the first forge that
has them (`conjunction.forges.driver.Setup`: GitHub's App manifest flow), in place of the
dashboard."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiohttp import web

from conjunction import forges
from conjunction.config.settings import Settings
from conjunction.forges.driver import Server, Setup, SetupFactory
from conjunction.web import templating

log = logging.getLogger("conjunction")


def forge_configured(settings: Settings) -> bool:
    return any(driver.configured(settings) for driver in forges.DRIVERS)


def offered(servers: Iterable[Server]) -> SetupFactory | None:
    """The setup of the first forge that offers one."""
    return next((server.setup for server in servers if server.setup is not None), None)


def install(app: web.Application, setup: Setup) -> None:
    """Serve the setup's pages on the service's layout, and log at start how to go on."""
    app.add_routes(setup.routes)
    templating.install(app, form_targets=setup.form_targets, templates=[setup.templates])

    async def announce(_app: web.Application) -> None:
        log.warning("no forge is configured: %s", setup.announcement)

    app.on_startup.append(announce)
