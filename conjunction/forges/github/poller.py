"""Polls GitHub upstreams no installation of the app covers for new successful workflow runs.

It runs with or without the GitHub App: a GitLab (or any) project may declare a public GitHub
repository as its upstream. An upstream is asked through a downstream's installation where there
is one (5,000 requests an hour), else anonymously: GitHub allows 60 requests an hour per address
without a token, and counts every one of them, 304s included. Rounds of polls are spaced so
that rounds like the last one fit in what GitHub says is left until its limit resets.

Each watched branch is asked through the policy client, whose response cache makes the
request conditional: an unchanged answer is a 304, served from the cache (and, made as an
installation, not counted against its rate limit). Where each upstream was left (the newest
run id seen) is kept in `key_values`, so a restart neither replays old runs nor misses new
ones; the first poll of an upstream only records where it is. A new successful run's
artifacts are listed and travel with its triggers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from gidgethub import HTTPException
from gidgethub.sansio import RateLimit
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from conjunction.engine_api import EngineAPI, UpstreamSuccess
from conjunction.forges.github import tags
from conjunction.forges.github.artifacts import run_artifacts
from conjunction.forges.github.client import PolicyAPI
from conjunction.models import KeyValue, Project, Subscription
from conjunction.queue import RetryLater
from conjunction.runs import Via

log = logging.getLogger(__name__)

GLOB = re.compile(r"[*?\[]")
PULL_REQUEST_EVENTS = {"pull_request", "pull_request_target"}
MAX_KEY = 100  # KeyValue.key is a VARCHAR(100)
# anonymous requests kept back from the pacing, for the artifacts of runs a round finds new
ANONYMOUS_RESERVE = 5


def next_round_in(interval: float, spent: int, rate: RateLimit | None, now: datetime) -> float:
    """Seconds until the next round of polls: the interval, stretched so that rounds costing
    `spent` anonymous requests, as the last one did, fit in what is left of the anonymous
    rate limit until it resets."""
    if rate is None or spent <= 0:
        return interval
    until_reset = max((rate.reset_datetime - now).total_seconds(), 0.0)
    usable = rate.remaining - ANONYMOUS_RESERVE
    if usable < spent:
        return max(interval, until_reset)
    return max(interval, until_reset * spent / usable)


def state_key(upstream: str, *parts: str) -> str:
    key = ":".join(("poll", upstream, *parts))
    if len(key) <= MAX_KEY:
        return key
    return "poll:" + hashlib.sha256(key.encode()).hexdigest()


class UpstreamPoller:
    def __init__(
        self,
        engine: EngineAPI,
        sessions: async_sessionmaker[AsyncSession],
        gh_factory: Callable[[str], Awaitable[PolicyAPI]],
        *,
        host: str = "github.com",
        anonymous: PolicyAPI | None = None,
    ) -> None:
        """`anonymous`: the client gh_factory hands out for upstreams polled without a token,
        whose spending paces the rounds."""
        self.engine = engine
        self.sessions = sessions
        self.gh_factory = gh_factory
        self.host = host
        self.anonymous = anonymous
        self._default_branches: dict[str, str] = {}
        self._limited_until = 0.0  # monotonic time the anonymous rate limit lets up

    async def run_forever(self, interval: float) -> None:
        while True:
            spent = self._anonymous_requests()
            try:
                await self.poll_once()
            except Exception:
                log.exception("polling upstreams failed")
            await asyncio.sleep(self.pause(interval, self._anonymous_requests() - spent))

    def pause(self, interval: float, spent: int) -> float:
        """Seconds until the next round, after one that made `spent` anonymous requests."""
        rate = self.anonymous.rate_limit if self.anonymous is not None else None
        wait = next_round_in(interval, spent, rate, datetime.now(UTC))
        wait = max(wait, self._limited_until - time.monotonic())
        if wait > interval and rate is not None:
            log.info(
                "anonymous GitHub rate limit: %d of %d requests left, next poll in %.0fs",
                rate.remaining,
                rate.limit,
                wait,
            )
        return wait

    def _anonymous_requests(self) -> int:
        return self.anonymous.requests_sent if self.anonymous is not None else 0

    async def poll_once(self) -> int:
        """Record every new successful run of the polled upstreams; returns how many."""
        recorded = 0
        for upstream, branch_lists in (await self._upstreams()).items():
            gh = None
            try:
                gh = await self.gh_factory(upstream)
                recorded += await self._poll(gh, upstream, branch_lists)
            except HTTPException as exc:
                log.warning("cannot poll %s: %s %s", upstream, int(exc.status_code), exc)
            except RetryLater as exc:
                log.info("not polling %s this time: %s", upstream, exc)
                if gh is not None and gh is self.anonymous:
                    self._limited_until = max(self._limited_until, time.monotonic() + exc.delay)
            except Exception:
                log.exception("polling %s failed", upstream)
        return recorded

    async def _upstreams(self) -> dict[str, list[list[str] | None]]:
        """Subscribed upstreams on this host without an active installation, with the
        `branches` of each subscription to them."""
        installed = select(Project.key).where(
            Project.active.is_(True), Project.installation_id.is_not(None)
        )
        async with self.sessions() as session:
            rows = await session.execute(
                select(Subscription.upstream, Subscription.spec)
                .where(
                    Subscription.upstream.startswith(f"{self.host}/"),
                    Subscription.upstream.not_in(installed),
                )
                .order_by(Subscription.upstream, Subscription.id)
            )
            upstreams: dict[str, list[list[str] | None]] = {}
            for upstream, spec in rows:
                upstreams.setdefault(upstream, []).append(spec.get("branches"))
        return upstreams

    async def _poll(
        self, gh: PolicyAPI, upstream: str, branch_lists: list[list[str] | None]
    ) -> int:
        repo = upstream.split("/", 1)[1]
        branches: set[str | None] = set()  # None: no branch filter, for globs
        for names in branch_lists:
            if names is None:
                branches.add(await self._default_branch(gh, repo))
            else:
                branches.update(None if GLOB.search(name) else name for name in names)
        last_key = state_key(upstream, "last")
        stored = await self._load(last_key)
        runs = await self._fetch_runs(gh, repo, branches)
        newest = max(runs, default=0)
        if stored is None:
            # first poll: remember where the upstream is, without replaying its history
            await self._save({last_key: str(newest)})
            return 0
        last = int(stored)
        recorded = 0
        for run_id in sorted(runs):
            run = runs[run_id]
            if (
                run_id <= last
                or run.get("conclusion") != "success"
                or run.get("event") in PULL_REQUEST_EVENTS
            ):
                continue
            default_branch = self._default_branches.get(repo)
            ref_type, ref = await tags.ref_of(
                self.sessions,
                gh,
                upstream,
                run.get("head_branch"),
                run.get("head_sha"),
                ask=True,
                default_branch=default_branch,
            )
            await self.engine.upstream_success(
                UpstreamSuccess(
                    upstream,
                    sha=run.get("head_sha"),
                    ref=ref,
                    ref_type=ref_type,
                    pipeline=run.get("name"),
                    url=run.get("html_url"),
                    default_branch=default_branch,
                    via=Via.POLLER,
                    artifacts=await run_artifacts(gh, upstream, run),
                )
            )
            await self._save({last_key: str(run_id)})
            recorded += 1
        await self._save({last_key: str(max(last, newest))})
        return recorded

    async def _fetch_runs(
        self, gh: PolicyAPI, repo: str, branches: set[str | None]
    ) -> dict[int, dict[str, Any]]:
        """The latest successful runs of every watched branch, by run id."""
        runs: dict[int, dict[str, Any]] = {}
        for branch in sorted(branches, key=lambda b: b or ""):
            query = urlencode(
                {**({"branch": branch} if branch else {}), "status": "success", "per_page": 20}
            )
            data = await gh.getitem(f"/repos/{repo}/actions/runs?{query}")
            runs.update((run["id"], run) for run in data.get("workflow_runs", []))
        return runs

    async def _default_branch(self, gh: PolicyAPI, repo: str) -> str:
        if repo not in self._default_branches:
            data = await gh.getitem(f"/repos/{repo}")
            self._default_branches[repo] = data["default_branch"]
        return self._default_branches[repo]

    async def _load(self, key: str) -> str | None:
        async with self.sessions() as session:
            row = await session.get(KeyValue, key)
        return row.value if row is not None else None

    async def _save(self, values: dict[str, str]) -> None:
        async with self.sessions.begin() as session:
            for key, value in values.items():
                await session.merge(KeyValue(key=key, value=value))
