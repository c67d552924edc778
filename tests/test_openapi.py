"""`GET /api/v1/openapi.json` describes every endpoint, and the server keeps to it.

The description's routes are the app's routes (under /api/v1, /webhooks, /badges, /schema,
/healthz and /metrics), both ways. A property-based run (Schemathesis) drives every route of the
description against a real `python app.py` on loopback, GitHub deliveries signed with the
server's secret, and finds no 5xx and no answer — status code, content type, body — that the
description does not list. It runs a few dozen examples a route; CONJUNCTION_OPENAPI_EXAMPLES
asks for more (e.g. 1000 for a long run).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.settings import Settings
from conjunction.tokens import CallbackSigner
from conjunction.web.openapi import description
from testkit.keys import PRIVATE_KEY_PEM
from testkit.memoryhost import MemoryHost
from testkit.server_process import ROOT, ServerProcess, free_port
from tests.gitservers import BRANCH, Repository

DESCRIBED_PREFIXES = ("/api/v1/", "/webhooks/", "/badges/", "/schema/", "/healthz", "/metrics")
EXAMPLES = int(os.environ.get("CONJUNCTION_OPENAPI_EXAMPLES", "25"))
SECRET_KEY = "a-secret-key-for-the-openapi-run"
UPSTREAM = "git.test/acme/lib"
DOWNSTREAM = "git.test/acme/app"
GITHUB_SECRET = "openapi-github-secret"
GITLAB_SECRET = "openapi-gitlab-secret"
GITEA_SECRET = "openapi-gitea-secret"
ADMIN_TOKEN = "openapi-admin-token"
# a value for each path parameter, to find the app's route a described path reaches
SAMPLES = {"event_id": "0" * 32, "project": "github.com/acme/lib"}
PARAMETER = re.compile(r"\{(\w+)\}")


def described_routes() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in description()["paths"].items()
        for method in operations
    }


def app_routes(settings: Settings) -> dict[tuple[str, str], Any]:
    """(method, canonical path) -> resource, for the described prefixes; HEAD follows GET."""
    app = create_app(settings, adapters=Adapters.of(MemoryHost()), run_workers=False)
    return {
        (route.method, route.resource.canonical): route.resource
        for route in app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and route.resource.canonical.startswith(DESCRIBED_PREFIXES)
    }


def reaches(resource: Any, path: str) -> bool:
    info = resource.get_info()
    return bool(info["pattern"].fullmatch(path)) if "pattern" in info else info["path"] == path


def test_every_route_is_described_and_every_description_is_a_route(settings: Settings) -> None:
    routes = app_routes(settings)
    described = described_routes()
    examples = {
        (method, path): PARAMETER.sub(lambda found: SAMPLES[found[1]], path)
        for method, path in described
    }
    undescribed = [
        route
        for route, resource in routes.items()
        if not any(
            method == route[0] and reaches(resource, example)
            for (method, _), example in examples.items()
        )
    ]
    assert undescribed == [], "routes missing from conjunction/web/openapi.yaml"
    not_routes = [
        route
        for route, example in examples.items()
        if not any(
            method == route[0] and reaches(resource, example)
            for (method, _), resource in routes.items()
        )
    ]
    assert not_routes == [], "described paths the app does not serve"
    assert {path for _, path in routes} >= {"/api/v1/openapi.json", "/healthz", "/metrics"}


def test_the_description_is_openapi_3_1_and_names_every_answer() -> None:
    document = description()
    assert document["openapi"] == "3.1.0"
    schemathesis.openapi.from_dict(document)  # refuses a description it cannot read
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            assert any(code.startswith("2") for code in answers), (method, path)
            for code, answer in answers.items():
                if code.startswith(("4", "5")):
                    ref = answer.get("$ref") or ""
                    schema = (
                        document["components"]["responses"][ref.rsplit("/", 1)[1]]
                        if ref
                        else answer
                    )["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, code)


async def test_the_description_is_served_as_json(client: Any) -> None:
    answer = await client.get("/api/v1/openapi.json")
    assert answer.status == 200
    assert answer.content_type == "application/json"
    served = await answer.json()
    assert served == description()
    status = served["paths"]["/api/v1/events/{event_id}/status"]["post"]
    assert set(status["responses"]) >= {"202", "401", "404", "409", "422"}
    metadata = served["components"]["schemas"]["Metadata"]["properties"]
    assert metadata["attempt"]["minimum"] == 1
    assert metadata["summary"]["type"] == "string"
    assert "cut to its last 2,048 characters" in metadata["summary"]["description"]


# The property-based run against a real server


@dataclass(frozen=True)
class Server:
    """The running server, a project token of UPSTREAM, and a trigger event of DOWNSTREAM
    waiting for its result (with its callback token) and for its run's claim (with a project
    token of DOWNSTREAM)."""

    process: ServerProcess
    project_token: str
    trigger: str
    callback_token: str
    downstream_token: str

    @property
    def url(self) -> str:
        return self.process.url


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`python app.py` with every forge's webhooks on (their APIs a closed loopback port, so the
    work a delivery queues fails there and reaches no one), UPSTREAM and DOWNSTREAM joined
    through git, and one build of UPSTREAM reported, which triggered DOWNSTREAM."""
    folder = tmp_path_factory.mktemp("openapi")
    nowhere = f"http://127.0.0.1:{free_port()}"
    env = {
        "CONJUNCTION_SECRET_KEY": SECRET_KEY,
        "CONJUNCTION_ADMIN_TOKEN": ADMIN_TOKEN,
        "CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS": "true",
        "GITHUB_APP_ID": "1",
        "GITHUB_PRIVATE_KEY": PRIVATE_KEY_PEM,
        "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
        "GITHUB_API_URL": nowhere,
        "GITHUB_HOST": "github.com",
        "GITLAB_URL": nowhere,
        "GITLAB_HOST": "gitlab.com",
        "GITLAB_TOKEN": "openapi-gitlab-token",
        "GITLAB_WEBHOOK_SECRET": GITLAB_SECRET,
        "GITEA_URL": nowhere,
        "GITEA_HOST": "codeberg.org",
        "GITEA_TOKEN": "openapi-gitea-token",
        "GITEA_WEBHOOK_SECRET": GITEA_SECRET,
        "LOG_LEVEL": "warning",
    }
    process = ServerProcess(folder, env)
    repositories: dict[str, dict[str, str | None]] = {
        UPSTREAM: {"README": "lib\n"},
        DOWNSTREAM: {
            ".conjunction.yml": f"upstreams:\n  - project: {UPSTREAM}\n"
            f"trigger:\n  webhook:\n    url: {nowhere}/ci\n    claim: true\n"
        },
    }
    for name, files in repositories.items():
        repository = Repository(folder / "served", name.split("/", 1)[1])
        repository.commit("first", files)
        command(process, "project", "add", repository.file_url, "--allow-file", "--name", name)
    project_token = command(process, "token", "create", UPSTREAM).split()[0]
    downstream_token = command(process, "token", "create", DOWNSTREAM).split()[0]
    with process:
        built = requests.post(
            f"{process.url}/api/v1/builds",
            json={"project": UPSTREAM, "sha": "a" * 40, "ref": BRANCH, "result": "success"},
            headers={"Authorization": f"Bearer {project_token}"},
            timeout=30,
        )
        assert built.status_code == 202, built.text
        trigger = wait_for_trigger(process.url, built.json()["event_id"])
        callback_token = CallbackSigner(SECRET_KEY).token(trigger)
        yield Server(process, project_token, trigger, callback_token, downstream_token)
        assert "unhandled error" not in process.log()


def command(process: ServerProcess, *args: str) -> str:
    """`python app.py ARGS` on the server's database; its output."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), *args],
        cwd=process.directory,
        env=process.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_for_trigger(base_url: str, build: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = requests.get(f"{base_url}/api/v1/events/{build}", timeout=10).json()["children"]
        if children:
            trigger: str = children[0]["id"]
            return trigger
        time.sleep(0.1)
    raise AssertionError("the reported build triggered no downstream")


API = schemathesis.openapi.from_dict(description())
OPERATIONS = {
    result.ok().label: result.ok()
    for result in API.get_all_operations()
    if isinstance(result, Ok)  # each of ours parses: test_every_operation_of_the_description_parses
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _send(case: Any, server: Server, known: bool) -> requests.Response:
    """The case as Schemathesis would send it. GitHub and Gitea deliveries are signed with
    their secrets, a GitLab one carries its token, so that deliveries get past the door; when
    `known`, a build carries the project token and names its project, a status names the
    waiting trigger event and carries its callback token, a claim carries the downstream's
    token and names it, so that bodies get as far as being judged."""
    path = case.operation.path
    if known and path == "/api/v1/events/{event_id}/status":
        case.path_parameters = {**(case.path_parameters or {}), "event_id": server.trigger}
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {server.callback_token}"}
    elif known and path == "/api/v1/builds":
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {server.project_token}"}
        if isinstance(case.body, dict):
            case.body = {**case.body, "project": UPSTREAM}
    elif known and path == "/api/v1/claims":
        case.headers = {
            **(case.headers or {}),
            "Authorization": f"Bearer {server.downstream_token}",
        }
        if isinstance(case.body, dict):
            case.body = {**case.body, "project": DOWNSTREAM}
    request = case.as_transport_kwargs(base_url=server.url)
    if path.startswith("/webhooks/"):
        body = request.pop("json", None)
        data = json.dumps(body).encode() if body is not None else request.pop("data", b"")
        data = data.encode() if isinstance(data, str) else data
        request["data"] = data
        headers = request.setdefault("headers", {})
        headers.setdefault("Content-Type", "application/json")
        if path == "/webhooks/github":
            digest = hmac.new(GITHUB_SECRET.encode(), data, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature-256"] = f"sha256={digest}"
        elif path == "/webhooks/gitea":
            headers["X-Gitea-Signature"] = hmac.new(
                GITEA_SECRET.encode(), data, hashlib.sha256
            ).hexdigest()
        else:
            headers["X-Gitlab-Token"] = GITLAB_SECRET
    request.setdefault("timeout", 30)
    return requests.request(**request)


def test_every_operation_of_the_description_parses() -> None:
    results = list(API.get_all_operations())
    assert [result for result in results if not isinstance(result, Ok)] == []
    assert len(OPERATIONS) == len(results)


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_every_route_answers_as_described(label: str, server: Server) -> None:
    operation = OPERATIONS[label]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(cases, st.booleans())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=EXAMPLES <= 25,
        database=None,
    )
    def answers_as_described(case: Any, known: bool) -> None:
        case.validate_response(_send(case, server, known), checks=CHECKS)

    answers_as_described()


def test_the_description_names_each_token() -> None:
    schemes = description()["components"]["securitySchemes"]
    assert {name for name, scheme in schemes.items() if scheme.get("scheme") == "bearer"} == {
        "callbackToken",
        "projectToken",
        "adminToken",
    }
    paths = description()["paths"]
    assert paths["/api/v1/builds"]["post"]["security"] == [{"projectToken": []}]
    assert paths["/api/v1/claims"]["post"]["security"] == [{"projectToken": []}]
    assert {"adminToken": []} in paths["/api/v1/projects/{project}"]["get"]["security"]
