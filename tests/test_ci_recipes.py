"""The recipes of `docs/ci/`, run as written.

For each page: its `.conjunction.yml` is valid with its `secrets.yml`; an upstream success sends,
through the webhook runner, the request that CI's API documents to a loopback receiver standing
in for it; the page's reporting commands then run in the shell, with the variables that CI would
derive from that request, and `curl` reports to the running app — once for a failing build and
once for a passing one — and the upstream commit shows each result.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from conjunction.config.settings import Settings
from conjunction.tokens import create_project_token
from testkit.memoryhost import MemoryHost
from tests.conftest import run_jobs, runtime
from tests.fakezuul import Tenant, start_zuul
from tests.recipes import (
    LIB,
    Downstream,
    Ran,
    code_blocks,
    downstream_of,
    live_client,
    need,
    run,
)
from tests.test_flow import index
from tests.webhook_receiver import Received, Receiver

# (upstream commit, the downstream's result): a failing build first, then a passing one
OUTCOMES = [("a" * 40, "success"), ("f" * 40, "failure")]  # a pass, then a new regression


@pytest.fixture(autouse=True)
def _shell_tools() -> None:
    need("curl", "bash", "jq")


Configure = Callable[[str, str, str], Awaitable[Downstream]]


@pytest.fixture
def configure(
    aiohttp_client: Any, settings: Settings, forge: MemoryHost, receiver: Receiver, tmp_path: Path
) -> Configure:
    """(page, downstream project, the CI's URL in its config) -> the app with that downstream,
    triggering the receiver instead of the CI."""

    async def configure(page: str, project: str, ci_url: str) -> Downstream:
        receiver.secret = None  # set where the page signs its requests
        return await downstream_of(
            page,
            project,
            ci_url,
            receiver.base,
            aiohttp_client=aiohttp_client,
            settings=settings,
            forge=forge,
            tmp_path=tmp_path,
        )

    return configure


def reported(ran: Ran) -> dict[str, Any]:
    """What the app answered the CI's `curl`: 202 and the result, or the test fails with why."""
    assert ran.code == 0, f"exit {ran.code}: {ran.out} {ran.err}"
    answer: dict[str, Any] = json.loads(ran.out)
    return answer


def event_of(sent: Received) -> str:
    return sent.headers["X-Conjunction-Event"]


# GitHub Actions

EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


def workflow_step(workflow_text: str, name: str) -> dict[str, Any]:
    workflow = yaml.safe_load(workflow_text)
    [step] = [
        step
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if step.get("name") == name
    ]
    assert step["if"] == "always()"
    assert "${{" not in step["run"]  # values come in through env:, never spliced into the script
    return dict(step)


def step_env(step: dict[str, Any], context: dict[str, str]) -> dict[str, str]:
    """The step's `env:` with each `${{ expression }}` replaced as GitHub would."""
    return {
        name: EXPRESSION.sub(lambda found: context[found[1]], str(value))
        for name, value in step["env"].items()
    }


async def run_step(step: dict[str, Any], context: dict[str, str]) -> Ran:
    # GitHub's default shell for run: on Linux
    argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]]
    return await run(argv, step_env(step, context))


async def test_github_actions_reports_builds_and_results_with_curl(
    configure: Configure, receiver: Receiver, tmp_path: Path
) -> None:
    app = "github.com/acme/app"
    ci = await configure("github-actions.md", app, "https://api.github.com")
    upstream_step = workflow_step(
        ci.blocks[".github/workflows/ci.yml"], "Report the build to Conjunction"
    )
    downstream_workflow = ci.blocks[".github/workflows/conjunction.yml"]
    report_step = workflow_step(downstream_workflow, "Report to Conjunction")
    triggers = yaml.safe_load(downstream_workflow)[True]  # YAML reads the key `on` as true
    async with runtime(ci.client).sessions.begin() as session:
        project_token = await create_project_token(session, LIB)

    for run_id, (sha, outcome) in enumerate(OUTCOMES, start=1):
        receiver.answer(204, "")  # GitHub's answer to a repository dispatch
        wheel = f"https://github.com/acme/lib/actions/runs/{run_id}/artifacts/90{run_id}"
        upstream_run = f"https://github.com/acme/lib/actions/runs/{run_id}"
        ran = await run_step(
            upstream_step,
            {
                "vars.CONJUNCTION_URL": ci.base_url,
                "secrets.CONJUNCTION_TOKEN": project_token,
                "github.repository": "acme/lib",
                "github.sha": sha,
                "github.ref": "refs/heads/main",
                "job.status": "success",
                "github.server_url": "https://github.com",
                "github.run_id": str(run_id),
                "steps.wheel.outputs.artifact-url": wheel,
            },
        )
        build = await ci.event(reported(ran)["event_id"])
        assert (build.project, build.sha, build.ref, build.url) == (LIB, sha, "main", upstream_run)
        await run_jobs(ci.client)

        # what GitHub's "create a repository dispatch event" takes
        sent = receiver.received[-1]
        assert (sent.method, sent.path) == ("POST", "/repos/acme/app/dispatches")
        assert sent.headers["Accept"] == "application/vnd.github+json"
        assert sent.headers["Authorization"] == f"Bearer {ci.secrets['app-dispatch']}"
        assert sent.headers["X-GitHub-Api-Version"] == "2022-11-28"
        assert sent.headers["Content-Type"] == "application/json"
        body = sent.json()
        assert body["event_type"] in triggers["repository_dispatch"]["types"]
        payload = body["client_payload"]
        assert len(payload) <= 10  # GitHub's limit on top-level properties
        assert all(isinstance(value, str) for value in payload.values())
        assert (payload["event"], payload["upstream"], payload["upstream_sha"]) == (
            event_of(sent),
            LIB,
            sha,
        )
        assert json.loads(payload["artifacts"]) == [{"name": "wheel", "url": wheel}]

        downstream_run = f"https://github.com/acme/app/actions/runs/{700 + run_id}"
        context = {f"github.event.client_payload.{key}": value for key, value in payload.items()}
        ran = await run_step(
            report_step,
            {
                **context,
                "job.status": outcome,
                "github.server_url": "https://github.com",
                "github.repository": "acme/app",
                "github.run_id": str(700 + run_id),
            },
        )
        assert reported(ran) == {"event_id": event_of(sent), "result": outcome}
        await ci.upstream_shows(sha, outcome, downstream_run)


# GitLab CI


def gitlab_job(pipeline: dict[str, Any], result: str) -> dict[str, Any]:
    """The job of the pipeline that runs for this outcome, with what it extends."""
    when = {"success": "on_success", "failure": "on_failure"}[result]
    jobs = [
        {**pipeline.get(job.get("extends", ""), {}), **job}
        for name, job in pipeline.items()
        if not name.startswith(".")
    ]
    [job] = [job for job in jobs if job.get("variables", {}).get("RESULT") == result]
    assert job["stage"] == ".post"
    assert job["rules"] == [{"if": "$CONJUNCTION_EVENT", "when": when}]
    return job


async def test_gitlab_trigger_token_and_post_stage_report(
    configure: Configure, receiver: Receiver, tmp_path: Path
) -> None:
    app = "gitlab.com/acme/app"
    ci = await configure("gitlab.md", app, "https://gitlab.com")
    pipeline = yaml.safe_load(ci.blocks[".gitlab-ci.yml"])

    for number, (sha, outcome) in enumerate(OUTCOMES, start=287):
        web_url = f"https://gitlab.com/acme/app/-/pipelines/{number}"
        receiver.answer(201, {"id": number, "status": "created", "web_url": web_url})
        await ci.upstream_succeeds(sha)

        # what GitLab's "trigger a pipeline with a token" takes
        sent = receiver.received[-1]
        assert (sent.method, sent.path) == ("POST", "/api/v4/projects/acme%2Fapp/trigger/pipeline")
        assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
        form = sent.form()
        assert (form["token"], form["ref"]) == (ci.secrets["app-trigger"], "main")
        variables = {
            found[1]: value
            for field, value in form.items()
            if (found := re.fullmatch(r"variables\[(\w+)\]", field))
        }
        assert len(variables) == len(form) - 2  # every other field is a variable
        assert (variables["CONJUNCTION_EVENT"], variables["CONJUNCTION_UPSTREAM_SHA"]) == (
            event_of(sent),
            sha,
        )
        event = await ci.event(event_of(sent))
        assert (event.url, event.run_id, event.reason) == (web_url, str(number), None)

        job = gitlab_job(pipeline, outcome)
        env = {**variables, **job["variables"], "CI_PIPELINE_URL": web_url}
        ran = await run(["sh", "-e", "-c", "\n".join(job["script"])], env)
        assert reported(ran) == {"event_id": event.id, "result": outcome}
        await ci.upstream_shows(sha, outcome, web_url)


# Jenkins

GENERIC_VARIABLE = re.compile(r"\[key: '(\w+)', value: '\$\.(\w+)'\]")
POST_ALWAYS_SH = re.compile(r"post \{\s*always \{.*?sh '''\n(.*?)'''", re.DOTALL)


async def test_jenkins_generic_webhook_trigger_and_post_always(
    configure: Configure, receiver: Receiver, tmp_path: Path
) -> None:
    cli = "git.acme.dev/tools/cli"
    ci = await configure("jenkins.md", cli, "https://jenkins.acme.dev")
    receiver.secret = ci.secrets["jenkins-hmac"]  # as the plugin's whitelist checks the HMAC
    jenkinsfile = ci.blocks["Jenkinsfile"]
    variables = GENERIC_VARIABLE.findall(jenkinsfile)
    post = POST_ALWAYS_SH.search(jenkinsfile)
    assert variables and post
    script = post[1]
    assert "\\" not in script  # Groovy hands a ''' string without escapes to sh unchanged

    for number, (sha, outcome) in enumerate(OUTCOMES, start=41):
        receiver.answer(200, "")  # the plugin's answer with silentResponse
        await ci.upstream_succeeds(sha)

        # what the Generic Webhook Trigger takes: its token as a bearer token, JSON to read
        sent = receiver.received[-1]
        assert sent.signature_ok
        assert (sent.method, sent.path) == ("POST", "/generic-webhook-trigger/invoke")
        assert sent.headers["Authorization"] == f"Bearer {ci.secrets['jenkins-trigger']}"
        assert sent.headers["Content-Type"] == "application/json"
        body = sent.json()
        env = {key: str(body[field]) for key, field in variables}  # its JSONPath $.field
        assert (env["CONJUNCTION_EVENT"], env["UPSTREAM_SHA"]) == (event_of(sent), sha)

        build_url = f"https://jenkins.acme.dev/job/cli-against-upstream/{number}/"
        result = {"success": "SUCCESS", "failure": "FAILURE"}[outcome]
        # Jenkins runs sh steps with -xe: every command is echoed, unless the script says not to
        ran = await run(
            ["sh", "-xe", "-c", script], {**env, "BUILD_URL": build_url, "BUILD_RESULT": result}
        )
        assert reported(ran) == {"event_id": event_of(sent), "result": outcome}
        assert env["CALLBACK_TOKEN"] not in ran.err
        await ci.upstream_shows(sha, outcome, build_url)


# Buildkite


def fake_buildkite_agent(directory: Path, step_key: str) -> Path:
    """`buildkite-agent step get outcome --step KEY` answering $STEP_OUTCOME for that key."""
    directory.mkdir()
    agent = directory / "buildkite-agent"
    agent.write_text(
        "#!/bin/sh\n"
        f'[ "$*" = "step get outcome --step {step_key}" ] || '
        '{ echo "unexpected: $*" >&2; exit 2; }\n'
        'echo "$STEP_OUTCOME"\n'
    )
    agent.chmod(agent.stat().st_mode | stat.S_IXUSR)
    return directory


async def test_buildkite_create_build_and_final_step(
    configure: Configure, receiver: Receiver, tmp_path: Path
) -> None:
    cli = "git.acme.dev/tools/cli"
    ci = await configure("buildkite.md", cli, "https://api.buildkite.com")
    test_step, wait, report_step = yaml.safe_load(ci.blocks[".buildkite/pipeline.yml"])["steps"]
    assert wait == {"wait": None, "continue_on_failure": True}
    script_path = report_step["command"]
    script = tmp_path / "report-to-conjunction.sh"
    script.write_text(ci.blocks[script_path])
    script.chmod(0o755)
    agent = fake_buildkite_agent(tmp_path / "bin", test_step["key"])

    for number, (sha, outcome) in enumerate(OUTCOMES, start=42):
        web_url = f"https://buildkite.com/acme/cli-against-upstream/builds/{number}"
        receiver.answer(201, {"id": f"0190-{number}", "number": number, "web_url": web_url})
        await ci.upstream_succeeds(sha)

        # what Buildkite's "create a build" takes
        sent = receiver.received[-1]
        assert (sent.method, sent.path) == (
            "POST",
            "/v2/organizations/acme/pipelines/cli-against-upstream/builds",
        )
        assert sent.headers["Authorization"] == f"Bearer {ci.secrets['buildkite-token']}"
        assert sent.headers["Content-Type"] == "application/json"
        body = sent.json()
        assert (body["commit"], body["branch"]) == ("HEAD", "main")
        assert f"conjunction {event_of(sent)}" in body["message"]
        env = body["env"]
        assert all(isinstance(value, str) for value in env.values())
        assert (env["CONJUNCTION_EVENT"], env["CONJUNCTION_UPSTREAM_SHA"]) == (event_of(sent), sha)
        event = await ci.event(event_of(sent))
        assert (event.url, event.run_id) == (web_url, f"0190-{number}")

        path = f"{agent}:{os.environ['PATH']}"
        step_outcome = {"success": "passed", "failure": "hard_failed"}[outcome]
        ran = await run(
            [str(script)],
            {**env, "BUILDKITE_BUILD_URL": web_url, "STEP_OUTCOME": step_outcome, "PATH": path},
        )
        assert reported(ran) == {"event_id": event.id, "result": outcome}
        await ci.upstream_shows(sha, outcome, web_url)


# Travis CI


async def test_travis_api_request_and_after_script(
    configure: Configure, receiver: Receiver, tmp_path: Path
) -> None:
    app = "github.com/acme/app"
    ci = await configure("travis.md", app, "https://api.travis-ci.com")
    [after_script] = yaml.safe_load(ci.blocks[".travis.yml"])["after_script"]

    for number, (sha, outcome) in enumerate(OUTCOMES, start=147):
        receiver.answer(202, {"@type": "pending", "request": {"id": number}})
        await ci.upstream_succeeds(sha)

        # what Travis' API v3 takes: the slug as one segment, its version and token headers
        sent = receiver.received[-1]
        assert (sent.method, sent.path) == ("POST", "/repo/acme%2Fapp/requests")
        assert sent.headers["Travis-API-Version"] == "3"
        assert sent.headers["Authorization"] == f"token {ci.secrets['travis-token']}"
        assert sent.headers["Accept"] == "application/json"
        assert sent.headers["Content-Type"] == "application/json"
        request = sent.json()["request"]
        assert (request["branch"], request["merge_mode"]) == ("main", "deep_merge_append")
        env = dict(entry.split("=", 1) for entry in request["config"]["env"]["global"])
        assert (env["CONJUNCTION_EVENT"], env["CONJUNCTION_UPSTREAM_SHA"]) == (event_of(sent), sha)

        build_url = f"https://app.travis-ci.com/github/acme/app/builds/{number}"
        test_result = {"success": "0", "failure": "1"}[outcome]
        ran = await run(
            ["bash", "-c", after_script],
            {**env, "TRAVIS_TEST_RESULT": test_result, "TRAVIS_BUILD_WEB_URL": build_url},
        )
        assert reported(ran) == {"event_id": event_of(sent), "result": outcome}
        await ci.upstream_shows(sha, outcome, build_url)

    ran = await run(["bash", "-c", after_script], {"TRAVIS_TEST_RESULT": "0"})
    assert (ran.code, ran.out, ran.err) == (0, "", "")  # a build of its own reports nothing


def test_every_recipe_page_is_linked_from_the_readme_and_the_index() -> None:
    root = Path(__file__).parent.parent
    pages = sorted(path.name for path in (root / "docs" / "ci").glob("*.md"))
    index = (root / "docs" / "ci" / "README.md").read_text()
    readme = (root / "README.md").read_text()
    assert "](docs/ci/README.md)" in readme
    for page in pages:
        if page != "README.md":
            assert f"]({page})" in index
            assert f"](docs/ci/{page})" in readme


# CircleCI

PIPELINE_PARAMETER = re.compile(r"<<\s*pipeline\.parameters\.(\w+)\s*>>")


def fill(text: str, parameters: dict[str, str]) -> str:
    """`<< pipeline.parameters.NAME >>` replaced as CircleCI does when it compiles the config."""
    return PIPELINE_PARAMETER.sub(lambda found: parameters[found[1]], text)


async def test_circleci_pipeline_parameters_and_final_steps(
    configure: Configure, receiver: Receiver, tmp_path: Path
) -> None:
    app = "github.com/acme/app"
    ci = await configure("circleci.md", app, "https://circleci.com")
    config = yaml.safe_load(ci.blocks[".circleci/config.yml"])
    declared = config["parameters"]
    assert config["workflows"]["against-upstream"]["when"] == (
        "<< pipeline.parameters.conjunction_event >>"
    )
    job = config["jobs"]["against-upstream"]
    reports = {
        step["run"]["when"]: step["run"]
        for step in job["steps"]
        if isinstance(step, dict) and "when" in step.get("run", {})
    }
    assert set(reports) == {"on_success", "on_fail"}
    script = tmp_path / "report-to-conjunction.sh"
    script.write_text(ci.blocks[".circleci/report-to-conjunction.sh"])
    script.chmod(0o755)

    for number, (sha, outcome) in enumerate(OUTCOMES, start=301):
        pipeline_id = f"5034460f-c7c4-4c43-9457-de07e2029{number}"
        receiver.answer(201, {"id": pipeline_id, "number": number, "state": "pending"})
        await ci.upstream_succeeds(sha)

        # what CircleCI's "trigger a new pipeline" takes
        sent = receiver.received[-1]
        assert (sent.method, sent.path) == ("POST", "/api/v2/project/gh/acme/app/pipeline")
        assert sent.headers["Circle-Token"] == ci.secrets["circleci-token"]
        assert sent.headers["Content-Type"] == "application/json"
        body = sent.json()
        assert body["branch"] == "main"
        parameters = body["parameters"]
        assert set(parameters) == set(declared)  # CircleCI refuses undeclared parameters
        assert all(declared[name]["type"] == "string" for name in parameters)
        assert all(isinstance(value, str) for value in parameters.values())
        assert (parameters["conjunction_event"], parameters["conjunction_upstream_sha"]) == (
            event_of(sent),
            sha,
        )
        event = await ci.event(event_of(sent))
        assert event.run_id == pipeline_id

        # CircleCI fills the job's environment from the parameters, then runs the step
        env = {name: fill(str(value), parameters) for name, value in job["environment"].items()}
        step = reports["on_success" if outcome == "success" else "on_fail"]
        assert step["command"] == ".circleci/report-to-conjunction.sh"
        build_url = f"https://circleci.com/gh/acme/app/{number}"
        ran = await run(
            [str(script)], {**env, **step["environment"], "CIRCLE_BUILD_URL": build_url}
        )
        assert reported(ran) == {"event_id": event.id, "result": outcome}
        await ci.upstream_shows(sha, outcome, build_url)


# Woodpecker

LONE_DOLLAR = re.compile(r"(?<!\$)\$(?!\$)")


async def test_woodpecker_manual_pipeline_and_final_step(
    configure: Configure, receiver: Receiver, tmp_path: Path
) -> None:
    app = "codeberg.org/acme/app"
    ci = await configure("woodpecker.md", app, "https://ci.acme.dev")
    workflow = yaml.safe_load(ci.blocks[".woodpecker/against-upstream.yaml"])
    [when] = workflow["when"]
    assert when["event"] == "manual"
    assert "CONJUNCTION_EVENT" in when["evaluate"]
    report = next(step for step in workflow["steps"] if step["name"] == "report-to-conjunction")
    assert report["when"] == [{"status": ["success", "failure"]}]
    [command] = report["commands"]
    # every variable is read by the shell at run time, none replaced in the file beforehand
    assert LONE_DOLLAR.search(command) is None
    script = command.replace("$$", "$")

    for number, (sha, outcome) in enumerate(OUTCOMES, start=88):
        receiver.answer(200, {"id": 1000 + number, "number": number, "event": "manual"})
        await ci.upstream_succeeds(sha)

        # what Woodpecker's "trigger a manual pipeline" takes
        sent = receiver.received[-1]
        assert (sent.method, sent.path) == ("POST", "/api/repos/42/pipelines")
        assert sent.headers["Authorization"] == f"Bearer {ci.secrets['woodpecker-token']}"
        assert sent.headers["Content-Type"] == "application/json"
        body = sent.json()
        assert body["branch"] == "main"
        variables = body["variables"]
        assert all(isinstance(value, str) for value in variables.values())
        assert (variables["CONJUNCTION_EVENT"], variables["CONJUNCTION_UPSTREAM_SHA"]) == (
            event_of(sent),
            sha,
        )
        event = await ci.event(event_of(sent))
        assert event.run_id == str(1000 + number)

        pipeline_url = f"https://ci.acme.dev/repos/42/pipeline/{number}"
        env = {**variables, "CI_PIPELINE_STATUS": outcome, "CI_PIPELINE_URL": pipeline_url}
        ran = await run(["sh", "-e", "-c", script], env)
        assert reported(ran) == {"event_id": event.id, "result": outcome}
        await ci.upstream_shows(sha, outcome, pipeline_url)


# Zuul


class ZuulLoader(yaml.SafeLoader):
    """Reads Zuul's config: an encrypted secret is a list of base64 blocks."""


def _encrypted(loader: yaml.SafeLoader, node: yaml.Node) -> list[Any]:
    assert isinstance(node, yaml.SequenceNode)
    return loader.construct_sequence(node)


ZuulLoader.add_constructor("!encrypted/pkcs1-oaep", _encrypted)


async def test_zuul_post_pipeline_reports_what_lands(
    aiohttp_client: Any, settings: Settings, forge: MemoryHost, tmp_path: Path
) -> None:
    blocks = code_blocks("zuul.md")
    config = yaml.load(blocks["zuul.d/conjunction.yaml"], Loader=ZuulLoader)
    secret = next(item["secret"] for item in config if "secret" in item)
    job = next(item["job"] for item in config if "job" in item)
    project = next(item["project"] for item in config if "project" in item)
    assert job["post-run"] == "playbooks/report-to-conjunction.yaml"
    assert secret["name"] in job["secrets"]
    assert job["name"] in project["post"]["jobs"]
    [play] = yaml.safe_load(blocks["playbooks/report-to-conjunction.yaml"])
    [task] = play["tasks"]
    assert task["no_log"] is True and task["run_once"] is True
    uri = task["uri"]

    secrets_file = tmp_path / "secrets.yml"
    secrets_file.write_text("{}\n")
    client = await live_client(aiohttp_client, settings, forge, secrets_file)
    await index(client, LIB, None)
    async with runtime(client).sessions.begin() as session:
        project_token = await create_project_token(session, LIB)
    templates = jinja2.Environment(undefined=jinja2.StrictUndefined)

    def render(value: Any, variables: dict[str, Any]) -> Any:
        """The task's arguments as Ansible templates them."""
        if isinstance(value, dict):
            return {key: render(item, variables) for key, item in value.items()}
        return templates.from_string(value).render(variables) if isinstance(value, str) else value

    for build, (sha, outcome) in enumerate(OUTCOMES, start=1):
        variables = {
            "conjunction": {"url": str(client.make_url("")).rstrip("/"), "token": project_token},
            "zuul_success": outcome == "success",
            "zuul": {
                "project": {"canonical_name": LIB},
                "newrev": sha,
                "ref": "refs/heads/main",
                "tenant": "acme",
                "build": f"{build:032x}",
            },
        }
        request = render(uri, variables)
        assert (request["method"], request["body_format"]) == ("POST", "json")
        async with client.session.request(
            request["method"], request["url"], headers=request["headers"], json=request["body"]
        ) as answer:
            assert answer.status == request["status_code"], await answer.text()
            event = await runtime(client).engine.get_event((await answer.json())["event_id"])
        assert event is not None
        zuul_build = f"https://zuul.acme.dev/t/acme/build/{build:032x}"
        assert (event.project, event.sha, event.ref, event.url) == (LIB, sha, "main", zuul_build)
        assert event.result == outcome
        await run_jobs(client)


# Zuul: a downstream enqueued through Zuul's API, whose run claims its trigger

ANSIBLE = jinja2.Environment(undefined=jinja2.StrictUndefined)
# Ansible's `bool` filter; Zuul passes `zuul_success` and `zuul_will_retry` as "True"/"False"
ANSIBLE.filters["bool"] = lambda value: str(value).lower() in ("true", "yes", "on", "1")


def templated(value: Any, variables: dict[str, Any]) -> Any:
    """A task's arguments as Ansible templates them."""
    if isinstance(value, dict):
        return {key: templated(item, variables) for key, item in value.items()}
    if isinstance(value, list):
        return [templated(item, variables) for item in value]
    return ANSIBLE.from_string(value).render(variables) if isinstance(value, str) else value


async def play(client: Any, playbook: str, variables: dict[str, Any]) -> list[dict[str, Any]]:
    """A playbook's tasks as Ansible runs them here: `when` evaluated, `uri` requests sent to
    the running app (their answers `register`ed), and the `git` checkouts it asks for
    returned."""
    [hosts] = yaml.safe_load(playbook)
    assert hosts["hosts"] == "all"
    checkouts = []
    for task in hosts["tasks"]:
        if "when" in task and not ANSIBLE.compile_expression(task["when"])(**variables):
            continue
        if "uri" in task:
            assert task["no_log"] is True and task["run_once"] is True  # tokens out of the log
            request = templated(task["uri"], variables)
            assert (request["method"], request["body_format"]) == ("POST", "json")
            async with client.session.request(
                request["method"], request["url"], headers=request["headers"], json=request["body"]
            ) as answer:
                assert answer.status == request["status_code"], await answer.text()
                result: dict[str, Any] = {"status": answer.status, "json": await answer.json()}
        elif "git" in task:
            checkouts.append(templated(task["git"], variables))
            result = {"changed": True}
        else:
            raise AssertionError(f"a task Ansible would run, not this test: {task['name']}")
        if "register" in task:
            variables[task["register"]] = result
    return checkouts


async def test_zuul_downstream_is_enqueued_and_its_run_claims_its_trigger(
    aiohttp_client: Any,
    aiohttp_server: Any,
    settings: Settings,
    forge: MemoryHost,
    tmp_path: Path,
) -> None:
    app = "review.acme.dev/acme/app"
    zuul = await start_zuul(aiohttp_server)
    ci = await downstream_of(
        "zuul.md",
        app,
        "https://zuul.acme.dev",
        zuul.base,
        aiohttp_client=aiohttp_client,
        settings=settings,
        forge=forge,
        tmp_path=tmp_path,
    )
    [item] = yaml.safe_load(ci.blocks["zuul.d/conjunction-pipeline.yaml"])
    pipeline = item["pipeline"]
    # a job of an untrusted project with a secret runs only where reviewed code runs
    assert (pipeline["manager"], pipeline["post-review"]) == ("independent", True)
    assert pipeline["trigger"] == {
        "zuul": [{"event": "parent-change-enqueued", "pipeline": pipeline["name"]}]
    }
    config = yaml.load(ci.blocks["zuul.d/downstream.yaml"], Loader=ZuulLoader)
    secret = next(entry["secret"] for entry in config if "secret" in entry)
    job = next(entry["job"] for entry in config if "job" in entry)
    project = next(entry["project"] for entry in config if "project" in entry)
    assert job["secrets"] == [{"name": "conjunction", "secret": secret["name"]}]
    assert set(secret["data"]) == {"url", "token"}
    assert job["name"] in project[pipeline["name"]]["jobs"]
    claiming = ci.blocks[job["pre-run"]]
    reporting = ci.blocks[job["post-run"]]

    # Zuul's tenant knows the project and the pipeline; its admin token is the secret's
    zuul.tenants["acme"] = Tenant(projects={app}, pipelines={pipeline["name"]})
    zuul.admin_tokens[ci.secrets["zuul-enqueue"]] = "acme"
    async with runtime(ci.client).sessions.begin() as session:
        project_token = await create_project_token(session, app)

    for build, (sha, outcome) in enumerate(OUTCOMES, start=1):
        await ci.upstream_succeeds(sha)
        assert (len(zuul.enqueued), zuul.refused) == (build, [])
        enqueued = zuul.enqueued[-1]
        assert enqueued.headers["Authorization"] == f"Bearer {ci.secrets['zuul-enqueue']}"
        event = await ci.event(enqueued.headers["X-Conjunction-Event"])
        variables = {
            "conjunction": {"url": ci.base_url, "token": project_token},
            "zuul": {
                "project": {"canonical_name": app},
                "buildset": enqueued.buildset,
                "tenant": "acme",
                "build": f"{build:032x}",
            },
            "ansible_user_dir": "/home/zuul",
        }
        checkout = {
            "repo": "https://github.com/acme/lib",
            "dest": "/home/zuul/src/github.com/acme/lib",
            "version": sha,
        }
        # a first attempt whose pre-run fails after the claim is retried by Zuul: its post-run
        # reports nothing, and the retry, in the same buildset, claims the same trigger
        assert await play(ci.client, claiming, dict(variables)) == [checkout]
        retried = {**variables, "zuul_success": "False", "zuul_will_retry": "True"}
        assert await play(ci.client, reporting, retried) == []
        assert (await ci.event(event.id)).result is None
        assert await play(ci.client, claiming, dict(variables)) == [checkout]
        finished = {
            **variables,
            "zuul_success": str(outcome == "success"),
            "zuul_will_retry": "False",
        }
        assert await play(ci.client, reporting, finished) == []
        zuul.finish(enqueued.buildset)
        event = await ci.event(event.id)
        assert (event.run_id, event.result) == (enqueued.buildset, outcome)
        await ci.upstream_shows(sha, outcome, f"https://zuul.acme.dev/t/acme/build/{build:032x}")
