"""Forges as drivers: `conjunction.forges.DRIVERS` is the one list of forges — a driver added there
is served at /webhooks/<name>, has its deliveries processed, counts in the setup check, offers its
setup pages and has its command — no driver imports the engine itself, only
`conjunction.engine_api`, and the core (the wiring, HTTP, settings, command line and engine)
imports no forge's package."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from conjunction import cli, forges
from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings, SettingsError, settings_from, variables
from conjunction.engine.issues import FORGE_NAMES
from conjunction.web.setup import forge_configured
from testkit.memoryhost import MemoryHost
from testkit.settings import with_forge
from tests import acme
from tests.acme.server import DELIVERED
from tests.acme.settings import AcmeSettings
from tests.conftest import runtime
from tests.imports import imports_of

ROOT = Path(__file__).parent.parent


def engine_imports(source: str) -> list[str]:
    """The imports of `conjunction.engine` (or a module of it) in a module's source."""
    return [name for _, name in imports_of(source, ["conjunction.engine"])]


def test_the_check_finds_every_way_of_importing_the_engine() -> None:
    for source in (
        "from conjunction.engine import Engine",
        "import conjunction.engine.results",
        "from conjunction import engine",
        "from conjunction.engine.matching import FinishedPipeline",
    ):
        assert engine_imports(source), source
    assert engine_imports("from conjunction.engine_api import EngineAPI\nimport engines") == []


def driver_modules() -> list[Path]:
    """Every module of every driver: all of conjunction/forges/."""
    return list((ROOT / "conjunction" / "forges").rglob("*.py"))


def test_no_driver_imports_the_engine() -> None:
    modules = driver_modules()
    assert len(modules) > 30
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in modules
        if (found := engine_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


FORGE_PACKAGES = sorted(
    f"conjunction.forges.{path.parent.name}"
    for path in (ROOT / "conjunction" / "forges").glob("*/__init__.py")
)


def forge_imports(source: str) -> list[str]:
    """The imports of a forge's package (`conjunction.forges.github`, …) in a module's source."""
    return [name for _, name in imports_of(source, FORGE_PACKAGES)]


def test_the_check_finds_every_way_of_importing_a_forge() -> None:
    assert FORGE_PACKAGES == [
        "conjunction.forges.gitea",
        "conjunction.forges.github",
        "conjunction.forges.gitlab",
    ]
    for source in (
        "from conjunction.forges import github",
        "import conjunction.forges.gitlab.settings",
        "from conjunction.forges.gitea.host import GiteaHost",
        "from conjunction.forges.github import setup",
    ):
        assert forge_imports(source), source
    neutral = (
        "from conjunction import forges\n"
        "from conjunction.forges.driver import Driver\n"
        "from conjunction.forges.webhook import WebhookRunner\n"
        "import conjunction.forges.githubby\n"
    )
    assert forge_imports(neutral) == []


def core_modules() -> list[Path]:
    """The service's core: the wiring, HTTP, settings, command line and engine."""
    modules = [ROOT / "conjunction" / "app.py"]
    for folder in ("web", "config", "cli", "engine"):
        modules += (ROOT / "conjunction" / folder).rglob("*.py")
    return modules


def test_the_core_imports_no_forge() -> None:
    """Core reaches the forges through `conjunction.forges.DRIVERS` only."""
    modules = core_modules()
    assert len(modules) > 40
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in modules
        if (found := forge_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_the_public_forges_are_named_in_texts_by_their_drivers() -> None:
    assert FORGE_NAMES == {"github.com": "GitHub", "gitlab.com": "GitLab"}


# A forge of the tests, tests/acme/: its package and a line in DRIVERS are all it takes.


@pytest.fixture
def with_acme(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forges, "DRIVERS", (*forges.DRIVERS, acme.DRIVER))


def webhook_paths(app: web.Application) -> set[str]:
    return {
        resource.canonical
        for resource in app.router.resources()
        if resource.canonical.startswith("/webhooks/")
    }


def test_every_driver_is_served_at_its_webhook(settings: Settings) -> None:
    app = create_app(settings, adapters=Adapters.of(MemoryHost()), run_workers=False)
    assert webhook_paths(app) == {"/webhooks/github", "/webhooks/gitlab", "/webhooks/gitea"}


@pytest.mark.usefixtures("with_acme")
async def test_a_driver_in_the_registry_is_served_processed_and_configured(
    aiohttp_client: Any, settings: Settings
) -> None:
    client: TestClient[Any, Any] = await aiohttp_client(
        create_app(settings, adapters=Adapters.of(MemoryHost()), run_workers=False)
    )
    answer = await client.post("/webhooks/acme", data="hello")
    assert (answer.status, await answer.json()) == (202, {"forge": "acme", "body": "hello"})
    assert "/webhooks/acme" in webhook_paths(client.app)
    handler = runtime(client).worker.handlers["acme_delivery"]
    await handler({"delivery": "d1"})
    assert DELIVERED[-1] == {"delivery": "d1"}


ACME_CONFIGURED = {"ACME_TOKEN": "acme-token-value", "ACME_WEBHOOK_SECRET": "acme-hook-secret"}


@pytest.mark.usefixtures("with_acme")
def test_a_driver_s_settings_come_from_its_own_variables() -> None:
    settings = settings_from(ACME_CONFIGURED | {"ACME_HOST": "git.acme.dev"})
    acme_settings = settings.forge(AcmeSettings)
    assert (acme_settings.token, acme_settings.host) == ("acme-token-value", "git.acme.dev")
    assert "ACME_TOKEN" in variables()
    with pytest.raises(SettingsError) as caught:
        settings_from({"ACME_TOKEN": "acme-token-value"})
    assert str(caught.value) == (
        "Acme Forge half configured: ACME_TOKEN is set but ACME_WEBHOOK_SECRET is missing"
    )


@pytest.mark.usefixtures("with_acme")
def test_the_setup_check_asks_every_driver(settings: Settings) -> None:
    assert forge_configured(settings)
    bare = settings.model_copy(update={"forges": ()})
    assert not forge_configured(bare)
    assert forge_configured(with_forge(bare, settings_from(ACME_CONFIGURED).forge(AcmeSettings)))


async def test_a_driver_s_setup_is_offered_while_no_forge_is_configured(
    aiohttp_client: Any,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(forges, "DRIVERS", (acme.DRIVER,))
    caplog.set_level("WARNING", logger="conjunction")
    bare = settings.model_copy(update={"forges": ()})
    client: TestClient[Any, Any] = await aiohttp_client(create_app(bare, run_workers=False))
    answer = await client.get("/")
    assert answer.status == 200
    assert "<title>Set up Acme" in await answer.text()
    assert '<form method="post" action="https://acme.test/apps/new">' in await answer.text()
    policy = answer.headers["Content-Security-Policy"]
    assert "form-action 'self' https://acme.test;" in policy
    assert "no forge is configured: set ACME_TOKEN and ACME_WEBHOOK_SECRET" in caplog.text


@pytest.mark.usefixtures("with_acme")
def test_a_driver_s_command_is_listed_with_the_others() -> None:
    usage = cli.parser().format_help()
    assert "\n    acme      Acme Forge repositories\n" in usage
    assert list(cli.command_lines()) == [
        "serve",
        "validate",
        "token",
        "jobs",
        "gitlab",
        "gitea",
        "acme",
        "project",
        "demo",
    ]
    # the command group is its package's `command` module, tests/acme/command.py
    args = cli.parser(command="acme").parse_args(["acme", "acme/lib"])
    assert args.path == "acme/lib"


def test_the_forges_without_a_command_have_none() -> None:
    names: Mapping[str, str | None] = {d.name: d.command for d in forges.DRIVERS}
    assert names["github"] is None  # a repository joins by installing the GitHub App
    assert "github" not in cli.command_lines()
