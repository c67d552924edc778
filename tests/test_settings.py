"""Server settings: defaults, the variables of the contract, clear errors, secrets not shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import SettingsError, load_settings, settings_from


def test_defaults() -> None:
    settings = settings_from({})
    assert settings.port == 3000
    assert settings.database_url == "sqlite:///conjunction.db"
    assert settings.public_url == "http://localhost:3000"
    assert settings.max_depth == 5
    assert settings.result_timeout == 6 * 3600
    assert settings.github_api_url == "https://api.github.com"
    assert settings.github_host == "github.com"
    assert settings.gitlab_host == "gitlab.com"
    assert not settings.github_enabled and not settings.gitlab_enabled
    assert not settings.allow_private_webhooks


def test_public_url_follows_the_port() -> None:
    assert settings_from({"PORT": "8080"}).public_url == "http://localhost:8080"


def test_enterprise_hosts_come_from_the_urls() -> None:
    settings = settings_from(
        {"GITHUB_API_URL": "https://ghe.acme.dev/api/v3", "GITLAB_URL": "https://git.acme.dev/"}
    )
    assert settings.github_host == "ghe.acme.dev"
    assert settings.github_web_url == "https://ghe.acme.dev"
    assert (settings.gitlab_url, settings.gitlab_host) == ("https://git.acme.dev", "git.acme.dev")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "http"}, "PORT: expected a whole number, got 'http'"),
        ({"CONJUNCTION_MAX_DEPTH": "0"}, "CONJUNCTION_MAX_DEPTH: must be at least 1, got 0"),
        ({"CONJUNCTION_RESULT_TIMEOUT": "soon"}, "CONJUNCTION_RESULT_TIMEOUT: expected a duration"),
        ({"CONJUNCTION_DATABASE_URL": "mysql://x"}, "CONJUNCTION_DATABASE_URL: expected sqlite"),
        ({"CONJUNCTION_PUBLIC_URL": "example.com"}, "CONJUNCTION_PUBLIC_URL: expected an http"),
        ({"CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS": "maybe"}, "CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS"),
        ({"CONJUNCTION_SECRET_KEY": "short"}, "CONJUNCTION_SECRET_KEY: must be at least 16"),
        ({"GITHUB_PRIVATE_KEY_PATH": "/nonexistent.pem"}, "GITHUB_PRIVATE_KEY_PATH: cannot read"),
        ({"CONJUNCTION_SECRETS_FILE": "/nonexistent.yml"}, "CONJUNCTION_SECRETS_FILE: cannot read"),
    ],
)
def test_a_bad_setting_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from(env)
    assert str(caught.value).startswith(message)


def test_durations() -> None:
    assert settings_from({"CONJUNCTION_RESULT_TIMEOUT": "90s"}).result_timeout == 90
    assert settings_from({"CONJUNCTION_RESULT_TIMEOUT": "30m"}).result_timeout == 1800
    assert settings_from({"CONJUNCTION_RESULT_TIMEOUT": "1d"}).result_timeout == 86400


def test_secrets_file_and_repr(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yml"
    secrets.write_text('acme-ci: {value: "hunter2-value", projects: ["github.com/acme/*"]}\n')
    settings = settings_from(
        {
            "CONJUNCTION_SECRETS_FILE": str(secrets),
            "GITHUB_WEBHOOK_SECRET": "whsec-value",
            "GITHUB_PRIVATE_KEY": "-----BEGIN KEY-----\\nabc\\n-----END KEY-----",
            "CONJUNCTION_ADMIN_TOKEN": "admin-value",
        }
    )
    assert settings.secrets["acme-ci"].projects == ("github.com/acme/*",)
    assert settings.github_private_key == "-----BEGIN KEY-----\nabc\n-----END KEY-----"
    shown = repr(settings)
    for secret in ("hunter2-value", "whsec-value", "BEGIN KEY", "admin-value"):
        assert secret not in shown


def test_env_file_is_read_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_env: None
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=4000\nCONJUNCTION_MAX_DEPTH=3\n")
    monkeypatch.setenv("CONJUNCTION_MAX_DEPTH", "7")
    settings = load_settings(env_file)
    assert (settings.port, settings.max_depth) == (4000, 7)
