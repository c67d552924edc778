"""`python app.py` as a real process, for tests of what signals and crashes do to it.

    with ServerProcess(tmp_path, {"GITHUB_APP_ID": "1", ...}) as server:
        post(server.url + "/webhooks/github", ...)
        server.terminate()          # SIGTERM, then wait for the exit code
    server.log()                    # everything it wrote, to explain a failure

The server runs in `tmp_path` on SQLite (`server.database`) unless the environment given names
another database (`CONJUNCTION_DATABASE_URL`, e.g. PostgreSQL), on a free port, with no setting
inherited from the test's own environment. `kill()` then `start()` restarts it on the same
database; `query` and `execute` reach that database from the test, on either backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg

ROOT = Path(__file__).parent.parent
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerProcess:
    def __init__(
        self, directory: Path, env: Mapping[str, str] | None = None, args: Sequence[str] = ()
    ) -> None:
        self.directory = directory
        self.database = directory / "conjunction.db"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PORT": str(self.port),
            "CONJUNCTION_DATABASE_URL": f"sqlite:///{self.database}",
            **(env or {}),
        }
        self.args = list(args)
        self.database_url = self.env["CONJUNCTION_DATABASE_URL"]
        self._output = directory / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(STOP_TIMEOUT)

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self._process is not None, "the server was not started"
        return self._process

    def start(self) -> None:
        """Start the server and wait until `/healthz` answers 200."""
        with self._output.open("ab") as output:
            self._process = subprocess.Popen(
                [sys.executable, str(ROOT / "app.py"), *self.args],
                cwd=self.directory,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the server did not answer within {START_TIMEOUT:.0f}s:\n{self.log()}")

    def terminate(self) -> int:
        """SIGTERM, as a process manager stops a service; returns the exit code."""
        return self._stop(signal.SIGTERM)

    def kill(self) -> int:
        """SIGKILL: the process dies at once, whatever it was doing."""
        return self._stop(signal.SIGKILL)

    def _stop(self, signum: signal.Signals) -> int:
        self.process.send_signal(signum)
        return self.process.wait(STOP_TIMEOUT)

    def log(self) -> str:
        return self._output.read_text(errors="replace") if self._output.exists() else ""

    def rss(self) -> int:
        """The server's resident memory in bytes (Linux: VmRSS of /proc/PID/status)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert match, "no VmRSS in /proc: resident memory is read on Linux only"
        return int(match[1]) * 1024

    def cpu_seconds(self) -> float:
        """CPU time the server has used so far, user and system (Linux: /proc/PID/stat)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the server's database while it runs (SQLite's WAL lets readers in);
        `?` marks a parameter on both backends."""
        return self._run(sql, params, commit=False)

    def execute(self, sql: str, *params: Any) -> None:
        """Change the server's database, e.g. as time passing would."""
        self._run(sql, params, commit=True)

    def expire_leases(self) -> None:
        """Make every job lease run out now, as it would a minute after its worker died."""
        self.execute(
            "UPDATE jobs SET locked_until = '2000-01-01 00:00:00.000000' WHERE state = 'running'"
        )

    def _run(self, sql: str, params: tuple[Any, ...], *, commit: bool) -> list[tuple[Any, ...]]:
        if self.database_url.startswith("sqlite"):
            with contextlib.closing(sqlite3.connect(self.database, timeout=10)) as connection:
                rows = connection.execute(sql, params).fetchall()
                if commit:
                    connection.commit()
                return rows
        numbered = iter(range(1, len(params) + 1))
        sql = re.sub(r"\?", lambda _: f"${next(numbered)}", sql)
        # in a thread of its own, so that it works from async tests as from plain ones
        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, _postgres(self.database_url, sql, params)).result()


async def _postgres(url: str, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return [tuple(row) for row in await connection.fetch(sql, *params)]
    finally:
        await connection.close()
