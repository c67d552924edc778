"""Conjunction: the service and its commands. `python app.py` starts the server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from bot import db, logs
from bot.adapters import Adapters
from bot.engine import Engine
from bot.forges.github.poller import UpstreamPoller
from bot.forges.github.service import build_github_app
from bot.names import project_key, project_name
from bot.queue import JobQueue, Worker
from bot.runtime import Runtime
from bot.tokens import (
    CallbackSigner,
    create_project_token,
    ensure_secret_key,
    list_project_tokens,
    revoke_project_tokens,
)
from config.settings import Settings, SettingsError, load_settings
from handlers import api, health, pages, templating, webhooks
from handlers.context import CLIENT_SESSION, MAX_BODY, RUNTIME
from handlers.errors import json_errors
from handlers.github import ClientFor, GitHubDeliveries
from handlers.setup import GitHubSetup, forge_configured
from handlers.setup_code import SetupCode

log = logging.getLogger("conjunction")

BODY_LIMIT = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB
SWEEP_INTERVAL = 60.0


async def _no_client(_event: object) -> None:
    """Without GitHub credentials, events are processed without a GitHub client."""
    return None


def create_app(
    settings: Settings,
    *,
    adapters: Adapters | None = None,
    github_client_for: ClientFor | None = None,
    run_workers: bool = True,
    max_body: int = BODY_LIMIT,
    env_path: Path = Path(".env"),
) -> web.Application:
    """The aiohttp application. Tests pass their own adapters and run the queue themselves.

    With no forge configured (and none passed in), `/` and `/setup` offer the GitHub App setup
    instead of the dashboard, for the holder of the setup URL logged at start."""
    app = web.Application(
        client_max_size=max_body, middlewares=[templating.html_error_pages, json_errors]
    )
    app[MAX_BODY] = max_body
    app.add_routes(webhooks.routes)
    app.add_routes(api.routes)
    app.add_routes(health.routes)
    app.add_routes(pages.routes)
    if adapters is not None or forge_configured(settings):
        app.router.add_get("/", pages.dashboard)
        templating.install(app)
    else:
        setup = GitHubSetup(settings, env_path, lambda: app[CLIENT_SESSION], SetupCode())
        app.add_routes(setup.routes())
        templating.install(app, form_targets=[settings.github_web_url])

        async def announce_setup(_app: web.Application) -> None:
            log.warning(
                "no forge is configured: to create the GitHub App, open %s (this link works "
                "until the app is created or the server restarts)",
                setup.url,
            )

        app.on_startup.append(announce_setup)

    async def client_session(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            app[CLIENT_SESSION] = session
            yield

    async def runtime(app: web.Application) -> AsyncIterator[None]:
        database = db.create_engine(settings.database_url)
        await db.migrate(database)
        sessions = db.sessionmaker(database)
        signer = CallbackSigner(await ensure_secret_key(sessions, settings.secret_key))
        active = adapters or Adapters()
        client_for = github_client_for or _no_client
        github = None
        if adapters is None and settings.github_enabled:
            github = build_github_app(settings, app[CLIENT_SESSION], sessions)
            active = Adapters.of(github.forge)
            client_for = github.client_for_event
        engine = Engine(sessions, active, settings, signer)
        queue = JobQueue(sessions)
        handlers = engine.job_handlers()
        handlers["github_delivery"] = GitHubDeliveries(engine, settings.github_host, client_for)
        worker = Worker(
            queue, handlers, f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        )
        app[RUNTIME] = Runtime(settings, database, sessions, queue, engine, worker)
        tasks = []
        if run_workers:
            tasks = [
                asyncio.create_task(worker.run_forever(), name="worker"),
                asyncio.create_task(_sweep(engine), name="sweeper"),
            ]
            if github is not None:
                poller = UpstreamPoller(
                    engine, sessions, github.client_for_upstream, host=settings.github_host
                )
                tasks.append(
                    asyncio.create_task(poller.run_forever(settings.poll_interval), name="poller")
                )
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await database.dispose()

    app.cleanup_ctx.append(client_session)
    app.cleanup_ctx.append(runtime)
    return app


async def _sweep(engine: Engine) -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL)
        try:
            expired = await engine.expire_overdue()
            if expired:
                log.info("%d downstream run(s) timed out", expired)
        except Exception:
            log.exception("timeout sweep failed")


def serve(settings: Settings) -> None:
    log.info(
        "starting on port %d (database %s, GitHub %s)",
        settings.port,
        settings.database_url.split("://", 1)[0],
        "on" if settings.github_enabled else "not configured",
    )
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app.py", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    validate = commands.add_parser("validate", help="check a .conjunction.yml file")
    validate.add_argument("path", type=Path)
    token = commands.add_parser("token", help="project tokens for POST /api/v1/builds")
    token.add_argument("action", choices=["create", "list", "revoke"])
    token.add_argument("project", help="e.g. github.com/acme/lib")
    args = parser.parse_args(argv)

    if args.command == "validate":
        return validate_file(args.path)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"conjunction: {exc}", file=sys.stderr)
        return 2
    if args.command == "token":
        return asyncio.run(manage_tokens(settings, args.action, args.project))
    logs.configure(settings.log_level, settings.log_format)
    serve(settings)
    return 0


async def manage_tokens(settings: Settings, action: str, project: str) -> int:
    try:
        project = project_name(project)
    except ValueError as exc:
        print(f"conjunction: {project!r} is {exc}", file=sys.stderr)
        return 2
    database = db.create_engine(settings.database_url)
    try:
        await db.migrate(database)
        async with db.sessionmaker(database).begin() as session:
            if action == "create":
                print(await create_project_token(session, project_key(project)))
                print(f"Keep it secret: it reports builds of {project} and is shown only once.")
            elif action == "list":
                for row in await list_project_tokens(session, project_key(project)):
                    state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
                    print(f"{row.prefix}…  created {row.created_at:%Y-%m-%d %H:%M}  {state}")
            else:
                count = await revoke_project_tokens(session, project_key(project))
                print(f"revoked {count} token(s) of {project}")
    finally:
        await database.dispose()
    return 0


def validate_file(path: Path) -> int:
    from config.repo_config import MAX_CONFIG_BYTES, ConfigError, parse_config

    try:
        with path.open("rb") as file:
            # one byte past the limit tells an oversized file, even an endless one like /dev/zero
            head = file.read(MAX_CONFIG_BYTES + 1)
        if len(head) > MAX_CONFIG_BYTES:
            print(f"{path}: file is over the limit of {MAX_CONFIG_BYTES} bytes", file=sys.stderr)
            return 1
        parse_config(head)
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
