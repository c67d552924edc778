"""Named secrets from CONJUNCTION_SECRETS_FILE: each a value and the project globs that may use it.

The file maps names to `{value, projects}`:

    acme-ci: {value: "…", projects: ["github.com/acme/*"]}

`SecretStore` reads it when first asked and again whenever the file changes (its size, inode or
modification time) or on `reload()` (SIGHUP), with no restart; a file that became unreadable or
malformed keeps the last good secrets in force and is logged. Configs name secrets, never hold
their values, and a value leaves this module only for a project its globs allow. No message of
this module (problems, errors, logs) ever carries a value.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

import yaml

from conjunction.names import project_key

log = logging.getLogger(__name__)

SETTING = "CONJUNCTION_SECRETS_FILE"


class SecretsFileError(ValueError):
    """The secrets file cannot be read or has the wrong shape; the message never holds a value."""


class SecretRefused(LookupError):
    """A secret that does not exist or that the project may not use; `str()` says which."""


@dataclass(frozen=True)
class NamedSecret:
    value: str = field(repr=False)
    projects: tuple[str, ...]

    def allows(self, project: str) -> bool:
        """Globs compare as project names do: case-insensitively."""
        key = project_key(project)
        return any(fnmatchcase(key, glob.lower()) for glob in self.projects)


def load_secrets(path: str | Path) -> dict[str, NamedSecret]:
    """The named secrets of a secrets file; SecretsFileError saying what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretsFileError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SecretsFileError(f"{path} is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        # only the problem and its line: YAML's own message quotes the text around it
        mark = getattr(exc, "problem_mark", None)
        where = f" on line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise SecretsFileError(f"{path} is not valid YAML ({problem}{where})") from None
    if not isinstance(data, dict):
        raise SecretsFileError(f"{path} must map secret names to {{value, projects}}")
    secrets = {}
    for name, entry in data.items():
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("value"), str)
            or not isinstance(entry.get("projects", []), list)
        ):
            raise SecretsFileError(f"secret {name!r} needs a string 'value' and a list 'projects'")
        unknown = sorted(set(map(str, entry)) - {"value", "projects"})
        if unknown:
            raise SecretsFileError(f"secret {name!r} has unknown keys: {', '.join(unknown)}")
        secrets[str(name)] = NamedSecret(entry["value"], tuple(map(str, entry.get("projects", []))))
    return secrets


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


class SecretStore:
    """The secrets of one file (or none), current as the file changes."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._secrets: Mapping[str, NamedSecret] = {}
        self._seen: tuple[int, int, int] | None = None
        self._lock = threading.Lock()  # configs are parsed in threads too
        self._read_once = False

    def reload(self) -> None:
        """Read the file again now (SIGHUP), whether or not it looks changed."""
        with self._lock:
            self._read()

    def _current(self) -> Mapping[str, NamedSecret]:
        path = self.path
        if path is not None and not self._is_current(path):
            with self._lock:
                if not self._is_current(path):
                    self._read()
        return self._secrets

    def _is_current(self, path: Path) -> bool:
        return self._read_once and _signature(path) == self._seen

    def _read(self) -> None:
        if self.path is None:
            return
        self._seen = _signature(self.path)
        self._read_once = True
        try:
            self._secrets = load_secrets(self.path)
        except SecretsFileError as exc:
            log.warning("%s: %s; the secrets read before stay in force", SETTING, exc)
            return
        log.info("%s: read %d secret(s) from %s", SETTING, len(self._secrets), self.path)

    def problem(self, name: str, project: str) -> str | None:
        """Why `project` may not use the secret `name`, or None when it may."""
        secret = self._current().get(name)
        if secret is None:
            if self.path is None:
                return f"secret {name!r} is unknown: this server has no {SETTING}"
            return f"secret {name!r} is not in the server's secrets file"
        if not secret.allows(project):
            return f"secret {name!r} may not be used by {project}"
        return None

    def value(self, name: str, project: str) -> str:
        """The value of a secret `project` may use; SecretRefused otherwise."""
        problem = self.problem(name, project)
        if problem is not None:
            raise SecretRefused(problem)
        return self._current()[name].value
