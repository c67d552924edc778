"""A secret written into `.conjunction.yml` is refused with its line, by `validate` and by the
server's indexing alike, and never repeated in the message."""

from __future__ import annotations

from pathlib import Path

import pytest

from conjunction.app import main
from conjunction.config.repo_config import ConfigError, parse_config

STORE_IT = (
    "store it in the server's secrets file (CONJUNCTION_SECRETS_FILE) under a name and write "
    "the name here"
)
SLACK = "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return [str(p) for p in info.value.problems]


def test_a_slack_webhook_url_where_the_secret_name_belongs() -> None:
    text = f"upstreams:\n  - project: github.com/acme/lib\nnotify:\n  - slack: {SLACK}\n"
    assert problems(text) == [
        "line 4: notify.0.slack: looks like a Slack webhook URL; a webhook URL is a secret: "
        + STORE_IT
    ]


@pytest.mark.parametrize(
    ("url", "service"),
    [
        ("https://discord.com/api/webhooks/123/abcdef", "Discord"),
        ("https://ptb.discord.com/api/webhooks/123/abcdef", "Discord"),
        ("https://outlook.office.com/webhook/abc@def/IncomingWebhook/x/y", "Microsoft Teams"),
        ("https://acme.webhook.office.com/webhookb2/abc/IncomingWebhook/x", "Microsoft Teams"),
        ("https://api.telegram.org/bot123456:ABC-DEF/sendMessage", "Telegram"),
        ("https://hooks.zapier.com/hooks/catch/123/abc/", "Zapier"),
        ("https://HOOKS.SLACK.COM/services/T/B/X", "Slack"),
        ("hooks.slack.com/services/T/B/X", "Slack"),
    ],
)
def test_known_webhook_hosts_in_an_apprise_channel(url: str, service: str) -> None:
    text = f"notify:\n  - apprise: '{url}'\n    on: [fixed]\n"
    assert problems(text) == [
        f"line 2: notify.0.apprise: looks like a {service} webhook URL; a webhook URL is a "
        f"secret: {STORE_IT}"
    ]


@pytest.mark.parametrize(
    "value",
    ["matrix://bot:s3cret@matrix.acme.dev/!room", "https://user:pw@ci.acme.dev/hook"],
)
def test_a_url_with_credentials_where_a_name_belongs(value: str) -> None:
    text = f"notify:\n  - apprise: '{value}'\n"
    [problem] = problems(text)
    assert problem == (
        "line 2: notify.0.apprise: looks like a URL with credentials; a URL with credentials is "
        f"a secret: {STORE_IT}"
    )
    assert "s3cret" not in problem and "pw@" not in problem


def test_any_url_or_pasted_token_where_a_name_belongs() -> None:
    text = (
        "trigger:\n"
        "  webhook:\n"
        "    url: https://ci.acme.dev/hook\n"
        "    secret: xoxb-123456789012-abcdefghijkl\n"
        "    headers: {Authorization: 'Bearer ${secret:https://ntfy.sh/acme}'}\n"
        "notify:\n"
        "  - webhook: {url: 'https://hooks.acme.dev/ci', secret: 'ghp_abcdefghijklmnop1234'}\n"
    )
    assert problems(text) == [
        f"line 4: trigger.webhook.secret: looks like an access token; a token is a secret: "
        f"{STORE_IT}",
        "line 5: trigger.webhook.headers.Authorization: is a URL, not the name of a secret; the "
        f"URL may hold a secret: {STORE_IT}",
        f"line 7: notify.0.webhook.secret: looks like an access token; a token is a secret: "
        f"{STORE_IT}",
    ]


def test_credentials_or_a_chat_webhook_where_a_url_belongs() -> None:
    text = (
        "trigger:\n"
        "  webhook:\n"
        "    url: https://jenkins:hunter2@ci.acme.dev/generic-webhook-trigger/invoke\n"
        "notify:\n"
        f"  - webhook: {{url: '{SLACK}'}}\n"
    )
    assert problems(text) == [
        "line 3: trigger.webhook.url: holds a user and password; they are a secret: put them in "
        "a header with a ${secret:NAME} placeholder instead",
        "line 5: notify.0.webhook.url: looks like a Slack webhook URL; a webhook URL is a secret: "
        "use notify's slack: channel with the URL stored in the server's secrets file "
        "(CONJUNCTION_SECRETS_FILE)",
    ]


def test_names_and_plain_urls_stay_valid() -> None:
    config = parse_config(
        "trigger:\n"
        "  webhook:\n"
        "    url: https://ci.acme.dev/generic-webhook-trigger/invoke?token=acme\n"
        "    secret: acme-ci\n"
        "notify:\n"
        "  - slack: acme-slack\n"
        "  - apprise: hooks.slack.com-acme\n"
        "  - webhook: {url: 'https://hooks.acme.dev/ci', secret: acme-hook}\n"
    )
    assert [channel.kind for channel in config.notify] == ["slack", "apprise", "webhook"]


def test_validate_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / ".conjunction.yml"
    path.write_text(f"owners: [alice]\nnotify:\n  - slack: {SLACK}\n")
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == (
        f"{path}: line 3: notify.0.slack: looks like a Slack webhook URL; a webhook URL is a "
        f"secret: {STORE_IT}\n"
    )
    assert "XXXX" not in out.err


def test_validate_refuses_an_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / ".conjunction.yml"
    path.write_text("")
    assert main(["validate", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"{path}: line 1: the file is empty: write {{}} to take every default, or keys like "
        "upstreams:\n"
    )


def test_a_secrets_file_is_not_asked_about_a_secret_written_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = tmp_path / "secrets.yml"
    secrets.write_text("acme-slack: {value: x, projects: ['github.com/acme/*']}\n")
    path = tmp_path / ".conjunction.yml"
    path.write_text(f"notify:\n  - slack: {SLACK}\n")
    assert main(["validate", "--secrets", str(secrets), str(path)]) == 1
    err = capsys.readouterr().err
    assert "not in the secrets file" not in err and "XXXX" not in err


def test_a_malformed_value_is_judged_without_an_error() -> None:
    assert [
        problem.split(";")[0]
        for value in ("https://[::1/x", "hooks.slack.com:x/services/T")
        for problem in problems(f"notify:\n  - apprise: '{value}'\n")
    ] == [
        "line 2: notify.0.apprise: is a URL, not the name of a secret",
        "line 2: notify.0.apprise: looks like a Slack webhook URL",
    ]
    assert parse_config("notify:\n  - apprise: 'a/[b'\n").notify[0].apprise == "a/[b"
