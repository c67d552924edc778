"""Project names: `host/path`, compared case-insensitively, displayed as written."""

from __future__ import annotations


def project_key(name: str) -> str:
    """Project names compare case-insensitively (`github.com/Acme/Lib` is `github.com/acme/lib`)."""
    return name.strip().strip("/").lower()


def split_project(name: str) -> tuple[str, str]:
    """`github.com/acme/lib` -> (`github.com`, `acme/lib`)."""
    host, _, path = name.partition("/")
    return host.lower(), path


def host_of(name: str) -> str:
    return split_project(name)[0]
