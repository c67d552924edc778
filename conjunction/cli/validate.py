"""`conjunction validate PATH...`: check `.conjunction.yml` files, and the secrets they name."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import yaml

from conjunction.config import bounded_yaml
from conjunction.config.repo_config import MAX_CONFIG_BYTES, ConfigError, SecretCheck, parse_config
from conjunction.config.settings import raw_setting
from conjunction.names import project_name
from conjunction.secrets import NamedSecret, SecretsFileError, load_secrets

WORKFLOWS = Path(".github/workflows")
EVENT_INPUT = "conjunction_event"


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
        config = parse_config(head, secrets=secrets)
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return 1
    if config.trigger.workflow and config.trigger.webhook is None:
        warning = run_name_warning(path.parent / WORKFLOWS / config.trigger.workflow)
        if warning:
            print(f"{path}: warning: {warning}", file=sys.stderr)
    return 0


def run_name_warning(workflow: Path) -> str | None:
    """Why the dispatched workflow beside the config should name its runs after the event, when
    it does not (CONTRACT §7): GitHub then ties its run to its trigger even when it answers a
    dispatch without the run's id, and after a crash Conjunction can tell whether it started."""
    try:
        loaded, _ = bounded_yaml.load(workflow.read_text(errors="replace"))
    except (OSError, ValueError, yaml.YAMLError):
        return None  # not beside the config, or not readable: nothing to say
    run_name = loaded.get("run-name") if isinstance(loaded, dict) else None
    if isinstance(run_name, str) and EVENT_INPUT in run_name:
        return None
    return (
        f"{workflow.name} has no run-name carrying ${{{{ inputs.{EVENT_INPUT} }}}}: without it a "
        "run is tied to its trigger only by the run id GitHub answers with, and a dispatch in "
        "flight when the server stops may be sent again"
    )
