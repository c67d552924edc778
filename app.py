"""Conjunction: the service and its commands. `python app.py` starts the server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web

from bot import db, logs
from bot.adapters import Adapters
from bot.engine import Engine
from bot.forges.github.poller import UpstreamPoller
from bot.forges.github.service import build_github_app
from bot.models import utcnow
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
from config.settings import Settings, SettingsError, load_settings, parse_duration
from handlers import api, badges, health, pages, templating, webhooks
from handlers.context import CLIENT_SESSION, MAX_BODY, RUNTIME
from handlers.errors import json_errors
from handlers.github import ClientFor, GitHubDeliveries
from handlers.setup import GitHubSetup, forge_configured
from handlers.setup_code import SetupCode

log = logging.getLogger("conjunction")

BODY_LIMIT = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB
SWEEP_INTERVAL = 60.0
RETENTION_EVERY = 60  # every 60th sweep (hourly) deletes what the retention lets go
# On SIGTERM the job in flight has this long to finish before it goes back to the queue; it
# leaves room within the 10 s that process managers commonly allow before SIGKILL.
SHUTDOWN_GRACE = 3.0


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
    app.add_routes(badges.routes)
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
        worker_task = None
        tasks = []
        if run_workers:
            worker_task = asyncio.create_task(worker.run_forever(), name="worker")
            tasks = [
                worker_task,
                asyncio.create_task(_sweep(engine, queue, settings.retention), name="sweeper"),
            ]
            if github is not None:
                poller = UpstreamPoller(
                    engine, sessions, github.client_for_upstream, host=settings.github_host
                )
                tasks.append(
                    asyncio.create_task(poller.run_forever(settings.poll_interval), name="poller")
                )
        yield
        if worker_task is not None:
            await worker.shutdown(worker_task, SHUTDOWN_GRACE)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await engine.notifier.close()
        await database.dispose()

    app.cleanup_ctx.append(client_session)
    app.cleanup_ctx.append(runtime)
    return app


async def _sweep(engine: Engine, queue: JobQueue, retention: float) -> None:
    """Periodic upkeep: silent downstream runs time out; done jobs and deliveries past the
    retention period are deleted (dead jobs wait for `jobs retry` or `jobs purge`)."""
    for sweep in itertools.count():
        await asyncio.sleep(SWEEP_INTERVAL)
        try:
            expired = await engine.expire_overdue()
            if expired:
                log.info("%d downstream run(s) timed out", expired)
        except Exception:
            log.exception("timeout sweep failed")
        if sweep % RETENTION_EVERY == 0:
            try:
                jobs, deliveries = await queue.purge(_ago(retention), states=["done"])
                if jobs or deliveries:
                    log.info(
                        "retention: deleted %d done job(s) and %d delivery(ies)", jobs, deliveries
                    )
            except Exception:
                log.exception("retention sweep failed")


def _ago(seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=seconds)


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
    _add_jobs_command(commands)
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
    if args.command == "jobs":
        return asyncio.run(manage_jobs(settings, args))
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


def _add_jobs_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    jobs = commands.add_parser("jobs", help="the job queue: list, retry or purge jobs")
    actions = jobs.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="jobs per state and kind, and the dead jobs with their error")
    retry = actions.add_parser("retry", help="queue dead jobs again with fresh attempts")
    retry.add_argument("ids", nargs="*", type=int, metavar="ID", help="a dead job's id")
    retry.add_argument("--all-dead", action="store_true", help="every dead job")
    purge = actions.add_parser("purge", help="delete finished (done and dead) jobs and deliveries")
    purge.add_argument(
        "--older-than",
        type=_duration,
        metavar="DURATION",
        help="finished or received this long ago, e.g. 14d (default: CONJUNCTION_RETENTION)",
    )


def _duration(text: str) -> float:
    try:
        return parse_duration("--older-than", text)
    except SettingsError as exc:
        raise argparse.ArgumentTypeError(str(exc).partition(": ")[2]) from None


async def manage_jobs(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "retry" and bool(args.ids) == args.all_dead:
        print("conjunction: jobs retry takes job ids or --all-dead", file=sys.stderr)
        return 2
    database = db.create_engine(settings.database_url)
    try:
        await db.migrate(database)
        queue = JobQueue(db.sessionmaker(database))
        if args.action == "list":
            await list_jobs(queue)
            return 0
        if args.action == "retry":
            return await retry_jobs(queue, None if args.all_dead else args.ids)
        older_than = args.older_than or settings.retention
        jobs, deliveries = await queue.purge(_ago(older_than))
        print(f"deleted {jobs} finished job(s) and {deliveries} delivery(ies)")
        return 0
    finally:
        await database.dispose()


async def list_jobs(queue: JobQueue) -> None:
    counts = await queue.counts()
    if not counts:
        print("no jobs")
        return
    _print_table(["state", "kind", "jobs"], [[state, kind, str(n)] for state, kind, n in counts])
    dead = await queue.dead()
    if dead:
        print("\ndead jobs:")
        _print_table(
            ["id", "kind", "attempts", "last error"],
            [
                [str(job.id), job.kind, str(job.attempts), (job.last_error or "").split("\n")[0]]
                for job in dead
            ],
        )


async def retry_jobs(queue: JobQueue, ids: list[int] | None) -> int:
    queued = await queue.retry(ids)
    print(f"queued {len(queued)} job(s) again" + (f": {_ids(queued)}" if queued else ""))
    missed = sorted(set(ids or []) - set(queued))
    if missed:
        print(f"conjunction: not a dead job: {_ids(missed)}", file=sys.stderr)
        return 1
    return 0


def _ids(ids: list[int]) -> str:
    return " ".join(map(str, ids))


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    table = [header, *rows]
    widths = [max(len(cell) for cell in column) for column in zip(*table, strict=True)]
    for row in table:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


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
