"""Webhook triggers end to end: an upstream success calls a real HTTP receiver on loopback, which
checks the signature as a CI system would; what it receives, what the row says, what is refused.

The receiver listens on 127.0.0.1, so the tests of what is sent allow private webhooks; the
tests of what is refused do not.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.abc import AbstractResolver
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from conjunction.adapters import Adapters
from conjunction.address_guard import GuardedResolver
from conjunction.app import create_app
from conjunction.config.repo_config import ConfigError, Trigger, Webhook
from conjunction.config.settings import Settings
from conjunction.engine.indexing import config_pushed
from conjunction.forges.webhook import WebhookRunner
from conjunction.models import Event, Job, utcnow
from conjunction.runner import TriggerError, TriggerRequest
from conjunction.secrets import SecretStore
from conjunction.tokens import create_project_token
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.test_culprit import lib_history
from tests.test_flow import events_of, index
from tests.webhook_receiver import HOOK_SECRET, Receiver

LIB = "github.com/acme/lib"
APP = "github.com/acme/app"
TOOL = "github.com/acme/tool"
SHA = "a" * 40
TOKEN_VALUE = "bk-token-value-7f3a9c"
SECRETS = f"""
acme-ci: {{value: "{HOOK_SECRET}", projects: ["github.com/acme/*"]}}
bk-token: {{value: "{TOKEN_VALUE}", projects: ["github.com/acme/app"]}}
"""
ALLOW = "set CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS=true for CI inside your network"


def write(path: Path, text: str) -> None:
    path.write_text(text)


def stored(directory: Path) -> list[str]:
    """Everything the SQLite database holds, its write-ahead log included."""
    return [file.read_bytes().decode("latin-1") for file in directory.glob("conjunction.db*")]


def app_config(url: str, **webhook: Any) -> str:
    return yaml.safe_dump(
        {"upstreams": [{"project": LIB}], "trigger": {"webhook": {"url": url, **webhook}}},
        sort_keys=False,
    )


@pytest.fixture
def secrets_file(tmp_path: Path) -> Path:
    path = tmp_path / "secrets.yml"
    path.write_text(SECRETS)
    return path


async def webhook_client(
    aiohttp_client: Any,
    settings: Settings,
    forge: MemoryHost,
    secrets_file: Path,
    *,
    allow_private: bool = True,
) -> TestClient[Any, Any]:
    settings = settings.model_copy(
        update={"secrets_file": secrets_file, "allow_private_webhooks": allow_private}
    )
    return await aiohttp_client(
        create_app(settings, adapters=Adapters.of(forge), run_workers=False)
    )


@pytest.fixture
async def client(
    aiohttp_client: Any, settings: Settings, forge: MemoryHost, secrets_file: Path
) -> TestClient[Any, Any]:
    return await webhook_client(aiohttp_client, settings, forge, secrets_file)


async def trigger(client: TestClient[Any, Any], config: str) -> Event:
    """LIB succeeds; APP, with this config, is triggered. Returns APP's trigger event."""
    await index(client, LIB, "owners: [libby]\n")
    await index(client, APP, config)
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA))
    await run_jobs(client)
    [event] = await events_of(client, APP)
    return event


# what is sent


async def test_default_body_is_the_trigger_event_signed_with_the_named_secret(
    client: TestClient[Any, Any], forge: MemoryHost, receiver: Receiver
) -> None:
    receiver.answer(201, {"id": "0190-b7", "web_url": "https://buildkite.com/acme/app/builds/7"})
    event = await trigger(client, app_config(receiver.url(), secret="acme-ci"))

    [sent] = receiver.received
    assert sent.signature_ok
    assert (sent.method, sent.path) == ("POST", "/hook")
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["X-Conjunction-Event"] == event.id
    assert sent.json() == {
        "event": event.id,
        "project": APP,
        "upstream": LIB,
        "upstream_sha": SHA,
        "upstream_ref": "main",
        "upstream_url": "https://github.com/acme/lib/actions/runs/1",
        "callback_url": f"https://conjunction.test/api/v1/events/{event.id}/status",
        "callback_token": runtime(client).engine.signer.token(event.id),
        "parent": event.parent_id,
        "root": event.root_id,
        "depth": 1,
        "owners": ["libby"],
        "artifacts": [],
    }
    assert (event.result, event.reason) == (None, None)
    assert (event.url, event.run_id) == ("https://buildkite.com/acme/app/builds/7", "0190-b7")

    # the CI reports back with what it was sent, and the upstream commit shows it
    body = sent.json()
    answer = await client.post(
        body["callback_url"].removeprefix("https://conjunction.test"),
        json={"result": "success"},
        headers={"Authorization": f"Bearer {body['callback_token']}"},
    )
    assert answer.status == 202
    await run_jobs(client)
    _, (sha, report) = forge.of("status")[-1]
    assert (sha, report.state) == (SHA, "success")
    assert "| github.com/acme/app | ✅ passed | [run](https://buildkite.com/acme/app/builds/7)" in (
        report.summary
    )


async def test_a_jenkins_queue_item_in_location_is_kept_as_the_run(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    receiver.secret = None  # this one checks no signature
    receiver.answer(201, "", headers={"Location": "/queue/item/42/"})
    event = await trigger(client, app_config(receiver.url("/job/app/buildWithParameters")))
    assert event.url == receiver.url("/queue/item/42/")
    [sent] = receiver.received
    assert "X-Conjunction-Signature-256" not in sent.headers  # no secret named, nothing signed


JSON_TEMPLATE = {
    "message": "conjunction ${event}",
    "build": {
        "project": "${project}",
        "upstream": "${upstream}",
        "commit": "${upstream_sha}",
        "branch": "${upstream_ref}",
        "url": "${upstream_url}",
    },
    "callback": ["${callback_url}", "${callback_token}"],
    "chain": "${parent}/${root}/${depth}",
    "env": {"UPSTREAM_ARTIFACTS": "${artifacts}", "TOKEN": "${secret:bk-token}"},
    "literal": "$${event}",
    "kept": [3, True, None],
}
WHEEL = {"name": "lib-1.0-py3-none-any.whl", "url": "https://ci.acme.dev/lib/1/lib.whl"}


async def report_lib_build(client: TestClient[Any, Any], **body: Any) -> str:
    """LIB's CI reports a successful build through the API; returns the build event's id."""
    async with runtime(client).sessions.begin() as session:
        token = await create_project_token(session, LIB)
    answer = await client.post(
        "/api/v1/builds",
        json={"project": LIB, "sha": SHA, "ref": "main", "result": "success", **body},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status == 202, await answer.text()
    await run_jobs(client)
    return str((await answer.json())["event_id"])


async def test_json_template_fills_every_placeholder(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    hook = {
        "secret": "acme-ci",
        "method": "PUT",
        "headers": {"Authorization": "Bearer ${secret:bk-token}", "X-Upstream": "${upstream}"},
        "body": JSON_TEMPLATE,
    }
    await index(client, LIB, None)
    await index(client, APP, app_config(receiver.url("/v2/builds"), **hook))
    build = await report_lib_build(client, url="https://ci.acme.dev/lib/1", artifacts=[WHEEL])

    [sent] = receiver.received
    [event] = await events_of(client, APP)
    token = runtime(client).engine.signer.token(event.id)
    assert sent.signature_ok
    assert (sent.method, sent.path) == ("PUT", "/v2/builds")
    assert sent.headers["Authorization"] == f"Bearer {TOKEN_VALUE}"
    assert sent.headers["X-Upstream"] == LIB
    assert sent.json() == {
        "message": f"conjunction {event.id}",
        "build": {
            "project": APP,
            "upstream": LIB,
            "commit": SHA,
            "branch": "main",
            "url": "https://ci.acme.dev/lib/1",
        },
        "callback": [f"https://conjunction.test/api/v1/events/{event.id}/status", token],
        "chain": f"{build}/{build}/1",
        "env": {"UPSTREAM_ARTIFACTS": json.dumps([WHEEL]), "TOKEN": TOKEN_VALUE},
        "literal": "${event}",
        "kept": [3, True, None],
    }


async def test_form_template_sends_fields_and_json_text(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    """Buildbot's change hook takes a form; non-text values go as their JSON text."""
    body = {
        "author": "conjunction",
        "comments": "${upstream} at ${upstream_sha}",
        "revision": "${upstream_sha}",
        "properties": {"event": "${event}", "callback_token": "${callback_token}"},
        "artifacts": "${artifacts}",
        "depth": 1,
        "project": "${project}",
        "branch": "${upstream_ref}",
        "upstream_url": "${upstream_url}",
        "callback_url": "${callback_url}",
        "chain": "${parent}/${root}/${depth}",
        "token": "${secret:bk-token}",
    }
    await index(client, LIB, None)
    await index(
        client,
        APP,
        app_config(receiver.url("/change_hook/base"), secret="acme-ci", format="form", body=body),
    )
    build = await report_lib_build(client, url="https://ci.acme.dev/lib/1", artifacts=[WHEEL])

    [sent] = receiver.received
    [event] = await events_of(client, APP)
    assert sent.signature_ok
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    properties = {
        "event": event.id,
        "callback_token": runtime(client).engine.signer.token(event.id),
    }
    assert sent.form() == {
        "author": "conjunction",
        "comments": f"{LIB} at {SHA}",
        "revision": SHA,
        "properties": json.dumps(properties),
        "artifacts": json.dumps([WHEEL]),
        "depth": "1",
        "project": APP,
        "branch": "main",
        "upstream_url": "https://ci.acme.dev/lib/1",
        "callback_url": f"https://conjunction.test/api/v1/events/{event.id}/status",
        "chain": f"{build}/{build}/1",
        "token": TOKEN_VALUE,
    }


# secrets: allowed, refused, unknown


REFUSED: list[tuple[dict[str, Any], str]] = [
    (
        {"headers": {"Authorization": "Bearer ${secret:bk-token}"}},
        "line 7: trigger.webhook.headers.Authorization: secret 'bk-token' may not be used by "
        "github.com/acme/tool",
    ),
    (
        {"secret": "nope"},
        "line 6: trigger.webhook.secret: secret 'nope' is not in the server's secrets file",
    ),
    (
        {"body": {"a": ["${secret:acme-ci}", "${secret:gone}"]}},
        "line 9: trigger.webhook.body.a.1: secret 'gone' is not in the server's secrets file",
    ),
]


async def test_a_secret_the_project_may_not_use_is_a_problem_on_its_commit(
    client: TestClient[Any, Any], forge: MemoryHost
) -> None:
    """Refused by its globs, or unknown; in headers, `secret` or the body. The last valid
    config stays in force."""
    engine = runtime(client).engine
    for number, (webhook, problem) in enumerate(REFUSED):
        config = {
            "upstreams": [{"project": LIB}],
            "trigger": {"webhook": {"url": "https://ci.acme.dev/hook", **webhook}},
        }
        forge.files[(TOOL, ".conjunction.yml")] = yaml.safe_dump(config, sort_keys=False)
        sha = f"{number:040x}"
        error = await config_pushed(engine, TOOL, sha=sha, private=False, default_branch="main")
        assert isinstance(error, ConfigError)
        assert [str(p) for p in error.problems] == [problem]
        project, (reported_sha, reported) = forge.of("report_config")[-1]
        assert (project, reported_sha, reported) == (TOOL, sha, error)
        assert await engine.config_error_of(TOOL) == problem


async def test_a_secret_no_longer_allowed_is_the_reason_on_the_row(
    client: TestClient[Any, Any], receiver: Receiver, secrets_file: Path
) -> None:
    """The file is read again when it changes: APP's config was valid when it was indexed."""
    await index(client, LIB, None)
    await index(client, APP, app_config(receiver.url(), secret="acme-ci"))
    write(secrets_file, f'acme-ci: {{value: "{HOOK_SECRET}", projects: ["{LIB}"]}}\n')
    await post_github(client, "workflow_run", workflow_run("acme/lib", SHA))
    await run_jobs(client)
    [event] = await events_of(client, APP)
    assert (event.result, event.reason) == (
        "error",
        "secret 'acme-ci' may not be used by github.com/acme/app",
    )
    assert receiver.received == []


# where a webhook may not go


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}/hook", "127.0.0.1, a loopback address"),
        ("http://[::1]:{port}/hook", "::1, a loopback address"),
        ("http://[::ffff:127.0.0.1]:{port}/hook", "::ffff:7f00:1, a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, a link-local address"),
        ("http://10.20.30.40/hook", "10.20.30.40, a private address"),
        ("http://0.0.0.0:{port}/hook", "0.0.0.0, an unspecified address"),
        ("http://localhost:{port}/hook", "localhost: it resolves to "),
    ],
)
async def test_private_addresses_are_refused(receiver: Receiver, url: str, reason: str) -> None:
    port = receiver.base.rsplit(":", 1)[1].strip("/")
    runner = WebhookRunner(SecretStore(), allow_private=False)
    try:
        with pytest.raises(TriggerError) as refused:
            await runner.start_pipeline(request(url.format(port=port)))
    finally:
        await runner.close()
    assert refused.value.permanent
    assert str(refused.value).startswith(f"refused to call {reason}")
    assert str(refused.value).endswith(f"({ALLOW})")
    assert receiver.received == []


async def test_a_refused_address_is_the_reason_on_the_row(
    aiohttp_client: Any,
    settings: Settings,
    forge: MemoryHost,
    secrets_file: Path,
    receiver: Receiver,
) -> None:
    client = await webhook_client(
        aiohttp_client, settings, forge, secrets_file, allow_private=False
    )
    event = await trigger(client, app_config(receiver.url(), secret="acme-ci"))
    assert (event.result, event.reason) == (
        "error",
        f"refused to call 127.0.0.1, a loopback address ({ALLOW})",
    )
    assert receiver.received == []


async def test_a_name_is_checked_as_it_resolves_and_connected_to_as_checked(
    receiver: Receiver,
) -> None:
    """The runner connects through its guarded resolver: a name that resolves to loopback (as a
    rebinding name would, the second time) is refused, and no other lookup is made."""

    class Rebinding(AbstractResolver):
        def __init__(self) -> None:
            self.asked: list[str] = []

        async def close(self) -> None:
            pass

        async def resolve(self, host: str, port: int = 0, family: Any = socket.AF_INET) -> Any:
            self.asked.append(host)
            return [
                {
                    "hostname": host,
                    "host": "127.0.0.1",
                    "port": port,
                    "family": socket.AF_INET,
                    "proto": 0,
                    "flags": 0,
                }
            ]

    base = Rebinding()
    runner = WebhookRunner(SecretStore(), resolver=GuardedResolver(base))
    port = receiver.base.rsplit(":", 1)[1].strip("/")
    try:
        with pytest.raises(TriggerError) as refused:
            await runner.start_pipeline(request(f"http://ci.rebind.test:{port}/hook"))
    finally:
        await runner.close()
    assert refused.value.permanent
    assert str(refused.value) == (
        f"refused to call ci.rebind.test: it resolves to 127.0.0.1, a loopback address ({ALLOW})"
    )
    assert base.asked == ["ci.rebind.test"]
    assert receiver.received == []


def request(url: str, **webhook: Any) -> TriggerRequest:
    return TriggerRequest(
        event_id="e" * 32,
        project=APP,
        upstream=LIB,
        upstream_sha=SHA,
        upstream_ref="main",
        upstream_url=None,
        callback_url="https://conjunction.test/api/v1/events/eee/status",
        callback_token="callback-token",
        trigger=Trigger(webhook=Webhook(url=url, **webhook)),
        default_branch="main",
    )


async def test_a_redirect_is_not_followed(client: TestClient[Any, Any], receiver: Receiver) -> None:
    receiver.answer(307, "", headers={"Location": receiver.url("/internal")})
    event = await trigger(client, app_config(receiver.url(), secret="acme-ci"))
    assert (event.result, event.reason) == (
        "error",
        f"the webhook answered 307, a redirect to {receiver.url('/internal')}; redirects are "
        "not followed: configure the URL it redirects to",
    )
    assert [sent.path for sent in receiver.received] == ["/hook"]


# answers: retried, permanent


async def make_due(client: TestClient[Any, Any]) -> None:
    """Bring the retries the queue scheduled with backoff forward to now."""
    async with runtime(client).sessions.begin() as session:
        await session.execute(update(Job).where(Job.state == "queued").values(run_at=utcnow()))


async def test_a_server_error_is_retried_then_the_pipeline_starts(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    receiver.answer(503, "Service Unavailable")
    receiver.answer(200, {"web_url": "https://ci.acme.dev/app/builds/9"})
    event = await trigger(client, app_config(receiver.url(), secret="acme-ci"))
    assert (event.result, event.reason) == (
        None,
        "the webhook answered 503: Service Unavailable; trying again",
    )
    async with runtime(client).sessions() as session:
        job = await session.scalar(select(Job).where(Job.kind == "trigger"))
    assert job is not None
    assert (job.state, job.attempts) == ("queued", 1)
    assert (
        job.last_error
        == "conjunction.runner.TriggerError: the webhook answered 503: Service Unavailable"
    )

    await make_due(client)
    await run_jobs(client)
    [event] = await events_of(client, APP)
    assert (event.result, event.reason, event.url) == (
        None,
        None,
        "https://ci.acme.dev/app/builds/9",
    )
    assert [sent.signature_ok for sent in receiver.received] == [True, True]
    assert receiver.received[0].body == receiver.received[1].body  # the same trigger event


async def test_an_unreachable_ci_is_retried(client: TestClient[Any, Any]) -> None:
    event = await trigger(client, app_config(f"http://127.0.0.1:{closed_port()}/hook"))
    assert event.result is None
    assert event.reason is not None
    assert event.reason.startswith("127.0.0.1 could not be reached (Cannot connect to host")
    assert event.reason.endswith("; trying again")


async def test_a_ci_that_does_not_answer_in_time_is_retried(receiver: Receiver) -> None:
    receiver.secret = None
    receiver.answer(200, delay=5)
    runner = WebhookRunner(
        SecretStore(), allow_private=True, timeout=aiohttp.ClientTimeout(total=0.2)
    )
    try:
        with pytest.raises(TriggerError) as caught:
            await runner.start_pipeline(request(receiver.url()))
    finally:
        await runner.close()
    assert not caught.value.permanent
    assert caught.value.reason == "127.0.0.1 did not answer within 0.2 s"


async def test_a_client_error_is_the_reason_on_the_row(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    answer = json.dumps({"message": "Unknown job 'app'", "details": "x" * 300})
    receiver.answer(404, answer)
    event = await trigger(client, app_config(receiver.url(), secret="acme-ci"))
    assert (event.result, event.reason) == ("error", f"the webhook answered 404: {answer[:200]}")
    page = await (await client.get(f"/events/{event.parent_id}")).text()
    assert "Why: the webhook answered 404: {&#34;message&#34;: &#34;Unknown job" in page


async def test_the_receiver_refuses_a_body_signed_with_another_key(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    receiver.secret = "the CI's idea of the secret"
    event = await trigger(client, app_config(receiver.url(), secret="acme-ci"))
    assert (event.result, event.reason) == (
        "error",
        'the webhook answered 401: {"message": "bad signature"}',
    )


# secret values go nowhere but to the CI


async def test_secret_values_reach_no_log_page_answer_error_or_row(
    client: TestClient[Any, Any],
    receiver: Receiver,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    receiver.answer(400, echo=True)  # an answer that repeats what it was sent, values and all
    hook = {
        "secret": "acme-ci",
        "headers": {"Authorization": "Bearer ${secret:bk-token}"},
        "body": {"token": "${secret:bk-token}", "event": "${event}"},
    }
    event = await trigger(client, app_config(receiver.url(), **hook))
    [sent] = receiver.received
    assert sent.signature_ok and TOKEN_VALUE in sent.body.decode()  # the CI gets it
    assert event.reason is not None
    assert event.reason.startswith("the webhook answered 400: {")
    assert "[secret]" in event.reason
    refused = await runtime(client).engine.index_project(
        TOOL, private=False, default_branch="main", config_text=app_config(receiver.url(), **hook)
    )
    assert refused is not None

    seen = [caplog.text, str(refused)]
    for path in (
        f"/events/{event.id}",
        f"/events/{event.parent_id}",
        "/",
        f"/api/v1/events/{event.id}",
        f"/api/v1/events/{event.parent_id}",
        f"/api/v1/projects/{APP}",
        f"/api/v1/projects/{TOOL}",
        "/metrics",
    ):
        seen.append(await (await client.get(path)).text())
    seen += stored(tmp_path)
    for value in (TOKEN_VALUE, HOOK_SECRET):
        assert not [text for text in seen if value in text]


async def test_the_callback_token_is_kept_out_of_an_echoed_error_answer(
    aiohttp_client: Any,
    settings: Settings,
    forge: MemoryHost,
    secrets_file: Path,
    aiohttp_server: Any,
) -> None:
    """A CI whose 5xx answer repeats the request: the reason on the public event page and API
    shows the answer with the callback token redacted, and the token still reports a result."""

    async def echo(request: web.Request) -> web.Response:
        return web.Response(status=503, text=f"cannot queue {await request.text()}")

    app = web.Application()
    app.router.add_post("/hook", echo)
    server = await aiohttp_server(app)
    client = await webhook_client(aiohttp_client, settings, forge, secrets_file)
    hook = {"body": {"token": "${callback_token}", "event": "${event}"}}
    event = await trigger(client, app_config(str(server.make_url("/hook")), **hook))
    token = runtime(client).engine.signer.token(event.id)
    assert event.reason == (
        'the webhook answered 503: cannot queue {"token": "[secret]", '
        f'"event": "{event.id}"}}; trying again'
    )
    for path in (f"/events/{event.parent_id}", f"/events/{event.id}", f"/api/v1/events/{event.id}"):
        page = await client.get(path)
        assert page.status == 200
        assert "[secret]" in await page.text()
        assert token not in await page.text()
    answer = await client.post(
        f"/api/v1/events/{event.id}/status",
        json={"result": "success"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status == 202


# culprit finding


async def test_a_culprit_search_runs_through_the_webhook_ci(
    client: TestClient[Any, Any], forge: MemoryHost, receiver: Receiver
) -> None:
    """Each step of a culprit search is a signed trigger of its own, with its upstream commit,
    answered through the callback like any run (CONTRACT §10)."""
    lib = lib_history(5)
    forge.history = {LIB: lib}
    config = yaml.safe_dump(
        {
            "upstreams": [{"project": LIB, "bisect": True}],
            "trigger": {"webhook": {"url": receiver.url(), "secret": "acme-ci"}},
        }
    )
    await index(client, LIB, "owners: [libby]\n")
    await index(client, APP, config)

    async def callback(sent: Any, result: str) -> None:
        body = sent.json()
        answer = await client.post(
            body["callback_url"].removeprefix("https://conjunction.test"),
            json={"result": result, "url": f"https://ci.acme.dev/builds/{body['event']}"},
            headers={"Authorization": f"Bearer {body['callback_token']}"},
        )
        assert answer.status == 202
        await run_jobs(client)

    for run_id, (commit, result) in enumerate([(lib[0], "success"), (lib[4], "failure")], 1):
        await post_github(
            client, "workflow_run", workflow_run("acme/lib", commit.sha, run_id=run_id)
        )
        await run_jobs(client)
        await callback(receiver.received[-1], result)

    shas = [commit.sha for commit in lib]
    answered = 2
    while len(receiver.received) > answered:
        sent = receiver.received[-1]
        answered = len(receiver.received)
        assert sent.signature_ok
        body = sent.json()
        assert (body["project"], body["upstream"], body["upstream_ref"]) == (APP, LIB, "main")
        await callback(sent, "failure" if shas.index(body["upstream_sha"]) >= 3 else "success")

    steps = [sent.json()["upstream_sha"] for sent in receiver.received[2:]]
    assert steps == [lib[2].sha, lib[3].sha]
    [issue] = forge.issues.values()
    [comment] = issue["comments"]
    assert f"first fails against [`{lib[3].sha[:7]}`]({lib[3].url}) Change 3" in comment
    assert f"[run](https://ci.acme.dev/builds/{receiver.received[2].json()['event']})" in comment
