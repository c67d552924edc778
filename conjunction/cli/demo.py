"""`conjunction demo`: the server with a simulated forge, CI and ecosystem (`conjunction.demo`)."""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from aiohttp import web

from conjunction import logs
from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.demo import Ecosystem
from conjunction.web import demo as demo_pages

DEMO_DATABASE = "demo.db"  # in the working directory, new at every `demo`


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="run the simulated pipelines and pushes this many times faster (default: 1)",
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    return run_demo(settings, args.speed)


def run_demo(settings: Settings, speed: float) -> int:
    """The server on a fresh `demo.db`, with the simulated forge and ecosystem of
    `conjunction.demo`.

    It listens on 127.0.0.1 unless HOST says otherwise, logs warnings as text unless told
    otherwise, and makes up an admin token for the private project when none is set."""
    if speed <= 0:
        print("conjunction: --speed must be above 0", file=sys.stderr)
        return 2
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{DEMO_DATABASE}{suffix}").unlink(missing_ok=True)
    given = settings.model_fields_set
    settings = settings.model_copy(
        update={
            "database_url": f"sqlite:///{DEMO_DATABASE}",
            "admin_token": settings.admin_token or secrets.token_urlsafe(18),
            "host": settings.host if "host" in given else "127.0.0.1",
        }
    )
    logs.configure(
        settings.log_level if "log_level" in given else "warning",
        settings.log_format if "log_format" in given else "text",
    )
    ecosystem = Ecosystem(settings.public_url, speed=speed)
    app = create_app(settings, adapters=Adapters.of(ecosystem.forge))
    demo_pages.install(app, ecosystem)

    async def announce(_app: web.Application) -> None:
        print(
            f"Conjunction demo: open {settings.public_url}/\n"
            f"  the admin token (to see the private project): {settings.admin_token}\n"
            f"  the simulated forge: {settings.public_url}/demo\n"
            "Results arrive within a minute; stop with Ctrl-C.",
            flush=True,
        )

    app.on_startup.append(announce)
    web.run_app(app, host=settings.host, port=settings.port, print=None)
    return 0
