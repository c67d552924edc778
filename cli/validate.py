"""`conjunction validate PATH...`: check `.conjunction.yml` files, and the secrets they name."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

from bot.names import project_name
from bot.secrets import NamedSecret, SecretsFileError, load_secrets
from config.repo_config import MAX_CONFIG_BYTES, ConfigError, SecretCheck, parse_config
from config.settings import raw_setting


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument(
        "--secrets",
        type=Path,
        metavar="FILE",
        help="check the secrets the file names against this secrets file "
        "(default: CONJUNCTION_SECRETS_FILE)",
    )
    parser.add_argument(
        "--project",
        type=_project,
        metavar="PROJECT",
        help="the project the file belongs to, e.g. github.com/acme/app: secrets it may not "
        "use are refused (without it only unknown secrets are)",
    )


def run(args: argparse.Namespace) -> int:
    return validate_files(args.paths, args.secrets, args.project)


def _project(text: str) -> str:
    try:
        return project_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def validate_files(paths: list[Path], secrets_file: Path | None, project: str | None) -> int:
    """0 when every file is valid, 1 when one is not, 2 when one cannot be read."""
    secrets_path = secrets_file or raw_setting("CONJUNCTION_SECRETS_FILE")
    check = None
    if secrets_path is not None:
        try:
            secrets = load_secrets(secrets_path)
        except SecretsFileError as exc:
            print(f"conjunction: secrets file: {exc}", file=sys.stderr)
            return 2
        check = partial(_secret_problem, secrets, project)
    worst = max(validate_file(path, check) for path in paths)
    if worst == 0:
        print("ok")
    return worst


def _secret_problem(secrets: dict[str, NamedSecret], project: str | None, name: str) -> str | None:
    if name not in secrets:
        return f"secret {name!r} is not in the secrets file"
    if project is not None and not secrets[name].allows(project):
        return f"secret {name!r} may not be used by {project}"
    return None


def validate_file(path: Path, secrets: SecretCheck | None = None) -> int:
    """0 when the file is valid; else its problems on stderr and 1, or 2 when unreadable."""
    try:
        with path.open("rb") as file:
            # one byte past the limit tells an oversized file, even an endless one like /dev/zero
            head = file.read(MAX_CONFIG_BYTES + 1)
        if len(head) > MAX_CONFIG_BYTES:
            print(f"{path}: file is over the limit of {MAX_CONFIG_BYTES} bytes", file=sys.stderr)
            return 1
        parse_config(head, secrets=secrets)
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return 1
    return 0
