"""`notify: - apprise: NAME`: the Apprise URL of a named secret, sent through the Apprise library
to a loopback receiver (Apprise's `json://`), on state changes only; the public-address rule of
webhooks; a URL Apprise does not know; a receiver that fails; the URL never shown."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conjunction.config.settings import Settings
from conjunction.models import Job
from conjunction.notify import message
from testkit.memoryhost import MemoryHost
from tests.conftest import runtime
from tests.test_flow import APP, LIB, index, upstream_of
from tests.test_notify import MESSAGE, Receiver, app_with, receiver, run_lib  # noqa: F401

TOKEN_PATH = "/notify/xoxAppriseSecretPath"


def with_apprise(settings: Settings, url: str, *, allow_private: bool = True) -> Settings:
    database = settings.database_url.removeprefix("sqlite:///")
    secrets_file = Path(database).with_name("secrets.yml")
    secrets_file.write_text(f'acme-matrix: {{value: "{url}", projects: ["github.com/acme/*"]}}\n')
    return settings.model_copy(
        update={"secrets_file": str(secrets_file), "allow_private_webhooks": allow_private}
    )


def json_url(base: str) -> str:
    """Apprise's JSON notification to the receiver: `json://HOST:PORT/PATH`."""
    return base.replace("http://", "json://").rstrip("/") + TOKEN_PATH


def ours(caplog: pytest.LogCaptureFixture) -> str:
    """What the app logged: all but the receiver's own access log."""
    return "\n".join(
        record.getMessage() for record in caplog.records if record.name != "aiohttp.access"
    )


async def notify_send_jobs(client: Any) -> list[tuple[str, str | None]]:
    async with runtime(client).sessions() as session:
        jobs = await session.scalars(select(Job).where(Job.kind == "notify_send"))
        return [(job.state, job.last_error) for job in jobs]


def test_what_an_apprise_notification_says() -> None:
    title, body = message.apprise(MESSAGE)
    assert title == "Conjunction: new regression"
    assert body.splitlines() == [
        f"{APP} broke against {LIB} at 2222222",
        "Most likely culprit: <the 1 upstream commit> & more",
        f"Trace: {MESSAGE.event_url}",
        "Run: https://ci.test/runs/2",
    ]


async def test_apprise_hears_of_state_changes_only(
    aiohttp_client: Any,
    settings: Settings,
    forge: MemoryHost,
    receiver: tuple[Receiver, str],  # noqa: F811
) -> None:
    received, base = receiver
    client = await app_with(aiohttp_client, with_apprise(settings, json_url(base)), forge)
    await index(client, LIB, "notify:\n  - apprise: acme-matrix\n")
    await index(client, APP, upstream_of(LIB))

    for sha, result in [("1", "success"), ("2", "failure"), ("3", "failure"), ("4", "success")]:
        await run_lib(client, forge, sha * 40, {APP: result})

    sent = received.bodies(TOKEN_PATH)
    assert [(body["title"], body["message"].splitlines()[0]) for body in sent] == [
        ("Conjunction: new regression", f"{APP} broke against {LIB} at 2222222"),
        ("Conjunction: fixed", f"{APP} passes again against {LIB} at 4444444"),
    ]
    assert "Trace: https://conjunction.test/events/" in sent[0]["message"]
    assert await notify_send_jobs(client) == [("done", None), ("done", None)]


async def test_a_loopback_apprise_url_needs_private_addresses_allowed(
    aiohttp_client: Any,
    settings: Settings,
    forge: MemoryHost,
    receiver: tuple[Receiver, str],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    received, base = receiver
    guarded = with_apprise(settings, json_url(base), allow_private=False)
    client = await app_with(aiohttp_client, guarded, forge)
    await index(client, LIB, "notify:\n  - apprise: acme-matrix\n")
    await index(client, APP, upstream_of(LIB))
    await run_lib(client, forge, "1" * 40, {APP: "success"})
    await run_lib(client, forge, "2" * 40, {APP: "failure"})

    assert received.requests == []
    [(state, error)] = await notify_send_jobs(client)
    assert state == "dead"
    assert error == (
        "conjunction.queue.PermanentError: refused to send to the Apprise URL in secret"
        " acme-matrix: 127.0.0.1 resolves to 127.0.0.1, a loopback address "
        "(set CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS=true for services inside your network)"
    )
    assert "xoxAppriseSecretPath" not in ours(caplog)


@pytest.mark.parametrize(
    ("url", "state", "error"),
    [
        (
            "nosuchservice://xoxAppriseSecretPath",
            "dead",
            "conjunction.queue.PermanentError: the Apprise URL in secret acme-matrix is not a URL "
            "Apprise knows",
        ),
        (
            "{base}",  # the receiver answers 500
            "queued",
            "conjunction.notify.apprise_channel.AppriseFailed: the Apprise URL in secret"
            " acme-matrix did not take the notification",
        ),
    ],
    ids=["unknown-service", "receiver-fails"],
)
async def test_an_apprise_url_that_fails_is_named_by_its_secret_never_shown(
    aiohttp_client: Any,
    settings: Settings,
    forge: MemoryHost,
    receiver: tuple[Receiver, str],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    url: str,
    state: str,
    error: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    received, base = receiver
    received.answers = [500]
    client = await app_with(
        aiohttp_client, with_apprise(settings, url.format(base=json_url(base))), forge
    )
    await index(client, LIB, "notify:\n  - apprise: acme-matrix\n")
    await index(client, APP, upstream_of(LIB))
    await run_lib(client, forge, "1" * 40, {APP: "success"})
    await run_lib(client, forge, "2" * 40, {APP: "failure"})

    assert await notify_send_jobs(client) == [(state, error)]
    assert "xoxAppriseSecretPath" not in ours(caplog)
    assert not [record for record in caplog.records if record.name.startswith("apprise")]
    assert "job failed" in caplog.text
