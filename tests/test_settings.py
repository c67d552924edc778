"""Server settings: defaults, one clear line per bad variable, half-configured forges, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from conjunction.config.settings import Settings, SettingsError, load_settings, settings_from
from conjunction.forges.github.settings import GitHubSettings
from conjunction.forges.gitlab.settings import GitLabSettings
from testkit.keys import PRIVATE_KEY_PEM

GITHUB = {
    "GITHUB_APP_ID": "12345",
    "GITHUB_PRIVATE_KEY": PRIVATE_KEY_PEM,
    "GITHUB_WEBHOOK_SECRET": "github-hook-secret",
}
GITLAB = {"GITLAB_TOKEN": "glpat-token-value", "GITLAB_WEBHOOK_SECRET": "gitlab-hook-secret"}


def problem(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as caught:
        settings_from(env)
    return str(caught.value)


def test_defaults() -> None:
    settings = settings_from({})
    assert (settings.port, settings.host) == (3000, "0.0.0.0")
    assert (settings.log_level, settings.log_format) == ("info", "json")
    assert settings.database_url == "sqlite:///conjunction.db"
    assert settings.public_url == "http://localhost:3000"
    assert settings.secret_key is None
    assert settings.max_depth == 5
    assert (settings.result_timeout, settings.poll_interval) == (6 * 3600, 300)
    assert settings.secrets_file is None
    github, gitlab = settings.forge(GitHubSettings), settings.forge(GitLabSettings)
    assert github.api_url == "https://api.github.com"
    assert github.web_url == "https://github.com"
    assert (github.host, gitlab.host) == ("github.com", "gitlab.com")
    assert not github.enabled and not gitlab.enabled
    assert not settings.allow_private_webhooks


def test_values_are_read() -> None:
    settings = settings_from(
        {
            "PORT": "8080",
            "HOST": "127.0.0.1",
            "LOG_LEVEL": "DEBUG",
            "LOG_FORMAT": "text",
            "CONJUNCTION_DATABASE_URL": "postgresql://conjunction@db/conjunction",
            "CONJUNCTION_MAX_DEPTH": "3",
            "CONJUNCTION_POLL_INTERVAL": "90s",
            "CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS": "yes",
            "PATH": "/usr/bin",
        }
    )
    assert (settings.port, settings.host, settings.log_level, settings.log_format) == (
        8080,
        "127.0.0.1",
        "debug",
        "text",
    )
    assert settings.database_url == "postgresql://conjunction@db/conjunction"
    assert (settings.max_depth, settings.poll_interval) == (3, 90)
    assert settings.allow_private_webhooks
    assert settings.public_url == "http://localhost:8080", "the public URL follows the port"


def test_an_empty_variable_counts_as_unset() -> None:
    settings = settings_from({"PORT": "", "GITHUB_APP_ID": "", "CONJUNCTION_SECRET_KEY": ""})
    assert (settings.port, settings.forge(GitHubSettings).app_id, settings.secret_key) == (
        3000,
        None,
        None,
    )


def test_enterprise_hosts_come_from_the_urls() -> None:
    settings = settings_from(
        {"GITHUB_API_URL": "https://ghe.acme.dev/api/v3", "GITLAB_URL": "https://git.acme.dev/"}
        | GITLAB
    )
    github, gitlab = settings.forge(GitHubSettings), settings.forge(GitLabSettings)
    assert github.host == "ghe.acme.dev"
    assert github.web_url == "https://ghe.acme.dev"
    assert (gitlab.url, gitlab.host) == ("https://git.acme.dev", "git.acme.dev")
    assert gitlab.enabled


def test_hosts_can_be_named() -> None:
    settings = settings_from(
        {"GITHUB_HOST": "GitHub.Acme.dev", "GITLAB_HOST": "code.acme.dev"} | GITLAB
    )
    hosts = (settings.forge(GitHubSettings).host, settings.forge(GitLabSettings).host)
    assert hosts == ("github.acme.dev", "code.acme.dev")


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"PORT": "http"}, "PORT: expected a whole number, got 'http'"),
        ({"PORT": "70000"}, "PORT: must be at most 65535, got 70000"),
        (
            {"HOST": "0.0.0.0 extra"},
            "HOST: expected an address like 0.0.0.0 or 127.0.0.1, got '0.0.0.0 extra'",
        ),
        (
            {"LOG_LEVEL": "loud"},
            "LOG_LEVEL: expected 'debug', 'info', 'warning', 'error' or 'critical', got 'loud'",
        ),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT: expected 'json' or 'text', got 'xml'"),
        (
            {"CONJUNCTION_DATABASE_URL": "mysql://root:pw@db/x"},
            "CONJUNCTION_DATABASE_URL: expected sqlite:///FILE or postgresql://USER@HOST/DB",
        ),
        (
            {"CONJUNCTION_PUBLIC_URL": "example.com"},
            "CONJUNCTION_PUBLIC_URL: expected an http or https URL, got 'example.com'",
        ),
        (
            {"CONJUNCTION_SECRET_KEY": "short"},
            "CONJUNCTION_SECRET_KEY: must be at least 16 characters",
        ),
        ({"CONJUNCTION_MAX_DEPTH": "0"}, "CONJUNCTION_MAX_DEPTH: must be at least 1, got 0"),
        (
            {"CONJUNCTION_RESULT_TIMEOUT": "soon"},
            "CONJUNCTION_RESULT_TIMEOUT: expected a duration like 90s, 30m, 6h or 1d, got 'soon'",
        ),
        (
            {"CONJUNCTION_POLL_INTERVAL": "0s"},
            "CONJUNCTION_POLL_INTERVAL: expected a duration like 90s, 30m, 6h or 1d, got '0s'",
        ),
        (
            {"CONJUNCTION_SECRETS_FILE": "/nonexistent.yml"},
            "CONJUNCTION_SECRETS_FILE: cannot read /nonexistent.yml: No such file or directory",
        ),
        (
            {"CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS": "maybe"},
            "CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS: expected true or false, got 'maybe'",
        ),
        (
            GITHUB | {"GITHUB_APP_ID": "12 345"},
            "GITHUB_APP_ID: expected the App ID or client ID of the GitHub App, got '12 345'",
        ),
        (
            GITHUB | {"GITHUB_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----\nabc"},
            "GITHUB_PRIVATE_KEY: not a PEM private key (-----BEGIN … PRIVATE KEY-----)",
        ),
        (
            GITHUB | {"GITHUB_PRIVATE_KEY": "", "GITHUB_PRIVATE_KEY_PATH": "/nonexistent.pem"},
            "GITHUB_PRIVATE_KEY_PATH: cannot read /nonexistent.pem: No such file or directory",
        ),
        (
            {"GITHUB_API_URL": "ftp://ghe.acme.dev"},
            "GITHUB_API_URL: expected an http or https URL, got 'ftp://ghe.acme.dev'",
        ),
        (
            {"GITHUB_HOST": "git hub"},
            "GITHUB_HOST: expected a host name like github.com, got 'git hub'",
        ),
        (
            GITLAB | {"GITLAB_URL": "gitlab"},
            "GITLAB_URL: expected an http or https URL, got 'gitlab'",
        ),
        (
            GITLAB | {"GITLAB_HOST": "gitlab.acme.dev/"},
            "GITLAB_HOST: expected a host name like github.com, got 'gitlab.acme.dev/'",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(env: dict[str, str], line: str) -> None:
    assert problem(env) == line


def test_every_problem_is_named_on_the_one_line() -> None:
    assert problem({"PORT": "x", "CONJUNCTION_MAX_DEPTH": "0", "GITLAB_TOKEN": "t"}) == (
        "GitLab half configured: GITLAB_TOKEN is set but GITLAB_WEBHOOK_SECRET is missing; "
        "PORT: expected a whole number, got 'x'; "
        "CONJUNCTION_MAX_DEPTH: must be at least 1, got 0"
    )


@pytest.mark.parametrize(
    ("given", "line"),
    [
        (
            ["GITHUB_APP_ID"],
            "GitHub App half configured: GITHUB_APP_ID is set but GITHUB_PRIVATE_KEY "
            "(or GITHUB_PRIVATE_KEY_PATH) and GITHUB_WEBHOOK_SECRET are missing",
        ),
        (
            ["GITHUB_APP_ID", "GITHUB_PRIVATE_KEY"],
            "GitHub App half configured: GITHUB_APP_ID and GITHUB_PRIVATE_KEY are set but "
            "GITHUB_WEBHOOK_SECRET is missing",
        ),
        (
            ["GITHUB_APP_ID", "GITHUB_WEBHOOK_SECRET"],
            "GitHub App half configured: GITHUB_APP_ID and GITHUB_WEBHOOK_SECRET are set but "
            "GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH) is missing",
        ),
        (
            ["GITHUB_PRIVATE_KEY", "GITHUB_WEBHOOK_SECRET"],
            "GitHub App half configured: GITHUB_PRIVATE_KEY and GITHUB_WEBHOOK_SECRET are set "
            "but GITHUB_APP_ID is missing",
        ),
        (
            ["GITHUB_WEBHOOK_SECRET"],
            "GitHub App half configured: GITHUB_WEBHOOK_SECRET is set but GITHUB_APP_ID and "
            "GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH) are missing",
        ),
        (
            ["GITLAB_URL"],
            "GitLab half configured: GITLAB_URL is set but GITLAB_TOKEN and "
            "GITLAB_WEBHOOK_SECRET are missing",
        ),
        (
            ["GITLAB_URL", "GITLAB_WEBHOOK_SECRET"],
            "GitLab half configured: GITLAB_WEBHOOK_SECRET and GITLAB_URL are set but "
            "GITLAB_TOKEN is missing",
        ),
        (
            ["GITLAB_TOKEN"],
            "GitLab half configured: GITLAB_TOKEN is set but GITLAB_WEBHOOK_SECRET is missing",
        ),
    ],
)
def test_a_half_configured_forge_names_what_is_missing(given: list[str], line: str) -> None:
    values = GITHUB | GITLAB | {"GITLAB_URL": "https://gitlab.acme.dev"}
    assert problem({name: values[name] for name in given}) == line


def test_whole_forges_are_enabled() -> None:
    settings = settings_from(GITHUB | GITLAB | {"GITLAB_URL": "https://gitlab.acme.dev"})
    github, gitlab = settings.forge(GitHubSettings), settings.forge(GitLabSettings)
    assert github.enabled and gitlab.enabled
    assert gitlab.host == "gitlab.acme.dev"


def test_an_enterprise_api_url_alone_is_not_half_configured() -> None:
    """The setup page creates the app on GitHub Enterprise Server from GITHUB_API_URL alone."""
    settings = settings_from({"GITHUB_API_URL": "https://ghe.acme.dev/api/v3"})
    assert not settings.forge(GitHubSettings).enabled


def test_the_private_key_is_read_from_its_file(tmp_path: Path) -> None:
    key = tmp_path / "app.pem"
    key.write_text(PRIVATE_KEY_PEM)
    env = GITHUB | {"GITHUB_PRIVATE_KEY": "", "GITHUB_PRIVATE_KEY_PATH": str(key)}
    github = settings_from(env).forge(GitHubSettings)
    assert github.enabled
    assert github.private_key == PRIVATE_KEY_PEM

    key.write_text("ssh-rsa AAAA not a private key\n")
    assert problem(env) == f"GITHUB_PRIVATE_KEY_PATH: {key} is not a PEM private key"

    both = GITHUB | {"GITHUB_PRIVATE_KEY_PATH": str(key)}
    assert problem(both) == (
        "GITHUB_PRIVATE_KEY_PATH: set GITHUB_PRIVATE_KEY or GITHUB_PRIVATE_KEY_PATH, not both"
    )


def test_a_one_line_private_key_keeps_its_newlines() -> None:
    one_line = PRIVATE_KEY_PEM.replace("\n", "\\n")
    settings = settings_from(GITHUB | {"GITHUB_PRIVATE_KEY": one_line})
    assert settings.forge(GitHubSettings).private_key == PRIVATE_KEY_PEM


def test_durations() -> None:
    def timeout(text: str) -> float:
        return settings_from({"CONJUNCTION_RESULT_TIMEOUT": text}).result_timeout

    assert (timeout("90s"), timeout("30m"), timeout("6h"), timeout("1d")) == (
        90,
        1800,
        21600,
        86400,
    )
    assert (timeout("45"), timeout("1.5h")) == (45, 5400)


def test_secrets_file_and_repr(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yml"
    secrets.write_text('acme-ci: {value: "hunter2-value", projects: ["github.com/acme/*"]}\n')
    settings = settings_from(
        GITHUB
        | GITLAB
        | {
            "CONJUNCTION_SECRETS_FILE": str(secrets),
            "CONJUNCTION_ADMIN_TOKEN": "admin-value",
            "CONJUNCTION_SECRET_KEY": "signing-key-value",
        }
    )
    assert settings.secrets_file == secrets
    shown = repr(settings) + str(settings)
    assert "12345" in shown, "the rest is shown"
    for secret in (
        "hunter2-value",
        "github-hook-secret",
        "PRIVATE KEY",
        "admin-value",
        "signing-key-value",
        "glpat-token-value",
        "gitlab-hook-secret",
    ):
        assert secret not in shown


def test_a_malformed_secrets_file_is_named(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yml"
    secrets.write_text("acme-ci: just-a-value\n")
    assert problem({"CONJUNCTION_SECRETS_FILE": str(secrets)}) == (
        "CONJUNCTION_SECRETS_FILE: secret 'acme-ci' needs a string 'value' and a list 'projects'"
    )


def test_env_file_is_read_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_env: None
) -> None:
    secrets = tmp_path / "secrets.yml"
    secrets.write_text('acme-ci: {value: "v", projects: []}\n')
    env_file = tmp_path / ".env"
    env_file.write_text(
        'PORT=4000\nCONJUNCTION_MAX_DEPTH=3\nGITHUB_APP_ID="77"\nOTHER_TOOL=x\n'
        f"CONJUNCTION_SECRETS_FILE={secrets}\n"
    )
    monkeypatch.setenv("CONJUNCTION_MAX_DEPTH", "7")
    monkeypatch.setenv("GITHUB_PRIVATE_KEY", PRIVATE_KEY_PEM)
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "from-the-environment")
    settings = load_settings(env_file)
    assert (settings.port, settings.max_depth) == (4000, 7)
    github = settings.forge(GitHubSettings)
    assert (github.app_id, github.webhook_secret) == (
        "77",
        "from-the-environment",
    )
    assert settings.secrets_file == secrets

    monkeypatch.delenv("GITHUB_PRIVATE_KEY")
    with pytest.raises(SettingsError) as caught:
        load_settings(env_file)
    assert str(caught.value) == (
        "GitHub App half configured: GITHUB_APP_ID and GITHUB_WEBHOOK_SECRET are set but "
        "GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH) is missing"
    )


def test_without_an_env_file_the_environment_is_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_env: None
) -> None:
    monkeypatch.setenv("PORT", "5000")
    assert load_settings(tmp_path / "missing.env").port == 5000


def test_direct_construction_reads_no_environment(
    monkeypatch: pytest.MonkeyPatch, no_env: None
) -> None:
    monkeypatch.setenv("PORT", "5000")
    assert Settings().port == 3000
    assert Settings(port=5000).public_url == "http://localhost:5000"
    with pytest.raises(ValidationError):
        GitHubSettings(private_key="not a key")
