"""The spool: webhook deliveries kept on disk while the database cannot take them.

A delivery the database refuses because it is locked or unreachable is written here and answered
as usual; `conjunction.intake` moves it into the database once it answers. One file a delivery,
named by a digest of its forge and id (a delivery written twice is one file), written atomically: to
a temporary file, flushed to disk, renamed, and the directory flushed too, so a file that exists is
whole and survives a power cut. A file that cannot be read back is moved to `rejected/` and kept
there for a person to look at.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SUFFIX = ".json"
REJECTED = "rejected"


class Spool:
    """A directory of spooled deliveries. Its methods block on the disk: call them in a thread."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def put(self, key: str, record: dict[str, Any]) -> Path:
        """Write `record` as the file of `key`, durably; raises OSError when the disk cannot."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / (hashlib.sha256(key.encode()).hexdigest() + SUFFIX)
        temporary = self.directory / f".{uuid.uuid4().hex}.tmp"
        data = json.dumps(record).encode()
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _sync_directory(self.directory)
        return path

    def waiting(self, limit: int) -> list[Path]:
        """Up to `limit` spooled files, the oldest first."""
        if not self.directory.is_dir():
            return []
        files = []
        for path in self.directory.glob(f"*{SUFFIX}"):
            try:
                files.append((path.stat().st_mtime_ns, path))
            except FileNotFoundError:  # drained meanwhile by another process
                continue
        return [path for _, path in sorted(files)[:limit]]

    @staticmethod
    def read(path: Path) -> dict[str, Any]:
        """A spooled record; ValueError when the file is not one (FileNotFoundError when another
        process drained it meanwhile)."""
        record = json.loads(path.read_bytes())
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        return record

    @staticmethod
    def remove(path: Path) -> None:
        path.unlink(missing_ok=True)

    def reject(self, path: Path, reason: str) -> None:
        """Move a file that cannot be stored aside into `rejected/`, with a log line."""
        rejected = self.directory / REJECTED
        rejected.mkdir(exist_ok=True)
        try:
            os.replace(path, rejected / path.name)
        except FileNotFoundError:
            return
        log.error("spooled delivery rejected, kept in %s: %s", rejected / path.name, reason[:500])

    def clean(self) -> None:
        """Delete the temporary files of writes a crash interrupted: never answered, never
        spooled."""
        if self.directory.is_dir():
            for temporary in self.directory.glob(".*.tmp"):
                temporary.unlink(missing_ok=True)


def _sync_directory(directory: Path) -> None:
    """Flush a directory's entries (the rename) to disk."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
