"""The commands of `python app.py`: validate, token; and start-up errors."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from conjunction import __version__
from conjunction.app import main
from conjunction.config.repo_config import MAX_CONFIG_BYTES

ROOT = Path(__file__).parent.parent


def test_validate_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / ".conjunction.yml"
    path.write_text("upstreams:\n  - project: github.com/acme/lib\n")
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out == "ok\n"


def test_validate_reports_line_and_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / ".conjunction.yml"
    path.write_text("upstreams:\n  - project: github.com/acme/lib\n    brnaches: [main]\n")
    assert main(["validate", str(path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"{path}: line 3: upstreams.0.brnaches: unknown key 'brnaches'")


def test_validate_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_validate_stops_reading_past_the_limit(tmp_path: Path) -> None:
    """/dev/zero never ends: reading it all would fill the 1 GiB this run may use."""

    def at_most_one_gib() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "validate", "/dev/zero"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        preexec_fn=at_most_one_gib,
        timeout=120,
    )
    assert (result.returncode, result.stdout, result.stderr) == (
        1,
        "",
        f"/dev/zero: file is over the limit of {MAX_CONFIG_BYTES} bytes\n",
    )


def test_tokens_are_shown_once_and_revoked(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_env: None,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONJUNCTION_DATABASE_URL", f"sqlite:///{tmp_path / 'c.db'}")
    assert main(["token", "create", "github.com/acme/lib"]) == 0
    token = capsys.readouterr().out.splitlines()[0]
    assert token.startswith("cjp_")
    assert main(["token", "list", "github.com/acme/lib"]) == 0
    listing = capsys.readouterr().out
    assert token[:10] in listing and token not in listing and "active" in listing
    assert main(["token", "revoke", "github.com/acme/lib", "token-1"]) == 0
    assert (
        capsys.readouterr().out == f"revoked token token-1 ({token[:10]}…) of github.com/acme/lib\n"
    )
    assert token not in (tmp_path / "c.db").read_bytes().decode("latin-1")


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"PORT": "not-a-port"}, "PORT: expected a whole number, got 'not-a-port'"),
        (
            {"GITHUB_APP_ID": "12345", "GITHUB_WEBHOOK_SECRET": "s"},
            "GitHub App half configured: GITHUB_APP_ID and GITHUB_WEBHOOK_SECRET are set but "
            "GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH) is missing",
        ),
    ],
)
def test_bad_setting_stops_start_up_with_one_line(
    tmp_path: Path, env: dict[str, str], line: str
) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        env={**env, "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == f"conjunction: {line}\n"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"conjunction {__version__}\n"


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    usage = capsys.readouterr().out
    assert usage.startswith("usage: app.py [-h] [--version] COMMAND ...")
    for command in ("serve", "validate", "token", "jobs", "gitlab", "gitea", "project", "demo"):
        assert f"\n    {command} " in usage


def test_validate_loads_neither_the_server_nor_the_engine(tmp_path: Path) -> None:
    """Only the command given is imported: `conjunction validate` in a pre-commit hook starts
    without the aiohttp application and the engine."""
    path = tmp_path / ".conjunction.yml"
    path.write_text("upstreams:\n  - project: github.com/acme/lib\n")
    program = (
        "import sys\nfrom conjunction import cli\n"
        "code = cli.main(['validate', sys.argv[1]])\n"
        "loaded = {'conjunction.app', 'aiohttp', 'conjunction.engine', 'sqlalchemy'}\n"
        "print(code, sorted(loaded & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", program, str(path)],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout == "ok\n0 []\n", result.stderr


@pytest.mark.parametrize(
    ("run_name", "warned"),
    [
        ('"conjunction ${{ inputs.conjunction_event }}"', False),
        ('"Downstream tests"', True),
        (None, True),
    ],
)
def test_validate_says_why_the_dispatched_workflow_should_name_its_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], run_name: str | None, warned: bool
) -> None:
    path = tmp_path / ".conjunction.yml"
    path.write_text(
        "upstreams:\n  - project: github.com/acme/lib\ntrigger:\n  workflow: conjunction.yml\n"
    )
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    header = f"run-name: {run_name}\n" if run_name else ""
    (workflows / "conjunction.yml").write_text(f"name: Downstream\n{header}on: workflow_dispatch\n")
    assert main(["validate", str(path)]) == 0  # a warning, not an error
    error = capsys.readouterr().err
    assert ("warning: conjunction.yml has no run-name carrying" in error) is warned
    if warned:
        assert "${{ inputs.conjunction_event }}" in error
