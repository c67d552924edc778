"""`conjunction serve` (or `conjunction` alone): the server, until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging

from aiohttp import web

from conjunction import forges, logs
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.forges.driver import Driver
from conjunction.web.errors import JsonErrorRunner

log = logging.getLogger("conjunction")


def configure(_parser: argparse.ArgumentParser) -> None:
    """No arguments: settings come from the environment and .env."""


def run(settings: Settings, _args: argparse.Namespace) -> int:
    logs.configure(settings.log_level, settings.log_format)
    serve(settings)
    return 0


def _forge(driver: Driver, settings: Settings) -> str:
    """How the start-up line shows a forge: "GitLab https://gitlab.com", "GitHub on"."""
    forge = settings.forge(driver.settings)
    return f"{driver.display_name} {forge.described if forge.enabled else 'not configured'}"


def serve(settings: Settings) -> None:
    log.info(
        "starting on port %d (database %s, %s)",
        settings.port,
        settings.database_url.split("://", 1)[0],
        ", ".join(_forge(driver, settings) for driver in forges.DRIVERS),
    )
    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        app = create_app(settings, run_workers=settings.run_jobs)
        asyncio.run(run_server(app, settings.host, settings.port))


async def run_server(app: web.Application, host: str, port: int) -> None:
    """What `web.run_app` does, with a runner whose HTTP parser errors are answered in JSON."""
    runner = JsonErrorRunner(app, handle_signals=True, keepalive_timeout=75)
    await runner.setup()  # the app's start-up: the database migrated, the worker started
    freeze_start_up()
    try:
        await web.TCPSite(runner, host, port).start()
        await asyncio.Event().wait()  # until SIGINT or SIGTERM raises GracefulExit
    finally:
        await runner.cleanup()


def freeze_start_up() -> None:
    """What start-up made (modules, mappers, schemas, templates: about 145,000 objects) lives
    as long as the process: moved out of the cyclic collector's sight, a full collection no
    longer walks it, which stalled the event loop for about 60 ms each time."""
    gc.collect()
    gc.freeze()
