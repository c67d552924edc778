"""Server settings, read once from the environment and `.env` (the environment wins).

`Settings(...)` holds exactly the values it is given (tests build it that way). `load_settings()`
reads the variables of the README's settings table, `settings_from()` reads them from any mapping;
both turn every problem into a `SettingsError` of one line naming the variable, and refuse a forge
that is half configured.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import (
    BeforeValidator,
    Field,
    HttpUrl,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from conjunction.secrets import SETTING as SECRETS_SETTING
from conjunction.secrets import SecretsFileError, load_secrets


class SettingsError(ValueError):
    """A missing, malformed or contradictory setting; the message is one line naming it."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_HOST_NAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")
_LISTEN_ADDRESS = re.compile(r"[A-Za-z0-9.:%-]+")
_APP_ID = re.compile(r"[A-Za-z0-9.]+")
_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def parse_duration(name: str, text: str) -> float:
    """Seconds in `90s`, `30m`, `6h`, `1d` or a plain number of seconds."""
    match = _DURATION.match(text)
    if not match or float(match[1]) <= 0:
        raise SettingsError(f"{name}: expected a duration like 90s, 30m, 6h or 1d, got {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def _is_pem_private_key(text: str) -> bool:
    try:
        # Only the format is checked here; the (slow) RSA consistency check adds nothing that
        # GitHub would not tell at the first call.
        load_pem_private_key(text.encode(), None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError):
        return False
    return True


def _private_key_file(data: dict[str, Any]) -> str | None:
    """GITHUB_PRIVATE_KEY's default: the file GITHUB_PRIVATE_KEY_PATH names, if any."""
    path = data.get("github_private_key_path")
    if path is None:
        return None
    name = "GITHUB_PRIVATE_KEY_PATH"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{name}: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        text = ""
    if not _is_pem_private_key(text):
        raise SettingsError(f"{name}: {path} is not a PEM private key")
    return text


def _github_host(data: dict[str, Any]) -> str:
    api_url = data.get("github_api_url", "https://api.github.com")
    if api_url == "https://api.github.com":
        return "github.com"
    return urlsplit(api_url).hostname or "github.com"


def _http_url(value: object) -> object:
    """An http(s) URL without its trailing slash."""
    if not isinstance(value, str):
        return value
    return str(_HTTP_URL.validate_python(value)).rstrip("/")


def _secrets_file(value: object) -> object:
    """The file is read once here so that a bad one stops start-up; the server reads it again
    as it changes (`conjunction.secrets.SecretStore`)."""
    if isinstance(value, str | Path):
        try:
            load_secrets(value)
        except SecretsFileError as exc:
            raise SettingsError(f"{SECRETS_SETTING}: {exc}") from None
    return value


def _duration(value: object, info: ValidationInfo) -> object:
    if not isinstance(value, str):
        return value
    assert info.field_name is not None
    return parse_duration(str(Settings.model_fields[info.field_name].validation_alias), value)


URL = Annotated[str, BeforeValidator(_http_url)]
Duration = Annotated[float, BeforeValidator(_duration), Field(gt=0)]


def spool_beside(database_url: str) -> Path:
    """Where webhook deliveries wait while the database is unavailable: beside the SQLite
    file (`conjunction.db.spool`), else `conjunction-spool` in the working directory."""
    scheme, _, rest = database_url.partition("://")
    path = rest[1:] if rest.startswith("/") else rest  # sqlite:///FILE: FILE, relative or not
    path = path.split("?", 1)[0]
    if scheme.startswith("sqlite") and path and path != ":memory:":
        return Path(f"{path}.spool")
    return Path("conjunction-spool")


class Settings(BaseSettings):
    """Every server setting; each field's validation alias is its environment variable."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        case_sensitive=True,
        env_ignore_empty=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    port: int = Field(default=3000, ge=1, le=65535, validation_alias="PORT")
    host: str = Field(default="0.0.0.0", validation_alias="HOST")
    log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        default="info", validation_alias="LOG_LEVEL"
    )
    log_format: Literal["json", "text"] = Field(default="json", validation_alias="LOG_FORMAT")
    database_url: str = Field(
        default="sqlite:///conjunction.db", validation_alias="CONJUNCTION_DATABASE_URL"
    )
    spool_dir: Path = Field(
        default_factory=lambda data: spool_beside(data["database_url"]),
        validation_alias="CONJUNCTION_SPOOL_DIR",
    )
    public_url: URL = Field(
        default_factory=lambda data: f"http://localhost:{data['port']}",
        validation_alias="CONJUNCTION_PUBLIC_URL",
    )
    secret_key: str | None = Field(
        default=None, min_length=16, repr=False, validation_alias="CONJUNCTION_SECRET_KEY"
    )
    max_depth: int = Field(default=5, ge=1, validation_alias="CONJUNCTION_MAX_DEPTH")
    result_timeout: Duration = Field(
        default=6 * 3600, validation_alias="CONJUNCTION_RESULT_TIMEOUT"
    )
    poll_interval: Duration = Field(default=300, validation_alias="CONJUNCTION_POLL_INTERVAL")
    retention: Duration = Field(default=14 * 86400, validation_alias="CONJUNCTION_RETENTION")
    worker_concurrency: int = Field(
        default=16, ge=1, le=256, validation_alias="CONJUNCTION_WORKER_CONCURRENCY"
    )
    worker_concurrency_per_key: int = Field(
        default=4, ge=1, le=256, validation_alias="CONJUNCTION_WORKER_CONCURRENCY_PER_KEY"
    )
    # False: the process takes webhooks and serves pages and the API, and leaves the jobs (and
    # the background tasks: the sweeper, GitHub's poller) to the replicas that run them.
    run_jobs: bool = Field(default=True, validation_alias="CONJUNCTION_RUN_JOBS")
    secrets_file: Annotated[Path | None, BeforeValidator(_secrets_file)] = Field(
        default=None, validation_alias=SECRETS_SETTING
    )
    admin_token: str | None = Field(
        default=None, repr=False, validation_alias="CONJUNCTION_ADMIN_TOKEN"
    )
    allow_private_webhooks: bool = Field(
        default=False, validation_alias="CONJUNCTION_ALLOW_PRIVATE_WEBHOOKS"
    )
    github_app_id: str | None = Field(default=None, validation_alias="GITHUB_APP_ID")
    github_private_key_path: Path | None = Field(
        default=None, validation_alias="GITHUB_PRIVATE_KEY_PATH"
    )
    github_private_key: str | None = Field(
        default_factory=_private_key_file, repr=False, validation_alias="GITHUB_PRIVATE_KEY"
    )
    github_webhook_secret: str | None = Field(
        default=None, repr=False, validation_alias="GITHUB_WEBHOOK_SECRET"
    )
    github_api_url: URL = Field(default="https://api.github.com", validation_alias="GITHUB_API_URL")
    github_host: str = Field(default_factory=_github_host, validation_alias="GITHUB_HOST")
    gitlab_url: URL = Field(default="https://gitlab.com", validation_alias="GITLAB_URL")
    gitlab_token: str | None = Field(default=None, repr=False, validation_alias="GITLAB_TOKEN")
    gitlab_webhook_secret: str | None = Field(
        default=None, repr=False, validation_alias="GITLAB_WEBHOOK_SECRET"
    )
    gitlab_host: str = Field(
        default_factory=lambda data: urlsplit(data["gitlab_url"]).hostname or "gitlab.com",
        validation_alias="GITLAB_HOST",
    )
    gitea_url: URL | None = Field(default=None, validation_alias="GITEA_URL")
    gitea_token: str | None = Field(default=None, repr=False, validation_alias="GITEA_TOKEN")
    gitea_webhook_secret: str | None = Field(
        default=None, repr=False, validation_alias="GITEA_WEBHOOK_SECRET"
    )
    gitea_host: str | None = Field(
        default_factory=lambda data: (
            urlsplit(data["gitea_url"]).hostname if data.get("gitea_url") else None
        ),
        validation_alias="GITEA_HOST",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what the caller passes: `load_settings` is the one place that reads the process
        # environment, so a test's `Settings(...)` never depends on the shell it runs in.
        return (init_settings,)

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("host")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        if not _LISTEN_ADDRESS.fullmatch(value):
            raise ValueError(f"expected an address like 0.0.0.0 or 127.0.0.1, got {value!r}")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        scheme = value.split(":", 1)[0].split("+", 1)[0]
        if scheme not in {"sqlite", "postgresql", "postgres"} or "://" not in value:
            raise ValueError("expected sqlite:///FILE or postgresql://USER@HOST/DB")
        return value

    @field_validator("github_app_id")
    @classmethod
    def _app_id(cls, value: str | None) -> str | None:
        if value is not None and not _APP_ID.fullmatch(value):
            raise ValueError(f"expected the App ID or client ID of the GitHub App, got {value!r}")
        return value

    @field_validator("github_private_key")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.replace("\\n", "\n")  # a one-line variable spells newlines as \n
        if not _is_pem_private_key(value):
            raise ValueError("not a PEM private key (-----BEGIN … PRIVATE KEY-----)")
        return value

    @field_validator("github_host", "gitlab_host", "gitea_host")
    @classmethod
    def _host_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _HOST_NAME.fullmatch(value.lower()):
            raise ValueError(f"expected a host name like github.com, got {value!r}")
        return value.lower()

    @model_validator(mode="after")
    def _one_private_key(self) -> Settings:
        if (
            self.github_private_key_path is not None
            and "github_private_key" in self.model_fields_set
        ):
            raise SettingsError(
                "GITHUB_PRIVATE_KEY_PATH: set GITHUB_PRIVATE_KEY or GITHUB_PRIVATE_KEY_PATH, "
                "not both"
            )
        return self

    @property
    def github_enabled(self) -> bool:
        return bool(self.github_app_id and self.github_private_key and self.github_webhook_secret)

    @property
    def github_web_url(self) -> str:
        """Where people use GitHub: github.com, or the Enterprise Server host of the API URL."""
        if self.github_api_url == "https://api.github.com":
            return "https://github.com"
        parts = urlsplit(self.github_api_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def gitlab_enabled(self) -> bool:
        return bool(self.gitlab_token)

    @property
    def gitea_enabled(self) -> bool:
        """A Gitea or Forgejo bot account: its URL, token and webhook secret (all three, or
        start-up stops)."""
        return bool(self.gitea_url and self.gitea_token and self.gitea_webhook_secret)


VARIABLES = frozenset(str(info.validation_alias) for info in Settings.model_fields.values())
"""The environment variables settings are read from."""


@dataclass(frozen=True)
class _Forge:
    """Variables that configure one forge: all of `needs` together (each need is one variable
    or alternatives), and `extras` that mean something only with them."""

    name: str
    needs: tuple[tuple[str, ...], ...]
    extras: tuple[str, ...] = ()


# A GitLab token without the webhook secret would start pipelines but never hear how they ended,
# so the two go together as the GitHub App's three do. Gitea and Forgejo have no default
# instance, so their URL is needed too.
_FORGES = (
    _Forge(
        "GitHub App",
        (
            ("GITHUB_APP_ID",),
            ("GITHUB_PRIVATE_KEY", "GITHUB_PRIVATE_KEY_PATH"),
            ("GITHUB_WEBHOOK_SECRET",),
        ),
    ),
    _Forge(
        "GitLab", (("GITLAB_TOKEN",), ("GITLAB_WEBHOOK_SECRET",)), ("GITLAB_URL", "GITLAB_HOST")
    ),
    _Forge(
        "Gitea",
        (("GITEA_URL",), ("GITEA_TOKEN",), ("GITEA_WEBHOOK_SECRET",)),
        ("GITEA_HOST",),
    ),
)


def _listing(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _is(words: list[str]) -> str:
    return "is" if len(words) == 1 else "are"


def _half_configured(given: set[str]) -> list[str]:
    """One line per forge that has some of its variables but not all it needs."""
    problems = []
    for forge in _FORGES:
        present = [name for need in forge.needs for name in need if name in given]
        present += [name for name in forge.extras if name in given]
        missing = [need for need in forge.needs if not given.intersection(need)]
        if present and missing:
            names = [need[0] if len(need) == 1 else f"{need[0]} (or {need[1]})" for need in missing]
            problems.append(
                f"{forge.name} half configured: {_listing(present)} {_is(present)} set but "
                f"{_listing(names)} {_is(names)} missing"
            )
    return problems


def _variable(error: ErrorDetails) -> str:
    name = str(error["loc"][0]) if error["loc"] else ""
    info = Settings.model_fields.get(name)
    return str(info.validation_alias) if info is not None else name


def _problem(error: ErrorDetails) -> str | None:
    """One error of pydantic's as `VARIABLE: what is wrong`; None for a consequence of another."""
    kind, ctx, given = error["type"], error.get("ctx", {}), error["input"]
    if kind == "default_factory_not_called":
        return None
    if kind == "value_error" and isinstance(ctx.get("error"), SettingsError):
        return str(ctx["error"])
    if kind in {"int_parsing", "int_type", "int_from_float"}:
        text = f"expected a whole number, got {given!r}"
    elif kind == "greater_than_equal":
        text = f"must be at least {ctx['ge']}, got {given}"
    elif kind == "less_than_equal":
        text = f"must be at most {ctx['le']}, got {given}"
    elif kind in {"bool_parsing", "bool_type"}:
        text = f"expected true or false, got {given!r}"
    elif kind == "string_too_short":
        text = f"must be at least {ctx['min_length']} characters"  # never echo a secret
    elif kind == "literal_error":
        text = f"expected {ctx['expected']}, got {given!r}"
    elif kind.startswith("url_"):
        text = f"expected an http or https URL, got {given!r}"
    elif kind == "value_error":
        text = str(ctx["error"])
    else:
        text = error["msg"]
    return f"{_variable(error)}: {text}"


def settings_from(env: Mapping[str, str]) -> Settings:
    """Settings from a mapping of variables (an empty value counts as unset).

    Raises SettingsError with one line naming each problem.
    """
    given = {name: value for name, value in env.items() if name in VARIABLES and value != ""}
    problems = _half_configured(set(given))
    try:
        settings = Settings.model_validate(given)
    except ValidationError as exc:
        problems += [line for error in exc.errors() if (line := _problem(error))]
    except SettingsError as exc:  # raised while reading a default, e.g. the key file
        problems.append(str(exc))
    if problems:
        raise SettingsError("; ".join(problems))
    return settings


def _variables(env_file: str | Path) -> dict[str, Any]:
    from_file = DotEnvSettingsSource(Settings, env_file=env_file)()
    from_environment = EnvSettingsSource(Settings)()
    return {**from_file, **from_environment}


def load_settings(env_file: str | Path = ".env") -> Settings:
    """Settings from the process environment over `.env` (if present)."""
    return settings_from(_variables(env_file))


def raw_setting(name: str, env_file: str | Path = ".env") -> str | None:
    """One variable as the environment over `.env` gives it, unchecked (for commands that need
    one setting and should work where the server's others are not configured)."""
    value = _variables(env_file).get(name)
    return str(value) if value not in (None, "") else None
