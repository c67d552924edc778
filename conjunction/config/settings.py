"""Server settings, read once from the environment and `.env` (the environment wins).

`Settings(...)` holds exactly the values it is given (tests build it that way). `load_settings()`
reads the variables of the README's settings table, `settings_from()` reads them from any mapping;
both turn every problem into a `SettingsError` of one line naming the variable, and refuse a forge
that is half configured.

Each forge's settings are a `ForgeSettings` of its own package (`conjunction/forges/<forge>/
settings.py`, named by its driver); `Settings.forge(GitLabSettings)` gives them, typed.
"""

from __future__ import annotations

import os
import re
from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal, TypeVar

from dotenv import dotenv_values
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from conjunction.secrets import SETTING as SECRETS_SETTING
from conjunction.secrets import SecretsFileError, load_secrets


class SettingsError(ValueError):
    """A missing, malformed or contradictory setting; the message is one line naming it."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_HOST_NAME = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")
_LISTEN_ADDRESS = re.compile(r"[A-Za-z0-9.:%-]+")
_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def parse_duration(name: str, text: str) -> float:
    """Seconds in `90s`, `30m`, `6h`, `1d` or a plain number of seconds."""
    match = _DURATION.match(text)
    if not match or float(match[1]) <= 0:
        raise SettingsError(f"{name}: expected a duration like 90s, 30m, 6h or 1d, got {text!r}")
    return float(match[1]) * _UNITS[match[2]]


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


def _host_name(value: str) -> str:
    if not _HOST_NAME.fullmatch(value.lower()):
        raise ValueError(f"expected a host name like github.com, got {value!r}")
    return value.lower()


URL = Annotated[str, BeforeValidator(_http_url)]
Duration = Annotated[float, BeforeValidator(_duration), Field(gt=0)]
HostName = Annotated[str, AfterValidator(_host_name)]


class ForgeSettings(BaseModel):
    """One forge's settings; each field's validation alias is its environment variable.

    The variables of `needs` configure the forge together (each need one variable, or
    alternatives); `extras` mean something only with them. A forge given some of them but not all
    it needs is half configured, and start-up stops naming what is missing."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True
    )

    title: ClassVar[str]  # how the half-configured error names it: "GitHub App"
    needs: ClassVar[tuple[tuple[str, ...], ...]]
    extras: ClassVar[tuple[str, ...]] = ()

    if TYPE_CHECKING:
        # Each forge's own field (declared here, it would be validated before the URL it is
        # derived from): the host in the names of its projects, None where it has none.
        host: str | None

    @property
    @abstractmethod
    def enabled(self) -> bool:
        """It is configured: its code host and runner start with the service."""

    @property
    def described(self) -> str:
        """How the start-up line shows it while it is configured."""
        return "on"


F = TypeVar("F", bound=ForgeSettings)


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
    # each forge's settings (conjunction/forges/<forge>/settings.py), read by `forge`
    forges: tuple[ForgeSettings, ...] = ()

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

    def forge(self, kind: type[F]) -> F:
        """The settings of one forge: those given, else its defaults."""
        given = next((forge for forge in self.forges if type(forge) is kind), None)
        return given if given is not None else kind.model_validate({})


def _forge_kinds() -> tuple[type[ForgeSettings], ...]:
    """The settings of every forge of `conjunction.forges.DRIVERS`."""
    from conjunction import forges  # the forges' settings build on this module

    return tuple(driver.settings for driver in forges.DRIVERS)


def _aliases(model: type[BaseModel]) -> set[str]:
    return {
        str(info.validation_alias) for info in model.model_fields.values() if info.validation_alias
    }


def variables() -> frozenset[str]:
    """The environment variables settings are read from: the server's and every forge's."""
    return frozenset(_aliases(Settings)).union(*(_aliases(kind) for kind in _forge_kinds()))


def _listing(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _is(words: list[str]) -> str:
    return "is" if len(words) == 1 else "are"


def _half_configured(forge: type[ForgeSettings], given: set[str]) -> str | None:
    """What a forge that has some of its variables but not all it needs lacks."""
    present = [name for need in forge.needs for name in need if name in given]
    present += [name for name in forge.extras if name in given]
    missing = [need for need in forge.needs if not given.intersection(need)]
    if not (present and missing):
        return None
    names = [need[0] if len(need) == 1 else f"{need[0]} (or {need[1]})" for need in missing]
    return (
        f"{forge.title} half configured: {_listing(present)} {_is(present)} set but "
        f"{_listing(names)} {_is(names)} missing"
    )


def _variable(model: type[BaseModel], error: ErrorDetails) -> str:
    name = str(error["loc"][0]) if error["loc"] else ""
    info = model.model_fields.get(name)
    return str(info.validation_alias) if info is not None else name


def _problem(model: type[BaseModel], error: ErrorDetails) -> str | None:
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
    return f"{_variable(model, error)}: {text}"


M = TypeVar("M", bound=BaseModel)


def _own(model: type[BaseModel], given: Mapping[str, str]) -> dict[str, object]:
    aliases = _aliases(model)
    return {name: value for name, value in given.items() if name in aliases}


def _validated(model: type[M], values: Mapping[str, object], problems: list[str]) -> M | None:
    """`model` from `values`; None, and each problem added to `problems`, where they are bad."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems += [line for error in exc.errors() if (line := _problem(model, error))]
    except SettingsError as exc:  # raised while reading a default, e.g. the key file
        problems.append(str(exc))
    return None


def settings_from(env: Mapping[str, str]) -> Settings:
    """Settings from a mapping of variables (an empty value counts as unset).

    Raises SettingsError with one line naming each problem.
    """
    known = variables()
    given = {name: value for name, value in env.items() if name in known and value != ""}
    kinds = _forge_kinds()
    problems = [line for kind in kinds if (line := _half_configured(kind, set(given)))]
    forge_problems: list[str] = []
    forges = [
        forge
        for kind in kinds
        if (forge := _validated(kind, _own(kind, given), forge_problems)) is not None
    ]
    settings = _validated(Settings, _own(Settings, given) | {"forges": tuple(forges)}, problems)
    problems += forge_problems
    if settings is None or problems:
        raise SettingsError("; ".join(problems))
    return settings


def _variables(env_file: str | Path) -> dict[str, str]:
    """The variables of settings that `.env` and the environment give (an empty one is unset)."""
    names = variables()

    def given(variables: Mapping[str, str | None]) -> dict[str, str]:
        return {name: value for name, value in variables.items() if name in names and value}

    return given(dotenv_values(env_file)) | given(os.environ)


def load_settings(env_file: str | Path = ".env") -> Settings:
    """Settings from the process environment over `.env` (if present)."""
    return settings_from(_variables(env_file))


def raw_setting(name: str, env_file: str | Path = ".env") -> str | None:
    """One variable as the environment over `.env` gives it, unchecked (for commands that need
    one setting and should work where the server's others are not configured)."""
    return _variables(env_file).get(name)
