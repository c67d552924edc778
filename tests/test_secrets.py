"""Named secrets: who may use which, the file read again as it changes or on SIGHUP, and
`validate` checking the secrets a config names."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from conjunction.adapters import Adapters
from conjunction.app import create_app, main
from conjunction.config.settings import Settings
from conjunction.secrets import SecretRefused, SecretsFileError, SecretStore, load_secrets
from testkit.memoryhost import MemoryHost
from tests.conftest import runtime

VALUE = "s3cret-value-do-not-show"
SECRETS = f"""\
acme-ci: {{value: "{VALUE}", projects: ["github.com/acme/*", "gitlab.com/acme/tools/*"]}}
lib-only: {{value: "lib-value", projects: ["github.com/acme/lib"]}}
"""
CONFIG = """\
upstreams:
  - project: github.com/acme/lib
trigger:
  webhook:
    url: https://ci.acme.dev/hook
    secret: acme-ci
    headers: {Authorization: "Bearer ${secret:lib-only}"}
"""


def secrets_file(directory: Path, text: str = SECRETS) -> Path:
    path = directory / "secrets.yml"
    path.write_text(text)
    return path


def test_a_secret_is_given_only_to_the_projects_its_globs_allow(tmp_path: Path) -> None:
    store = SecretStore(secrets_file(tmp_path))
    assert store.value("acme-ci", "github.com/acme/app") == VALUE
    assert store.value("acme-ci", "GitHub.com/Acme/App") == VALUE  # names compare so
    assert store.value("acme-ci", "gitlab.com/acme/tools/cli") == VALUE
    assert store.problem("acme-ci", "github.com/acme/app") is None
    assert store.problem("acme-ci", "github.com/other/app") == (
        "secret 'acme-ci' may not be used by github.com/other/app"
    )
    assert store.problem("nope", "github.com/acme/app") == (
        "secret 'nope' is not in the server's secrets file"
    )
    with pytest.raises(SecretRefused, match=r"^secret 'lib-only' may not be used by"):
        store.value("lib-only", "github.com/acme/app")
    assert SecretStore().problem("acme-ci", "github.com/acme/app") == (
        "secret 'acme-ci' is unknown: this server has no CONJUNCTION_SECRETS_FILE"
    )
    assert VALUE not in repr(load_secrets(tmp_path / "secrets.yml"))


def test_the_file_is_read_again_when_it_changes_and_a_broken_one_keeps_the_last(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = secrets_file(tmp_path)
    store = SecretStore(path)
    assert store.problem("new", "github.com/acme/app") is not None
    path.write_text(SECRETS + 'new: {value: "n", projects: ["github.com/acme/app"]}\n')
    assert store.value("new", "github.com/acme/app") == "n"

    caplog.set_level(logging.INFO)
    path.write_text(f'acme-ci: {{value: "{VALUE}, projects: []}}\n')  # a quote left open
    assert store.value("new", "github.com/acme/app") == "n"
    assert f"CONJUNCTION_SECRETS_FILE: {path} is not valid YAML" in caplog.text
    assert "the secrets read before stay in force" in caplog.text
    assert VALUE not in caplog.text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('a: {value: "s3cret-value-do-not-show', "is not valid YAML (found unexpected end"),
        ("a: s3cret-value-do-not-show\n", "secret 'a' needs a string 'value' and a list"),
        ('a: {value: "s3cret-value-do-not-show", project: []}\n', "unknown keys: project"),
        ("- s3cret-value-do-not-show\n", "must map secret names to {value, projects}"),
    ],
)
def test_a_malformed_file_is_named_without_its_values(
    tmp_path: Path, text: str, problem: str
) -> None:
    with pytest.raises(SecretsFileError) as caught:
        load_secrets(secrets_file(tmp_path, text))
    assert problem in str(caught.value)
    assert VALUE not in str(caught.value)


async def test_sighup_reads_the_file_again(
    aiohttp_client: Any, settings: Settings, forge: MemoryHost, tmp_path: Path
) -> None:
    """Even a change that leaves the file's size and time as they were."""
    path = secrets_file(tmp_path)
    settings = settings.model_copy(update={"secrets_file": path})
    client = await aiohttp_client(
        create_app(settings, adapters=Adapters.of(forge), run_workers=False)
    )
    store = runtime(client).engine.secrets
    assert store.value("lib-only", "github.com/acme/lib") == "lib-value"
    same_size = SECRETS.replace("lib-value", "LIB-VALUE")
    stat = path.stat()
    rewrite(path, same_size, stat.st_mtime_ns)
    assert store.value("lib-only", "github.com/acme/lib") == "lib-value"  # looks unchanged

    os.kill(os.getpid(), signal.SIGHUP)
    for _ in range(100):
        await asyncio.sleep(0.01)
        if store.value("lib-only", "github.com/acme/lib") == "LIB-VALUE":
            break
    assert store.value("lib-only", "github.com/acme/lib") == "LIB-VALUE"


def rewrite(path: Path, text: str, mtime_ns: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


# validate


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_env: None) -> None:
    """No CONJUNCTION_SECRETS_FILE from the environment or a `.env` file."""
    monkeypatch.chdir(tmp_path)


def test_validate_refuses_unknown_secrets_with_the_secrets_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], in_tmp: None
) -> None:
    config = tmp_path / ".conjunction.yml"
    config.write_text(CONFIG.replace("acme-ci", "acme-cd"))
    secrets = secrets_file(tmp_path)
    assert main(["validate", str(config)]) == 0, "without a secrets file, names are not checked"
    capsys.readouterr()
    assert main(["validate", str(config), "--secrets", str(secrets)]) == 1
    assert capsys.readouterr().err == (
        f"{config}: line 6: trigger.webhook.secret: secret 'acme-cd' is not in the secrets file\n"
    )


def test_validate_refuses_secrets_the_project_may_not_use(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    in_tmp: None,
) -> None:
    config = tmp_path / ".conjunction.yml"
    config.write_text(CONFIG)
    monkeypatch.setenv("CONJUNCTION_SECRETS_FILE", str(secrets_file(tmp_path)))
    assert main(["validate", str(config), "--project", "github.com/acme/lib"]) == 0
    assert capsys.readouterr().out == "ok\n"
    assert main(["validate", str(config), "--project", "github.com/acme/app"]) == 1
    assert capsys.readouterr().err == (
        f"{config}: line 7: trigger.webhook.headers.Authorization: secret 'lib-only' may not "
        "be used by github.com/acme/app\n"
    )


def test_validate_names_a_broken_secrets_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], in_tmp: None
) -> None:
    config = tmp_path / ".conjunction.yml"
    config.write_text(CONFIG)
    broken = secrets_file(tmp_path, "acme-ci: [1]\n")
    assert main(["validate", str(config), "--secrets", str(broken)]) == 2
    assert capsys.readouterr().err == (
        "conjunction: secrets file: secret 'acme-ci' needs a string 'value' and a list 'projects'\n"
    )
