"""Shared fixtures: settings on a fresh database, the app with an in-memory forge, signed posts."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from aiohttp.test_utils import TestClient

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings, variables
from conjunction.engine import followups
from conjunction.forges.github.settings import GitHubSettings
from conjunction.forges.gitlab.settings import GitLabSettings
from conjunction.runtime import Runtime
from conjunction.web.context import RUNTIME
from testkit.databases import postgres_or_skip, reset_postgres
from testkit.keys import PRIVATE_KEY_PEM
from testkit.memoryhost import MemoryHost
from testkit.signing import WEBHOOK_SECRET, signed_headers
from tests.fakegitea import fake_gitea, gitea_both, gitea_settings  # noqa: F401  (fixtures)
from tests.fakegithub import app_private_key, app_private_pem, fake_github  # noqa: F401  (fixtures)
from tests.fakegitlab import both, fake_gitlab  # noqa: F401  (fixtures)
from tests.webhook_receiver import receiver  # noqa: F401  (fixture)

# Fuzz tests: a quick pass by default; CONJUNCTION_FUZZ=long searches much further, and flags any
# example slower than its deadline (a generous one: the machine is shared). The quick pass does
# not fail on how fast examples are made (names drawn from a regex are often filtered out):
# that depends on the machine's load, not on the code under test.
hypothesis.settings.register_profile(
    "fast",
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[
        hypothesis.HealthCheck.filter_too_much,
        hypothesis.HealthCheck.too_slow,
    ],
)
hypothesis.settings.register_profile(
    "long", max_examples=20_000, deadline=10_000, database=None, print_blob=True
)
hypothesis.settings.load_profile(os.environ.get("CONJUNCTION_FUZZ") or "fast")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every storage test runs on SQLite and, where one is given, on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'conjunction.db'}"
    url = postgres_or_skip()
    await reset_postgres(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'conjunction.db'}"


@pytest.fixture
def settings(sqlite_url: str) -> Settings:
    return Settings(
        database_url=sqlite_url,
        public_url="https://conjunction.test",
        secret_key="a-secret-key-for-the-tests",
        admin_token="admin-token",
        forges=(
            GitHubSettings(app_id="1", private_key=PRIVATE_KEY_PEM, webhook_secret=WEBHOOK_SECRET),
            GitLabSettings(webhook_secret="gitlab-secret"),
        ),
    )


@pytest.fixture
def forge() -> MemoryHost:
    return MemoryHost()


@pytest.fixture
async def client(
    aiohttp_client: Any, settings: Settings, forge: MemoryHost
) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(settings, adapters=Adapters.of(forge), run_workers=False)
    yield await aiohttp_client(app)


def runtime(client: TestClient[Any, Any]) -> Runtime:
    return client.app[RUNTIME]


async def run_jobs(client: TestClient[Any, Any]) -> int:
    return await runtime(client).worker.run_until_idle()


async def post_github(
    client: TestClient[Any, Any], event: str, payload: dict[str, Any], delivery: str | None = None
) -> Any:
    body = json.dumps(payload).encode()
    return await client.post(
        "/webhooks/github", data=body, headers=signed_headers(event, body, delivery)
    )


@pytest.fixture(autouse=True)
def reports_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit's reports are spaced a second apart; the tests run the jobs due now, so they
    report at once (tests/test_queue.py checks the spacing itself)."""
    monkeypatch.setattr(followups, "REPORT_INTERVAL", 0.0)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in variables():
        monkeypatch.delenv(name, raising=False)
    yield
