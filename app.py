"""Conjunction: the service and its commands. `python app.py` starts the server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import aiohttp
from aiohttp import web

from bot import db, gitprojects, logs, project_command
from bot.adapters import WEBHOOK, Adapters
from bot.codehost import CodeHost
from bot.demo import Ecosystem
from bot.engine import Engine
from bot.forges.gitea.host import GiteaHost
from bot.forges.gitea.joining import Joiner as GiteaJoiner
from bot.forges.gitea.joining import add_repositories
from bot.forges.github.client import PolicyAPI, aiohttp_connect
from bot.forges.github.poller import UpstreamPoller
from bot.forges.github.service import GitHubApp, build_github_app
from bot.forges.gitlab.host import GitLabHost
from bot.forges.gitlab.joining import Joiner, add_projects
from bot.forges.webhook import WebhookRunner
from bot.intake import Intake
from bot.models import ProjectToken, utcnow
from bot.names import project_key, project_name
from bot.queue import JobQueue, Worker
from bot.runtime import Runtime
from bot.secrets import NamedSecret, SecretsFileError, SecretStore, load_secrets
from bot.tokens import (
    CallbackSigner,
    TokenError,
    create_project_token,
    default_token_name,
    ensure_secret_key,
    list_project_tokens,
    revoke_project_token,
)
from config.repo_config import MAX_CONFIG_BYTES, ConfigError, SecretCheck, parse_config
from config.settings import Settings, SettingsError, load_settings, parse_duration, raw_setting
from handlers import admin, api, badges, demo, health, pages, templating, webhooks
from handlers.bodies import LARGE_BODIES, LARGE_BODY_SLOTS
from handlers.context import CLIENT_SESSION, MAX_BODY, RUNTIME
from handlers.errors import JsonErrorRunner, json_errors
from handlers.gitea import GiteaDeliveries
from handlers.github import ClientFor, GitHubDeliveries
from handlers.gitlab import GitLabDeliveries
from handlers.setup import GitHubSetup, forge_configured
from handlers.setup_code import SetupCode

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
DEMO_DATABASE = "demo.db"  # in the working directory, new at every `demo`


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
        client_max_size=max_body,
        middlewares=[templating.html_error_pages, json_errors],
        handler_args=SERVER_LIMITS,
    )
    app[MAX_BODY] = max_body
    app[LARGE_BODIES] = asyncio.Semaphore(LARGE_BODY_SLOTS)
    app.add_routes(webhooks.routes)
    app.add_routes(api.routes)
    app.add_routes(health.routes)
    app.add_routes(pages.routes)
    app.add_routes(badges.routes)
    if adapters is not None or forge_configured(settings):
        app.router.add_get("/", pages.dashboard)
        app.add_routes(admin.routes)
        templating.install(app, page_context=pages.page_context)
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
        # the worker's jobs, and a few more for intake, pages and the health check
        database = db.create_engine(settings.database_url, settings.worker_concurrency + 4)
        await db.migrate(database)
        sessions = db.sessionmaker(database)
        signer = CallbackSigner(await ensure_secret_key(sessions, settings.secret_key))
        secrets = SecretStore(settings.secrets_file)
        active = adapters or Adapters()
        client_for = github_client_for or _no_client
        github = gitlab = gitea = None
        if adapters is None:
            forges: list[CodeHost] = []
            if settings.github_enabled:
                github = build_github_app(settings, app[CLIENT_SESSION], sessions)
                forges.append(github.forge)
                client_for = github.client_for_event
            if settings.gitlab_enabled:
                gitlab = GitLabHost.from_settings(settings)
                forges.append(gitlab)
            if settings.gitea_enabled:
                gitea = GiteaHost.from_settings(settings)
                forges.append(gitea)
            active = Adapters.of(*forges)
        webhooks = WebhookRunner(secrets, allow_private=settings.allow_private_webhooks)
        active.runners.setdefault(WEBHOOK, webhooks)
        engine = Engine(sessions, active, settings, signer, secrets)
        git_projects = gitprojects.GitProjects.of(settings, sessions, secrets)
        await git_projects.register(active)
        queue = JobQueue(sessions)
        handlers = engine.job_handlers()
        handlers["github_delivery"] = GitHubDeliveries(engine, settings.github_host, client_for)
        handlers["gitlab_delivery"] = GitLabDeliveries(engine, settings.gitlab_host)
        if settings.gitea_host:
            handlers["gitea_delivery"] = GiteaDeliveries(engine, settings.gitea_host)
        handlers[gitprojects.REFRESH_JOB] = partial(git_projects.refresh_job, engine)
        worker = Worker(
            queue,
            handlers,
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
            concurrency=settings.worker_concurrency,
            per_key=settings.worker_concurrency_per_key,
        )
        intake = Intake(sessions, handlers, on_stored=worker.wakeup.set)
        worker.yield_to = intake.busy
        app[RUNTIME] = Runtime(settings, database, sessions, queue, engine, worker, intake)
        worker_task = None
        tasks = []
        if run_workers:
            worker_task = asyncio.create_task(worker.run_forever(), name="worker")
            tasks = [
                worker_task,
                asyncio.create_task(_sweep(engine, queue, settings.retention), name="sweeper"),
            ]
            if adapters is None:
                poller = _upstream_poller(settings, engine, github, app[CLIENT_SESSION])
                tasks.append(
                    asyncio.create_task(poller.run_forever(settings.poll_interval), name="poller")
                )
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
        if gitlab is not None:
            gitlab.client.close()
        if gitea is not None:
            await gitea.client.close()
        await webhooks.close()
        await engine.notifier.close()
        await database.dispose()

    app.cleanup_ctx.append(client_session)
    app.cleanup_ctx.append(runtime)
    return app


def _upstream_poller(
    settings: Settings, engine: Engine, github: GitHubApp | None, http: aiohttp.ClientSession
) -> UpstreamPoller:
    """Polls the GitHub upstreams no installation covers: with the app, through a downstream's
    installation where there is one; without it (a GitLab project downstream of a public GitHub
    repository), anonymously. It asks nothing of GitHub while no project declares one."""
    if github is not None:
        return UpstreamPoller(
            engine,
            engine.sessions,
            github.client_for_upstream,
            host=settings.github_host,
            anonymous=github.clients.anonymous(),
        )
    anonymous = aiohttp_connect(http, api_url=settings.github_api_url)()

    async def client_for(_upstream: str) -> PolicyAPI:
        return anonymous

    return UpstreamPoller(
        engine, engine.sessions, client_for, host=settings.github_host, anonymous=anonymous
    )


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


def serve(settings: Settings) -> None:
    log.info(
        "starting on port %d (database %s, GitHub %s, GitLab %s, Gitea %s)",
        settings.port,
        settings.database_url.split("://", 1)[0],
        "on" if settings.github_enabled else "not configured",
        settings.gitlab_url if settings.gitlab_enabled else "not configured",
        settings.gitea_url if settings.gitea_enabled else "not configured",
    )
    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(run_server(create_app(settings), settings.host, settings.port))


async def run_server(app: web.Application, host: str, port: int) -> None:
    """What `web.run_app` does, with a runner whose HTTP parser errors are answered in JSON."""
    runner = JsonErrorRunner(app, handle_signals=True, keepalive_timeout=75)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        await asyncio.Event().wait()  # until SIGINT or SIGTERM raises GracefulExit
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app.py", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    _add_validate_command(commands)
    _add_token_command(commands)
    _add_jobs_command(commands)
    gitlab = commands.add_parser("gitlab", help="GitLab projects")
    gitlab_actions = gitlab.add_subparsers(dest="action", required=True)
    join = gitlab_actions.add_parser(
        "add",
        help="join a project, or every project of a group: check the bot's role, set up the "
        "webhook, index .conjunction.yml",
    )
    join.add_argument("path", help="GROUP/PROJECT or GROUP, e.g. acme/lib or acme")
    gitea = commands.add_parser("gitea", help="Gitea and Forgejo repositories (Codeberg too)")
    gitea_actions = gitea.add_subparsers(dest="action", required=True)
    gitea_join = gitea_actions.add_parser(
        "add",
        help="join a repository, or every repository of an organization or user: set up the "
        "webhook, index .conjunction.yml",
    )
    gitea_join.add_argument("path", help="OWNER/REPO or OWNER, e.g. acme/lib or acme")
    project_command.add_parser(commands)
    demo_command = commands.add_parser(
        "demo", help="a simulated forge, CI and ecosystem of projects, on this machine"
    )
    demo_command.add_argument(
        "--speed",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="run the simulated pipelines and pushes this many times faster (default: 1)",
    )
    args = parser.parse_args(argv)

    if args.command == "validate":
        return validate_files(args.paths, args.secrets, args.project)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"conjunction: {exc}", file=sys.stderr)
        return 2
    if args.command == "token":
        return asyncio.run(manage_tokens(settings, args))
    if args.command == "jobs":
        return asyncio.run(manage_jobs(settings, args))
    if args.command == "gitlab":
        return asyncio.run(gitlab_add(settings, args.path))
    if args.command == "gitea":
        return asyncio.run(gitea_add(settings, args.path))
    if args.command == "project":
        return asyncio.run(project_command.run(settings, args))
    if args.command == "demo":
        return run_demo(settings, args.speed)
    logs.configure(settings.log_level, settings.log_format)
    serve(settings)
    return 0


def run_demo(settings: Settings, speed: float) -> int:
    """The server on a fresh `demo.db`, with the simulated forge and ecosystem of `bot.demo`.

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
    demo.install(app, ecosystem)

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


def _add_validate_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    validate = commands.add_parser("validate", help="check .conjunction.yml files")
    validate.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    validate.add_argument(
        "--secrets",
        type=Path,
        metavar="FILE",
        help="check the secrets the file names against this secrets file "
        "(default: CONJUNCTION_SECRETS_FILE)",
    )
    validate.add_argument(
        "--project",
        type=_project,
        metavar="PROJECT",
        help="the project the file belongs to, e.g. github.com/acme/app: secrets it may not "
        "use are refused (without it only unknown secrets are)",
    )


def _project(text: str) -> str:
    try:
        return project_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_token_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = commands.add_parser("token", help="project tokens for POST /api/v1/builds")
    actions = token.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a token (shown once)")
    create.add_argument("project", help="e.g. github.com/acme/lib")
    create.add_argument("--name", help="what the token is for, e.g. jenkins (default: token-N)")
    listing = actions.add_parser("list", help="the tokens of a project (or of every project)")
    listing.add_argument("project", nargs="?", help="e.g. github.com/acme/lib")
    revoke = actions.add_parser("revoke", help="revoke one token; the others stay valid")
    revoke.add_argument("project", help="e.g. github.com/acme/lib")
    revoke.add_argument("token", metavar="NAME-OR-PREFIX", help="its name, or its first characters")


async def manage_tokens(settings: Settings, args: argparse.Namespace) -> int:
    try:
        name = project_name(args.project) if args.project else None
    except ValueError as exc:
        print(f"conjunction: {args.project!r} is {exc}", file=sys.stderr)
        return 2
    project = project_key(name) if name else None
    database = db.create_engine(settings.database_url)
    try:
        await db.migrate(database)
        async with db.sessionmaker(database).begin() as session:
            if args.action == "create":
                assert project is not None
                token_name = args.name or await default_token_name(session, project)
                print(await create_project_token(session, project, token_name))
                print(
                    f"Keep it secret: token {token_name} reports builds of {name} and is shown "
                    "only once."
                )
            elif args.action == "list":
                list_tokens(await list_project_tokens(session, project), every=project is None)
            else:
                assert project is not None
                row = await revoke_project_token(session, project, args.token)
                print(f"revoked token {row.name} ({row.prefix}…) of {name}")
    except TokenError as exc:
        print(f"conjunction: {exc}", file=sys.stderr)
        return 1
    finally:
        await database.dispose()
    return 0


async def gitlab_add(settings: Settings, path: str, *, host: GitLabHost | None = None) -> int:
    """`gitlab add`: join GitLab projects through the bot account (GITLAB_TOKEN)."""
    if not settings.gitlab_enabled:
        print("conjunction: GitLab is not configured: set GITLAB_TOKEN", file=sys.stderr)
        return 2
    assert settings.gitlab_webhook_secret  # a token without the secret is refused
    host = host or GitLabHost.from_settings(settings)
    path = path.strip("/").removeprefix(f"{settings.gitlab_host}/")
    database = db.create_engine(settings.database_url)
    try:
        await db.migrate(database)
        sessions = db.sessionmaker(database)
        signer = CallbackSigner(await ensure_secret_key(sessions, settings.secret_key))
        engine = Engine(sessions, Adapters.of(host), settings, signer)
        joiner = Joiner(
            host,
            engine,
            hook_url=f"{settings.public_url}/webhooks/gitlab",
            secret=settings.gitlab_webhook_secret,
        )
        return await add_projects(joiner, path)
    finally:
        host.client.close()
        await database.dispose()


async def gitea_add(settings: Settings, path: str, *, host: GiteaHost | None = None) -> int:
    """`gitea add`: join Gitea or Forgejo repositories through the bot account (GITEA_TOKEN)."""
    if not settings.gitea_enabled:
        print(
            "conjunction: Gitea is not configured: set GITEA_URL, GITEA_TOKEN and "
            "GITEA_WEBHOOK_SECRET",
            file=sys.stderr,
        )
        return 2
    assert settings.gitea_webhook_secret
    host = host or GiteaHost.from_settings(settings)
    path = path.strip("/").removeprefix(f"{host.host}/")
    database = db.create_engine(settings.database_url)
    try:
        await db.migrate(database)
        sessions = db.sessionmaker(database)
        signer = CallbackSigner(await ensure_secret_key(sessions, settings.secret_key))
        engine = Engine(sessions, Adapters.of(host), settings, signer)
        joiner = GiteaJoiner(
            host,
            engine,
            hook_url=f"{settings.public_url}/webhooks/gitea",
            secret=settings.gitea_webhook_secret,
        )
        return await add_repositories(joiner, path)
    finally:
        await host.client.close()
        await database.dispose()


def list_tokens(rows: list[ProjectToken], *, every: bool) -> None:
    if not rows:
        print("no tokens")
        return
    header = ["name", "token", "created", "last used", "state"]
    table = []
    for row in rows:
        state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
        used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never"
        cells = [row.name, f"{row.prefix}…", f"{row.created_at:%Y-%m-%d %H:%M}", used, state]
        table.append([row.project, *cells] if every else cells)
    _print_table(["project", *header] if every else header, table)


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


def validate_files(paths: list[Path], secrets_file: Path | None, project: str | None) -> int:
    """`validate`: 0 when every file is valid, 1 when one is not, 2 when one cannot be read."""
    secrets_path = secrets_file or raw_setting("CONJUNCTION_SECRETS_FILE")
    check = None
    if secrets_path is not None:
        try:
            secrets = load_secrets(secrets_path)
        except SecretsFileError as exc:
            print(f"conjunction: secrets file: {exc}", file=sys.stderr)
            return 2
        check = partial(_secret_problem, secrets, project)
    worst = max(validate_file(path, check) for path in paths)
    if worst == 0:
        print("ok")
    return worst


def _secret_problem(secrets: dict[str, NamedSecret], project: str | None, name: str) -> str | None:
    if name not in secrets:
        return f"secret {name!r} is not in the secrets file"
    if project is not None and not secrets[name].allows(project):
        return f"secret {name!r} may not be used by {project}"
    return None


def validate_file(path: Path, secrets: SecretCheck | None = None) -> int:
    """0 when the file is valid; else its problems on stderr and 1, or 2 when unreadable."""
    try:
        with path.open("rb") as file:
            # one byte past the limit tells an oversized file, even an endless one like /dev/zero
            head = file.read(MAX_CONFIG_BYTES + 1)
        if len(head) > MAX_CONFIG_BYTES:
            print(f"{path}: file is over the limit of {MAX_CONFIG_BYTES} bytes", file=sys.stderr)
            return 1
        parse_config(head, secrets=secrets)
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
