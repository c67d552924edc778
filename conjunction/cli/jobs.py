"""`conjunction jobs list|retry|purge`: the job queue as an operator sees it."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.bootstrap import opened
from conjunction.cli.output import print_table
from conjunction.config.settings import Settings, SettingsError, parse_duration
from conjunction.engine import bisects
from conjunction.models import utcnow
from conjunction.queue import JobQueue


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
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


def run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(manage_jobs(settings, args))


async def manage_jobs(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "retry" and bool(args.ids) == args.all_dead:
        print("conjunction: jobs retry takes job ids or --all-dead", file=sys.stderr)
        return 2
    async with opened(settings) as base:
        queue = JobQueue(base.sessions)
        if args.action == "list":
            await list_jobs(queue)
            await list_bisects(base.sessions)
            return 0
        if args.action == "retry":
            return await retry_jobs(queue, None if args.all_dead else args.ids)
        older_than = args.older_than or settings.retention
        jobs, deliveries = await queue.purge(utcnow() - timedelta(seconds=older_than))
        print(f"deleted {jobs} finished job(s) and {deliveries} delivery(ies)")
        return 0


async def list_jobs(queue: JobQueue) -> None:
    counts = await queue.counts()
    if not counts:
        print("no jobs")
        return
    print_table(["state", "kind", "jobs"], [[state, kind, str(n)] for state, kind, n in counts])
    dead = await queue.dead()
    if dead:
        print("\ndead jobs:")
        print_table(
            ["id", "kind", "attempts", "last error"],
            [
                [str(job.id), job.kind, str(job.attempts), (job.last_error or "").split("\n")[0]]
                for job in dead
            ],
        )


async def list_bisects(sessions: async_sessionmaker[AsyncSession]) -> None:
    """The culprit searches in progress, after the jobs."""
    searches = await bisects.in_progress(sessions)
    if searches:
        print("\nculprit searches in progress:")
        print_table(bisects.PROGRESS_HEADER, bisects.progress_lines(searches))


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
