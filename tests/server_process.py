"""`python app.py` as a real process, for tests of what signals and crashes do to it.

    with ServerProcess(tmp_path, {"GITHUB_APP_ID": "1", ...}) as server:
        post(server.url + "/webhooks/github", ...)
        server.terminate()          # SIGTERM, then wait for the exit code
    server.log()                    # everything it wrote, to explain a failure

The server runs in `tmp_path` on SQLite (`server.database`) unless the environment given names
another database, on a free port, with no setting inherited from the test's own environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

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

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the server's SQLite database (it may be running: WAL lets readers in)."""
        with contextlib.closing(sqlite3.connect(self.database, timeout=10)) as connection:
            return connection.execute(sql, params).fetchall()
