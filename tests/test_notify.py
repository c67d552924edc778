"""Notifications (`notify:`): only when a pair changes state, from the queue, with retries — Slack
Block Kit and a signed JSON webhook delivered to a loopback receiver; who is told; the address
rule."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from conjunction.adapters import Adapters
from conjunction.app import create_app
from conjunction.config.repo_config import Notify
from conjunction.config.settings import Settings
from conjunction.engine.notify import channels_for
from conjunction.models import Job
from conjunction.notify import message
from conjunction.notify.irc import clean, parse
from conjunction.notify.message import Message
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.test_flow import APP, LIB, index, report_status, upstream_of

STRANGER = "github.com/stranger/app"
HOOK_SECRET = "a-hook-secret"


def test_who_is_told() -> None:
    slack = Notify(slack="s")
    flaky_too = Notify(slack="s", on=["flaky", "new_regression"])
    told = channels_for("flaky", (APP, [slack, flaky_too]), (LIB, [flaky_too]))
    assert told == [(APP, flaky_too), (LIB, flaky_too)]
    assert channels_for("fixed", (APP, [slack]), None) == [(APP, slack)]
    assert channels_for("already_broken", (APP, [slack]), (LIB, [slack])) == []


MESSAGE = Message(
    state="new_regression",
    verdict="new regression",
    upstream=LIB,
    upstream_sha="2" * 40,
    downstream=APP,
    downstream_sha="d" * 40,
    event_id="e" * 32,
    event_url="https://conjunction.test/events/" + "e" * 32,
    run_url="https://ci.test/runs/2",
    compare_url=None,
    culprit="Most likely culprit: <the 1 upstream commit> & more",
)


def test_what_each_channel_says() -> None:
    slack = message.slack(MESSAGE)
    assert slack["text"] == (f"Conjunction: new regression: {APP} broke against {LIB} at 2222222")
    assert slack["blocks"][0]["text"]["text"] == (
        f":x: *new regression*: {APP} broke against {LIB} at 2222222"
    )
    assert slack["blocks"][2]["elements"][0]["text"] == (
        "Most likely culprit: &lt;the 1 upstream commit&gt; &amp; more"
    )
    assert [button["url"] for button in slack["blocks"][3]["elements"]] == [
        MESSAGE.event_url,
        "https://ci.test/runs/2",
    ]
    assert message.webhook(MESSAGE)["upstream"] == {"project": LIB, "sha": "2" * 40}
    assert message.irc(MESSAGE) == (
        f"[conjunction] new regression: {APP} broke against {LIB} at 2222222 {MESSAGE.event_url}"
    )


def test_the_flaky_hint_is_in_every_channel() -> None:
    hinted = replace(MESSAGE, hint="flaky?", culprit=None)
    slack = message.slack(hinted)
    assert slack["text"] == (
        f"Conjunction: new regression (flaky?): {APP} broke against {LIB} at 2222222"
    )
    assert slack["blocks"][0]["text"]["text"] == (
        f":x: *new regression (flaky?)*: {APP} broke against {LIB} at 2222222"
    )
    assert slack["blocks"][2] == {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": "flaky? This pair has been alternating between passing and failing on "
                "unchanged commits lately: this may be a flake rather than a change of state.",
            }
        ],
    }
    hook = message.webhook(hinted)
    assert (hook["verdict"], hook["hint"]) == ("new regression", "flaky?")
    assert message.irc(hinted).startswith(
        f"[conjunction] new regression (flaky?): {APP} broke against {LIB} at 2222222 "
    )
    assert message.webhook(MESSAGE)["hint"] is None
    assert "(flaky?)" not in message.slack(MESSAGE)["text"]


def test_irc_lines() -> None:
    assert clean("two\r\nlines\x00 PRIVMSG") == "two lines  PRIVMSG"
    assert len(clean("é" * 300).encode()) <= 400
    line = parse(":irc.test 366 conjunction #acme :End of NAMES list")
    assert (line.prefix, line.command, line.params) == (
        "irc.test",
        "366",
        ("conjunction", "#acme", "End of NAMES list"),
    )
    assert parse("PING :irc.test").params == ("irc.test",)
    assert parse(":a!b@c JOIN #acme").nick == "a"


class Receiver:
    """A loopback HTTP server recording what it is sent; answers from a list, then 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.answers: list[int] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers), await request.read()))
        return web.Response(status=self.answers.pop(0) if self.answers else 200, text="ok")

    def bodies(self, path: str) -> list[Any]:
        return [json.loads(body) for at, _, body in self.requests if at == path]


@pytest.fixture
async def receiver(aiohttp_server: Any) -> tuple[Receiver, str]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{path:.*}", receiver.handle)
    server = await aiohttp_server(app)
    return receiver, str(server.make_url(""))


def with_secrets(settings: Settings, base: str, **changes: Any) -> Settings:
    """The channels' secrets in a secrets file beside the test's database."""
    database = settings.database_url.removeprefix("sqlite:///")
    secrets_file = Path(database).with_name("secrets.yml")
    secrets_file.write_text(
        f'acme-slack: {{value: "{base}/slack", projects: ["github.com/acme/*"]}}\n'
        f'acme-hook: {{value: "{HOOK_SECRET}", projects: ["github.com/acme/lib"]}}\n'
    )
    return settings.model_copy(
        update={"secrets_file": str(secrets_file), "allow_private_webhooks": True, **changes}
    )


async def app_with(
    aiohttp_client: Any, settings: Settings, forge: MemoryHost
) -> TestClient[Any, Any]:
    return await aiohttp_client(
        create_app(settings, adapters=Adapters.of(forge), run_workers=False)
    )


def notifying(base: str, on: str = "") -> str:
    return (
        "notify:\n"
        "  - slack: acme-slack\n"
        f"  - webhook: {{url: '{base}/hook', secret: acme-hook}}\n"
        + (f"    on: [{on}]\n" if on else "")
    )


async def run_lib(
    client: TestClient[Any, Any], forge: MemoryHost, sha: str, results: dict[str, str]
) -> None:
    await post_github(client, "workflow_run", workflow_run("acme/lib", sha, run_id=int(sha[0])))
    await run_jobs(client)
    started = {project: request for project, request in forge.of("start_pipeline")}
    for project, result in results.items():
        await report_status(client, started[project].event_id, result)
    await run_jobs(client)


async def test_slack_and_a_signed_webhook_hear_of_state_changes_only(
    aiohttp_client: Any, settings: Settings, forge: MemoryHost, receiver: tuple[Receiver, str]
) -> None:
    received, base = receiver
    client = await app_with(aiohttp_client, with_secrets(settings, base), forge)
    await index(client, LIB, notifying(base, on="new_regression, fixed, flaky"))
    await index(client, APP, upstream_of(LIB))

    for sha, result in [("1", "success"), ("2", "failure"), ("3", "failure"), ("4", "success")]:
        await run_lib(client, forge, sha * 40, {APP: result})

    slack = received.bodies("/slack")
    assert [body["text"] for body in slack] == [
        f"Conjunction: new regression: {APP} broke against {LIB} at 2222222",
        f"Conjunction: fixed: {APP} passes again against {LIB} at 4444444",
    ]
    section = slack[0]["blocks"][0]
    assert section == {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": f":x: *new regression*: {APP} broke against {LIB} at 2222222",
        },
    }
    hooks = [(headers, body) for path, headers, body in received.requests if path == "/hook"]
    assert [json.loads(body)["state"] for _, body in hooks] == ["new_regression", "fixed"]
    for headers, body in hooks:
        expected = hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Conjunction-Signature-256"] == f"sha256={expected}"
        assert headers["Content-Type"] == "application/json"
    first = json.loads(hooks[0][1])
    assert first["upstream"] == {"project": LIB, "sha": "2" * 40}
    assert first["event_url"].startswith("https://conjunction.test/events/")
    async with runtime(client).sessions() as session:
        told = list(await session.scalars(select(Job).where(Job.kind == "notify")))
    assert len(told) == 2, "the first pass and the failure repeated queue no notify job"


async def test_a_failed_delivery_is_retried_from_the_queue(
    aiohttp_client: Any, settings: Settings, forge: MemoryHost, receiver: tuple[Receiver, str]
) -> None:
    received, base = receiver
    client = await app_with(aiohttp_client, with_secrets(settings, base), forge)
    await index(client, LIB, "notify:\n  - slack: acme-slack\n")
    await index(client, APP, upstream_of(LIB))
    await run_lib(client, forge, "1" * 40, {APP: "success"})
    received.answers = [503]
    await run_lib(client, forge, "2" * 40, {APP: "failure"})
    assert len(received.bodies("/slack")) == 1  # the 503
    async with runtime(client).sessions.begin() as session:
        [job] = await session.scalars(select(Job).where(Job.kind == "notify_send"))
        assert (job.state, job.last_error) == (
            "queued",
            "OSError: 503 from the notification receiver",
        )
        job.run_at = job.created_at  # its backoff is over
    await run_jobs(client)
    assert len(received.bodies("/slack")) == 2
    assert received.bodies("/slack")[0] == received.bodies("/slack")[1]


async def test_a_strangers_downstream_never_reaches_the_upstreams_channels(
    aiohttp_client: Any, settings: Settings, forge: MemoryHost, receiver: tuple[Receiver, str]
) -> None:
    received, base = receiver
    client = await app_with(aiohttp_client, with_secrets(settings, base), forge)
    await index(client, LIB, notifying(base))
    await index(client, STRANGER, upstream_of(LIB))
    await run_lib(client, forge, "1" * 40, {STRANGER: "success"})
    await run_lib(client, forge, "2" * 40, {STRANGER: "failure"})
    assert received.requests == []


async def test_private_addresses_and_foreign_secrets_are_refused_for_good(
    aiohttp_client: Any, settings: Settings, forge: MemoryHost, receiver: tuple[Receiver, str]
) -> None:
    received, base = receiver
    client = await app_with(
        aiohttp_client, with_secrets(settings, base, allow_private_webhooks=False), forge
    )
    await index(client, LIB, f"notify:\n  - webhook: {{url: '{base}/hook'}}\n")
    foreign = "notify:\n  - webhook: {url: 'https://x.test', secret: acme-hook}\n"
    error = await runtime(client).engine.index_project(
        APP, private=False, default_branch="main", config_text=upstream_of(LIB) + foreign
    )
    assert f"secret 'acme-hook' may not be used by {APP}" in str(error)  # refused on its commit
    await index(client, APP, upstream_of(LIB))
    await run_lib(client, forge, "1" * 40, {APP: "success"})
    await run_lib(client, forge, "2" * 40, {APP: "failure"})
    assert received.requests == []
    async with runtime(client).sessions() as session:
        jobs = list(await session.scalars(select(Job).where(Job.kind == "notify_send")))
    assert [(job.state, job.last_error) for job in jobs] == [
        (
            "dead",
            "conjunction.queue.PermanentError: refused to call 127.0.0.1, a loopback address "
            "(set CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS=true for CI inside your network)",
        ),
    ]


async def test_a_verdict_hinted_flaky_says_so_in_its_notifications(
    aiohttp_client: Any, settings: Settings, forge: MemoryHost, receiver: tuple[Receiver, str]
) -> None:
    received, base = receiver
    client = await app_with(aiohttp_client, with_secrets(settings, base), forge)
    await index(client, LIB, notifying(base))
    await index(client, APP, upstream_of(LIB))
    for n, result in enumerate(["success", "failure", "success", "failure"], start=1):
        await post_github(client, "workflow_run", workflow_run("acme/lib", str(n) * 40, run_id=n))
        await run_jobs(client)
        _, request = forge.of("start_pipeline")[-1]
        # the same downstream commit every time: its results alternate on unchanged inputs
        await report_status(client, request.event_id, result, metadata={"sha": "d" * 40})
        await run_jobs(client)

    assert [body["text"] for body in received.bodies("/slack")] == [
        f"Conjunction: new regression: {APP} broke against {LIB} at 2222222",
        f"Conjunction: fixed: {APP} passes again against {LIB} at 3333333",
        f"Conjunction: new regression (flaky?): {APP} broke against {LIB} at 4444444",
    ]
    assert [(body["verdict"], body["hint"]) for body in received.bodies("/hook")] == [
        ("new regression", None),
        ("fixed", None),
        ("new regression", "flaky?"),
    ]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


SLACK_PATH = "/services/T0ACME/B0ACME/xoxSlackWebhookSecret"


@pytest.mark.parametrize(
    ("url", "state", "error"),
    [
        (
            "hooks.slack.test" + SLACK_PATH,  # no scheme
            "dead",
            "conjunction.queue.PermanentError: the Slack URL in secret acme-slack"
            " is not a valid https URL",
        ),
        (
            "https://hooks.slack.test:99999" + SLACK_PATH,  # a port out of range
            "dead",
            "conjunction.queue.PermanentError: the Slack URL in secret acme-slack"
            " is not a valid https URL",
        ),
        (
            "https://[::1" + SLACK_PATH,  # an unclosed bracket
            "dead",
            "conjunction.queue.PermanentError: the Slack URL in secret acme-slack"
            " is not a valid https URL",
        ),
        (
            "http://127.0.0.1:{port}" + SLACK_PATH,  # nothing listening: retried
            "queued",
            "OSError: the Slack URL in secret acme-slack could not be reached "
            "(ClientConnectorError)",
        ),
    ],
    ids=["no-scheme", "bad-port", "bad-host", "refused"],
)
async def test_a_bad_slack_url_is_named_by_its_secret_never_shown(
    aiohttp_client: Any,
    settings: Settings,
    forge: MemoryHost,
    caplog: pytest.LogCaptureFixture,
    url: str,
    state: str,
    error: str,
) -> None:
    """The Slack URL is the secret: aiohttp's errors quote it whole, so the job's last error
    and the log name the secret instead."""
    caplog.set_level(logging.DEBUG)
    base = url.format(port=closed_port())  # the secret is this and "/slack"
    client = await app_with(aiohttp_client, with_secrets(settings, base), forge)
    await index(client, LIB, "notify:\n  - slack: acme-slack\n")
    await index(client, APP, upstream_of(LIB))
    await run_lib(client, forge, "1" * 40, {APP: "success"})
    await run_lib(client, forge, "2" * 40, {APP: "failure"})
    async with runtime(client).sessions() as session:
        [job] = await session.scalars(select(Job).where(Job.kind == "notify_send"))
    assert (job.state, job.last_error) == (state, error)
    assert "xoxSlackWebhookSecret" not in caplog.text
    assert "job failed" in caplog.text  # the failure was logged, without the URL
