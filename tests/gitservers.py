"""Real git repositories for the git host's tests: a working copy that pushes to a bare
repository, served over file://, by `git daemon`, or over smart HTTP behind a token."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web

BRANCH = "trunk"
SEEN = web.AppKey("seen", list[str | None])  # the Authorization header of each HTTP request
_IDENTITY = {
    "GIT_AUTHOR_NAME": "Ada",
    "GIT_AUTHOR_EMAIL": "ada@acme.dev",
    "GIT_COMMITTER_NAME": "Ada",
    "GIT_COMMITTER_EMAIL": "ada@acme.dev",
}


def git(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **_IDENTITY},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


class Repository:
    """`root/NAME` (bare, the one served) and a working copy that commits and pushes to it."""

    def __init__(self, root: Path, name: str) -> None:
        self.bare = root / name
        self.work = root.parent / f"{root.name}-work" / name
        self.bare.mkdir(parents=True)
        self.work.mkdir(parents=True)
        git("init", "--quiet", "--bare", f"--initial-branch={BRANCH}", cwd=self.bare)
        # what forges allow, and a filtered fetch needs
        git("config", "uploadpack.allowFilter", "true", cwd=self.bare)
        git("init", "--quiet", f"--initial-branch={BRANCH}", cwd=self.work)
        git("remote", "add", "origin", str(self.bare), cwd=self.work)

    @property
    def file_url(self) -> str:
        return self.bare.as_uri()

    def commit(self, message: str, files: dict[str, str | None]) -> str:
        """Write (or, for None, delete) files, commit and push; the new commit's sha."""
        for path, text in files.items():
            target = self.work / path
            if text is None:
                target.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        git("add", "--all", cwd=self.work)
        git("commit", "--quiet", "--message", message, cwd=self.work)
        git("push", "--quiet", "origin", BRANCH, cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def has_git_daemon() -> bool:
    exec_path = git("--exec-path", cwd=Path.cwd())
    return shutil.which("git-daemon", path=exec_path) is not None


@contextlib.contextmanager
def git_daemon(root: Path) -> Iterator[str]:
    """`git daemon` serving every repository under root on a free loopback port; its URL."""
    port = free_port()
    daemon = subprocess.Popen(
        [
            "git", "daemon", "--export-all", "--reuseaddr", f"--base-path={root}",
            "--listen=127.0.0.1", f"--port={port}", str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("git daemon did not start")
            time.sleep(0.05)
        yield f"git://127.0.0.1:{port}"
    finally:
        daemon.terminate()
        daemon.wait(10)


def smart_http(root: Path, authorization: str) -> web.Application:
    """git's smart HTTP protocol through `git http-backend`, for requests that carry exactly
    this Authorization header (401 otherwise); each header received is kept in app[SEEN]."""
    seen: list[str | None] = []

    async def serve(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != authorization:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="git"'})
        body = await request.read()
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": request.method,
            "PATH_INFO": request.path,
            "QUERY_STRING": request.query_string,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "GIT_PROTOCOL": request.headers.get("Git-Protocol", ""),
        }
        backend = await asyncio.create_subprocess_exec(
            "git", "http-backend", env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        output, _ = await backend.communicate(body)
        head, _, payload = output.partition(b"\r\n\r\n")
        status, headers = 200, {}
        for line in head.decode().splitlines():
            name, _, value = line.partition(": ")
            if name.lower() == "status":
                status = int(value[:3])
            else:
                headers[name] = value
        return web.Response(status=status, body=payload, headers=headers)

    app = web.Application()
    app[SEEN] = seen
    app.router.add_route("*", "/{path:.*}", serve)
    return app
