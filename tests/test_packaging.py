"""The package as `pip install .` makes it: a wheel built from the project's files alone,
installed into a new virtual environment, gives a `conjunction` command that works from any
directory, with its templates, migrations, schema and app manifest found beside the code.

Nothing is fetched: the wheel is built with this environment's setuptools, and the new
environment borrows this one's installed dependencies (a `.pth` line), not the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import conjunction

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "conjunction"]
DATA = [
    "conjunction/templates/summary.md",
    "conjunction/migrations/env.py",
    "conjunction/migrations/script.py.mako",
    "conjunction/migrations/versions/0001_initial_schema.py",
    "conjunction/config/conjunction.schema.json",
    "conjunction/forges/github/app.yml",
    "conjunction/forges/github/templates/setup/index.html",
    "conjunction/web/static/conjunction.css",
    "conjunction/web/templates/base.html",
    "conjunction/web/templates/demo/index.html",
    "conjunction-{version}.dist-info/licenses/LICENSE",
]

pytestmark = pytest.mark.packaging


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def pip(cwd: Path, *args: str | Path) -> str:
    return run(sys.executable, "-m", "pip", "-q", *args, cwd=cwd)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the project's files (the checkout stays as it was)."""
    work = tmp_path_factory.mktemp("package")
    source = work / "source"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    pip(work, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", work, source)
    (built,) = work.glob("conjunction-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path) -> Path:
    """A new virtual environment with the wheel installed; its bin directory."""
    venv = wheel.parent / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=wheel.parent)
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    python = venv / "bin" / "python"
    pip(venv, "--python", python, "install", "--no-deps", "--no-index", wheel)
    return venv / "bin"


def clean_env(home: Path) -> dict[str, str]:
    """No setting of this machine or of the tests leaks into the command."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}


def test_the_wheel_holds_the_files_the_service_reads(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert [
        name for name in DATA if name.format(version=conjunction.__version__) not in names
    ] == []
    assert "conjunction/app.py" in names and "conjunction/cli/__init__.py" in names
    # one top-level package: nothing else of the checkout lands in site-packages
    tops = {name.split("/")[0] for name in names}
    assert tops == {"conjunction", f"conjunction-{conjunction.__version__}.dist-info"}
    entry_points = zipfile.ZipFile(wheel).read(
        f"conjunction-{conjunction.__version__}.dist-info/entry_points.txt"
    )
    assert b"conjunction = conjunction.cli:main" in entry_points


def test_the_command_prints_its_version(installed: Path, tmp_path: Path) -> None:
    output = run(installed / "conjunction", "--version", cwd=tmp_path, env=clean_env(tmp_path))
    assert output == f"conjunction {conjunction.__version__}\n"


def test_the_command_validates_a_file_elsewhere(installed: Path, tmp_path: Path) -> None:
    config = tmp_path / "repo" / ".conjunction.yml"
    config.parent.mkdir()
    config.write_text("upstreams:\n  - project: github.com/acme/lib\n")
    output = run(
        installed / "conjunction", "validate", config, cwd=tmp_path, env=clean_env(tmp_path)
    )
    assert output == "ok\n"
    config.write_text("upstreams:\n  - project: github.com/acme/lib\n    brnaches: [main]\n")
    result = subprocess.run(
        [installed / "conjunction", "validate", ".conjunction.yml"],
        cwd=config.parent,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "line 3: upstreams.0.brnaches: unknown key 'brnaches'" in result.stderr


def test_the_installed_code_runs_and_migrates_away_from_the_checkout(
    installed: Path, tmp_path: Path
) -> None:
    """Every module and file comes from the new environment; a command that opens the database
    applies the packaged migrations."""
    env = {**clean_env(tmp_path), "CONJUNCTION_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}
    conjunction = installed / "conjunction"
    output = run(conjunction, "token", "create", "github.com/acme/lib", cwd=tmp_path, env=env)
    assert output.startswith("cjp_")
    where = run(
        installed / "python",
        "-c",
        "from conjunction import app, cli, config, db\n"
        "from conjunction.forges.github import setup\n"
        "from conjunction.web import templating\n"
        "for path in (app.__file__, cli.__file__, db.MIGRATIONS, config.__file__, "
        "setup.APP_YML, templating.HERE):\n"
        "    print(path)",
        cwd=tmp_path,
        env=env,
    )
    site = str(next(installed.parent.glob("lib/python*/site-packages")))
    for line in where.splitlines():
        assert line.startswith(site), line
        assert os.path.exists(line), line
