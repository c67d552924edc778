"""Conjunction's wiring: the aiohttp application and its background tasks.

`main` is `python app.py` of a checkout (the `app.py` beside `conjunction/`): the commands of
`conjunction.cli`, the installed `conjunction` command, under that file's name."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import aiohttp
from aiohttp import web

from conjunction import cli, forges, gitprojects
from conjunction.adapters import WEBHOOK, Adapters
from conjunction.bootstrap import opened
from conjunction.config.settings import Settings
from conjunction.engine import Engine
from conjunction.forges.driver import Running
from conjunction.forges.webhook import WebhookRunner
from conjunction.intake import Intake
from conjunction.models import utcnow
from conjunction.queue import JobQueue, Worker
from conjunction.runtime import Runtime
from conjunction.secrets import SecretStore
from conjunction.spool import Spool
from conjunction.web import admin, api, badges, changes, health, openapi, pages, setup, templating
from conjunction.web.bodies import LARGE_BODIES, LARGE_BODY_SLOTS
from conjunction.web.context import CLIENT_SESSION, MAX_BODY, RUNTIME
from conjunction.web.errors import json_errors

log = logging.getLogger("conjunction")

BODY_LIMIT = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB
SERVER_LIMITS = {
    "max_line_size": 8190,  # request line; the answer is 431 (JSON) past these
    "max_field_size": 8190,  # one header
    "max_headers": 128,
    # Bodies are taken as sent (GitHub and GitLab do not compress them): nothing is inflated
    # before its size is checked.
    "auto_decompress": False,
}
SWEEP_INTERVAL = 60.0
RETENTION_EVERY = 60  # every 60th sweep (hourly) deletes what the retention lets go
# On SIGTERM the job in flight has this long to finish before it goes back to the queue; it
# leaves room within the 10 s that process managers commonly allow before SIGKILL.
SHUTDOWN_GRACE = 3.0


def create_app(
    settings: Settings,
    *,
    adapters: Adapters | None = None,
    running: Mapping[str, Running] | None = None,
    run_workers: bool = True,
    max_body: int = BODY_LIMIT,
    env_path: Path = Path(".env"),
) -> web.Application:
    """The aiohttp application: each forge of `conjunction.forges.DRIVERS` at /webhooks/<its name>,
    its code host, its jobs. Tests pass their own adapters, or the forges' running parts by
    driver name (`running`: their code hosts, and what their deliveries are processed with),
    and run the queue themselves.

    With no forge configured (and none passed in), `/` and `/setup` offer the setup of the first
    forge that has one (the GitHub App's) instead of the dashboard, for the holder of the setup
    URL logged at start."""
    app = web.Application(
        client_max_size=max_body,
        middlewares=[templating.html_error_pages, json_errors],
        handler_args=SERVER_LIMITS,
    )
    app[MAX_BODY] = max_body
    app[LARGE_BODIES] = asyncio.Semaphore(LARGE_BODY_SLOTS)
    servers = {driver.name: driver.load() for driver in forges.DRIVERS}
    for driver in forges.DRIVERS:
        app.router.add_post(driver.webhook_path, servers[driver.name].webhook)
    app.add_routes(api.routes)
    app.add_routes(openapi.routes)
    app.add_routes(health.routes)
    app.add_routes(pages.routes)
    app.add_routes(changes.routes)
    app.add_routes(badges.routes)
    given = adapters is not None or running is not None
    offered = setup.offered(servers.values())
    if given or setup.forge_configured(settings) or offered is None:
        app.router.add_get("/", pages.dashboard)
        app.add_routes(admin.routes)
        templating.install(app, page_context=pages.page_context)
    else:
        setup.install(app, offered(settings, env_path, lambda: app[CLIENT_SESSION]))

    async def client_session(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            app[CLIENT_SESSION] = session
            yield

    async def runtime(app: web.Application) -> AsyncIterator[None]:
        # the worker's jobs, and a few more for intake, pages and the health check
        async with opened(settings, pool_size=settings.worker_concurrency + 4) as base:
            sessions = base.sessions
            secrets = SecretStore(settings.secrets_file)
            started: Mapping[str, Running] = running or {}
            if not given:
                started = {
                    name: server.start(settings, app[CLIENT_SESSION], sessions)
                    for name, server in servers.items()
                }
            hosts = (forge.host for forge in started.values() if forge.host is not None)
            active = adapters if adapters is not None else Adapters.of(*hosts)
            webhooks = WebhookRunner(secrets, allow_private=settings.allow_private_webhooks)
            active.runners.setdefault(WEBHOOK, webhooks)
            engine = await base.engine(active, secrets)
            git_projects = gitprojects.GitProjects.of(settings, sessions, secrets)
            await git_projects.register(active)
            queue = JobQueue(sessions)
            handlers = engine.job_handlers()
            for driver in forges.DRIVERS:
                deliveries = servers[driver.name].deliveries(
                    engine, settings, started.get(driver.name)
                )
                if deliveries is not None:
                    handlers[driver.job_kind] = deliveries
            handlers[gitprojects.REFRESH_JOB] = partial(git_projects.refresh_job, engine)
            worker = Worker(
                queue,
                handlers,
                f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
                concurrency=settings.worker_concurrency,
                per_key=settings.worker_concurrency_per_key,
            )
            intake = Intake(
                sessions, handlers, on_stored=worker.wakeup.set, spool=Spool(settings.spool_dir)
            )
            await intake.start()
            worker.yield_to = intake.busy
            app[RUNTIME] = Runtime(settings, base.database, sessions, queue, engine, worker, intake)
            worker_task = None
            tasks = []
            if run_workers:
                worker_task = asyncio.create_task(worker.run_forever(), name="worker")
                tasks = [
                    worker_task,
                    asyncio.create_task(_sweep(engine, queue, settings.retention), name="sweeper"),
                ]
                tasks += [
                    asyncio.create_task(work, name=name)
                    for forge in started.values()
                    for name, work in forge.background(engine).items()
                ]
            rereads_secrets = _on_sighup(secrets.reload) if settings.secrets_file else False
            yield
            if rereads_secrets:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            await intake.close()
            if worker_task is not None:
                await worker.shutdown(worker_task, SHUTDOWN_GRACE)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for forge in started.values():
                await forge.close()
            await webhooks.close()
            await engine.notifier.close()

    app.cleanup_ctx.append(client_session)
    app.cleanup_ctx.append(runtime)
    return app


def _on_sighup(callback: Callable[[], None]) -> bool:
    """Call `callback` on SIGHUP; False where the platform or thread cannot have it."""
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, callback)
    except (NotImplementedError, RuntimeError, AttributeError):
        return False
    return True


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


def main(argv: Sequence[str] | None = None) -> int:
    """`python app.py ARGS`: the `conjunction` command under this file's name."""
    return cli.main(argv, prog="app.py")
