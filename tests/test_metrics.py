"""/metrics: the counters, and the gauges read from the database when it is scraped — queued
jobs by kind, the oldest due job's wait, dead jobs, pending triggers — with the durations of
downstream pipelines and each forge's remaining rate limit; the Grafana dashboard and the
Prometheus rules in docs/ name only metrics that /metrics serves."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.forges.gitlab.client import Pacer
from conjunction.models import Job, utcnow
from conjunction.queue import JobQueue
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.fakegithub import FakeGitHub
from tests.test_flow import APP, LIB, index, report_status, upstream_of

DOCS = Path(__file__).parent.parent / "docs"
METRIC = re.compile(r"\bconjunction_[a-z0-9_]+\b")
SUFFIXES = ("", "_total", "_count", "_sum", "_bucket", "_created")


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: TestClient[Any, Any]) -> Samples:
    """Every sample /metrics serves: (name, labels) -> value."""
    answer = await client.get("/metrics")
    assert answer.status == 200
    assert answer.content_type == "text/plain"
    samples: Samples = {}
    for family in text_string_to_metric_families(await answer.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
async def client_on(
    aiohttp_client: Any, settings: Settings, database_url: str, forge: MemoryHost
) -> TestClient[Any, Any]:
    """The app on SQLite, and on PostgreSQL where the tests have one."""
    settings = settings.model_copy(update={"database_url": database_url})
    app = create_app(settings, adapters=Adapters.of(forge), run_workers=False)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


async def test_queue_and_trigger_gauges_follow_the_database(
    client_on: TestClient[Any, Any], forge: MemoryHost
) -> None:
    client = client_on
    await index(client, LIB, None)
    await index(client, APP, upstream_of(LIB))
    before = await scrape(client)  # durations count from the first scrape on
    done_before = value(before, "conjunction_downstream_seconds_count", result="success")

    await post_github(client, "workflow_run", workflow_run("acme/lib", "1" * 40))
    async with runtime(client).sessions.begin() as session:
        await JobQueue.enqueue(session, "report", {"n": 1}, delay=600)  # not due yet
        await JobQueue.enqueue(session, "notify_send", {"n": 2})
    async with runtime(client).sessions.begin() as session:
        await session.execute(
            update(Job).where(Job.kind == "notify_send").values(state="dead", last_error="gone")
        )
        # the delivery's job has been due for 7 minutes
        await session.execute(
            update(Job)
            .where(Job.kind == "github_delivery")
            .values(run_at=utcnow() - timedelta(minutes=7))
        )
    samples = await scrape(client)
    assert value(samples, "conjunction_jobs_queued", kind="github_delivery") == 1
    assert value(samples, "conjunction_jobs_queued", kind="report") == 1
    assert value(samples, "conjunction_jobs_dead") == 1
    assert 420 <= value(samples, "conjunction_jobs_oldest_queued_seconds") < 480
    assert value(samples, "conjunction_triggers_pending") == 0

    await run_jobs(client)  # the delivery runs: APP is triggered
    samples = await scrape(client)
    assert ("conjunction_jobs_queued", (("kind", "github_delivery"),)) not in samples
    assert value(samples, "conjunction_jobs_oldest_queued_seconds") == 0
    assert value(samples, "conjunction_triggers_pending") == 1

    [(_, started)] = forge.of("start_pipeline")
    answer = await report_status(client, started.event_id, "success")
    assert answer.status == 202
    await run_jobs(client)
    samples = await scrape(client)
    assert value(samples, "conjunction_triggers_pending") == 0
    count = value(samples, "conjunction_downstream_seconds_count", result="success")
    assert count == done_before + 1
    samples = await scrape(client)  # a result is counted once
    assert value(samples, "conjunction_downstream_seconds_count", result="success") == count


async def test_each_forges_remaining_rate_limit(
    client: TestClient[Any, Any], fake_github: FakeGitHub
) -> None:
    fake_github.expect(
        "GET",
        "/repos/acme/lib",
        body={"id": 1},
        headers={
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "4321",
            "X-RateLimit-Reset": "1900000000",
        },
    )
    await fake_github.connect(pace_key="installation 7").getitem("/repos/acme/lib")
    Pacer().observe({"RateLimit-Limit": "2000", "RateLimit-Remaining": "1999"})

    samples = await scrape(client)
    github = {"forge": "github", "client": "installation 7"}
    assert value(samples, "conjunction_forge_rate_limit_remaining", **github) == 4321
    assert value(samples, "conjunction_forge_rate_limit", **github) == 5000
    gitlab = {"forge": "gitlab", "client": "bot"}
    assert value(samples, "conjunction_forge_rate_limit_remaining", **gitlab) == 1999
    assert value(samples, "conjunction_forge_rate_limit", **gitlab) == 2000


async def served_names(client: TestClient[Any, Any]) -> set[str]:
    """Every name a query may use: each family /metrics describes, with its samples' suffixes."""
    text = await (await client.get("/metrics")).text()
    families = re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE)
    return {family + suffix for family in families for suffix in SUFFIXES}


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def alert_queries() -> list[str]:
    rules = yaml.safe_load((DOCS / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


async def test_the_dashboard_and_alerts_use_only_served_metrics(
    client: TestClient[Any, Any],
) -> None:
    served = await served_names(client)
    queries = dashboard_queries() + alert_queries()
    used = {name for query in queries for name in METRIC.findall(query)}
    assert used and used <= served, sorted(used - served)
    gauges = {
        "conjunction_jobs_queued",
        "conjunction_jobs_oldest_queued_seconds",
        "conjunction_jobs_dead",
        "conjunction_triggers_pending",
        "conjunction_forge_rate_limit_remaining",
        "conjunction_downstream_seconds_bucket",
    }
    assert gauges <= {name for query in dashboard_queries() for name in METRIC.findall(query)}


def test_the_alerts_are_the_queues_own() -> None:
    rules = yaml.safe_load((DOCS / "alerts.yml").read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    waiting = alerts["ConjunctionJobWaiting"]
    assert waiting["expr"] == "max(conjunction_jobs_oldest_queued_seconds) > 300"
    assert alerts["ConjunctionDeadJobs"]["expr"] == "max(conjunction_jobs_dead) > 0"
