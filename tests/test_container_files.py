"""The Dockerfile and compose.yaml, read without a container engine: what they run, as whom,
where the data lives, what the health checks ask. `.ci/container` builds the image and starts it
and compose.yaml for real with Docker (README, "Development"; docs/deploy.md)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import yaml

from tests.test_packaging import SOURCES

ROOT = Path(__file__).resolve().parent.parent


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    pairs = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(pair[0].upper(), pair[1] if len(pair) > 1 else "") for pair in pairs]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (name, _) in enumerate(steps) if name == "FROM")
    return steps[last_from:]


def test_it_builds_on_python_3_11_slim_in_two_stages() -> None:
    steps = instructions()
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in steps
    froms = [args for name, args in steps if name == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    assert any(name == "COPY" and args.startswith("--from=build ") for name, args in steps)


def test_the_build_stage_copies_what_the_package_is_made_of() -> None:
    """The files the wheel is built from (the same list the packaging test builds from), and no
    more: the build context stays free of .env and databases (.dockerignore)."""
    build = instructions()[: len(instructions()) - len(final_stage())]
    copied = []
    for name, args in build:
        if name == "COPY":
            copied += args.split()[:-1]
    assert sorted(copied) == sorted(SOURCES)
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    assert sorted(allowed) == sorted(SOURCES)


def test_the_image_runs_conjunction_as_a_user_with_its_data_on_a_volume() -> None:
    steps = dict(final_stage())
    assert json.loads(steps["ENTRYPOINT"]) == ["conjunction"]
    assert json.loads(steps["CMD"]) == ["serve"]
    user = steps["USER"].split(":")[0]
    assert user not in {"", "0", "root"}
    assert steps["VOLUME"] == "/data" and steps["WORKDIR"] == "/data"
    assert "CONJUNCTION_DATABASE_URL=sqlite:////data/conjunction.db" in steps["ENV"]
    runs = [args for name, args in final_stage() if name == "RUN"]
    assert any(f"useradd --uid {user} " in args for args in runs)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "conjunction" in scripts


def test_the_health_check_asks_healthz_on_the_port_it_listens_on() -> None:
    check = dict(final_stage())["HEALTHCHECK"]
    command = json.loads(check[check.index("CMD ") + 4 :])
    assert command[:2] == ["python", "-c"]
    assert "/healthz" in command[2] and "os.environ.get('PORT', '3000')" in command[2]
    assert "PORT=3000" in dict(final_stage())["ENV"]
    compile(command[2], "healthcheck", "exec")  # it is Python that runs


def test_compose_runs_it_on_postgresql_with_a_second_replica_on_request() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    first, replica = services["conjunction"], services["conjunction-replica"]
    for service in (first, replica):
        assert service["build"] == "."
        url = service["environment"]["CONJUNCTION_DATABASE_URL"]
        assert url.startswith("postgresql://") and "@postgres:5432/" in url
        assert "profiles" not in service or service is replica
    assert replica["profiles"] == ["replicas"]
    assert first["depends_on"]["postgres"]["condition"] == "service_healthy"
    # the replica starts once the first has applied any migrations and answers /healthz
    assert replica["depends_on"]["conjunction"]["condition"] == "service_healthy"
    assert first["volumes"] != replica["volumes"]
    assert set(compose["volumes"]) >= {"postgres", "data", "data-replica"}


def test_compose_waits_for_postgresql_over_tcp() -> None:
    """On a new volume the postgres image creates its database through a server listening on its
    Unix socket only: a check on the socket would let Conjunction start before it can connect."""
    check = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]["postgres"]
    test = ["CMD-SHELL", "pg_isready -h 127.0.0.1 -U conjunction -d conjunction"]
    assert check["healthcheck"]["test"] == test


def test_the_ci_override_changes_only_images_and_settings() -> None:
    """What `.ci/container` lays over compose.yaml: stand-in images, an image name of its own and
    a GitHub App's settings; the ports, volumes, health checks and start order it checks are
    compose.yaml's own."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    override = yaml.safe_load((ROOT / ".ci/compose.ci.yaml").read_text())["services"]
    assert set(override) <= set(compose)
    assert override["postgres"].keys() == {"image"}
    for name in ("conjunction", "conjunction-replica"):
        assert override[name].keys() == {"build", "image", "environment"}
        assert override[name]["build"].keys() == {"args"}
        assert override[name]["build"]["args"].keys() == {"PYTHON_IMAGE"}
        assert override[name]["image"] != compose[name]["image"]
