"""A code host over git itself, for repositories on any git server (Gitea, Bitbucket, Gerrit,
sourcehut, a plain `git daemon`).

Everything is read with the git command line, run without a shell, in a bare cache repository
per project: a shallow, blob-filtered fetch (`--depth=1 --filter=blob:none`) brings commits and
trees, and only the blobs of the files read are fetched. Nothing is cloned in full.

Credentials come from a named secret and reach git as an HTTP header in its environment,
scoped to the repository's host; they are never on a command line, in the cache repository's
config, or in a log or error message.

A git server has no API for statuses, comments or issues: those calls do nothing here. The
project's results are shown on the dashboard, and on its upstream where that is on a forge.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import os
import re
import signal
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from conjunction.codehost import (
    COMMITS_LISTED,
    CommentRef,
    Commit,
    CommitRange,
    CommitReport,
    IssueRef,
    ProjectInfo,
)
from conjunction.config.repo_config import ConfigError
from conjunction.names import project_key, project_name
from conjunction.runs import Change

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMES = ("https", "http", "ssh", "git", "file")
GIT_TIMEOUT = 120.0  # seconds for one git command, fetches included
MAX_FILE_BYTES = 1024 * 1024  # a file read through git; GitHub's contents API stops there too
HISTORY_DEPTHS = (50, 250, 1000)  # how far a commit list deepens the cache, step by step
COMPARE_TIME_LIMIT = 20.0  # seconds for changed files or a commit list, else they are unknown
_OUTPUT_LIMIT = 16 * 1024 * 1024
_ERROR_LIMIT = 4096
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_SCP_LIKE = re.compile(r"(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:]+):(?P<path>[^/].*)")
_BAD_BRANCH = re.compile(r"^[-/.]|\.\.|[\x00-\x20\x7f~^:?*\[\\]|@\{|/\.|\.lock(?:/|$)|[/.]$|//")
_HOST = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?|[0-9a-f:.]*:[0-9a-f:.]*")
_LOOPBACK_NAMES = ("localhost",)
_TRANSPORTS = {"http": "http:https", "https": "https", "ssh": "ssh", "git": "git", "file": "file"}


class GitUrlError(ValueError):
    """A URL Conjunction will not read a repository from; the message says why."""


class GitError(Exception):
    """A git command failed; the message (git's own words) holds no credentials."""


@dataclass(frozen=True)
class GitUrl:
    """A repository URL as git is given it, and what it is named after."""

    url: str
    scheme: str  # the transport: ssh for the scp-like `user@host:path`
    host: str | None  # None for file://
    port: int | None
    path: str

    @property
    def project(self) -> str | None:
        """The project name the URL stands for (`git.acme.dev/tools/cli`), or None for a file."""
        if self.host is None:
            return None
        path = self.path.strip("/").removesuffix(".git").strip("/")
        try:
            return project_name(f"{self.host}/{path}")
        except ValueError as exc:
            raise GitUrlError(f"cannot name a project after {self.url}: {exc}") from None

    @property
    def header_scope(self) -> str:
        """The URL prefix an authorization header is sent to (git's `http.<url>.*` config)."""
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{host}{port}/"

    @property
    def is_loopback(self) -> bool:
        if self.host in _LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host or "").is_loopback
        except ValueError:
            return False


def parse_git_url(text: str, *, allow_file: bool = False) -> GitUrl:
    """A git URL of a transport Conjunction reads (https, http, ssh, git, and file:// only when
    `allow_file`), without credentials in it; GitUrlError saying what is wrong."""
    url = text.strip()
    if not url or any(ord(c) < 0x21 or c == "\x7f" for c in url):
        raise GitUrlError(f"not a git URL: {text!r}")
    if "://" not in url:
        match = _SCP_LIKE.fullmatch(url)
        if match is None:
            raise GitUrlError(f"not a git URL: {url!r} (expected https://HOST/PATH or the like)")
        return GitUrl(url, "ssh", _host(match["host"], url), None, match["path"])
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise GitUrlError(f"not a git URL: {url!r} ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise GitUrlError(
            f"{scheme}:// URLs are not read: use https, http, ssh or git (file with --allow-file)"
        )
    if scheme == "file":
        if not allow_file:
            raise GitUrlError(
                "file:// URLs read this machine's own disk: pass --allow-file to allow it"
            )
        return GitUrl(url, scheme, None, None, parts.path)
    if parts.password is not None:
        raise GitUrlError("put credentials in a named secret (--secret NAME), not in the URL")
    if parts.query or parts.fragment:
        raise GitUrlError(f"a git URL has no query or fragment: {url!r}")
    if not parts.hostname:
        raise GitUrlError(f"not a git URL: {url!r} has no host")
    return GitUrl(url, scheme, _host(parts.hostname, url), port, parts.path)


def _host(host: str, url: str) -> str:
    """A host name or IP address; anything else (`-oProxyCommand=…`) is refused."""
    if not _HOST.fullmatch(host.lower()):
        raise GitUrlError(f"not a git URL: {url!r} has no valid host name")
    return host.lower()


@dataclass(frozen=True)
class GitRemote:
    """Where a git-hosted project is read from."""

    url: GitUrl
    secret: str | None = None  # the name of a secret in CONJUNCTION_SECRETS_FILE
    private: bool = False

    def __post_init__(self) -> None:
        if self.secret is None or self.url.scheme == "https":
            return
        if self.url.scheme == "http" and not self.url.is_loopback:
            raise GitUrlError("a secret is sent only over https (or http to this machine)")
        if self.url.scheme == "ssh":
            raise GitUrlError("ssh reads with this machine's own ssh keys, not with a secret")
        if self.url.scheme in ("git", "file"):
            raise GitUrlError(f"{self.url.scheme}:// URLs take no credentials")


RemoteLookup = Callable[[str], Awaitable[GitRemote | None]]
"""The remote of a project (by name), or None when it is not a git-hosted project."""

SecretLookup = Callable[[str, str], str]
"""(secret name, project) -> the secret's value; LookupError when it is unknown or the project
may not use it."""


def authorization(secret: str) -> str:
    """The HTTP header a secret's value becomes: `USER:TOKEN` is Basic auth, a bare token
    is a Bearer token."""
    if ":" in secret:
        return "Authorization: Basic " + base64.b64encode(secret.encode()).decode()
    return f"Authorization: Bearer {secret}"


def git_environment(url: GitUrl, secret: str | None) -> dict[str, str]:
    """The environment git runs in: only this URL's transport, never a prompt, the process's
    own GIT_* variables left out (an inherited GIT_DIR would point git elsewhere) except the
    ssh and TLS ones; the secret as a header sent only to this URL's host."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GIT_") or name.startswith(("GIT_SSH", "GIT_SSL_"))
    }
    env.update(
        GIT_ALLOW_PROTOCOL=_TRANSPORTS[url.scheme],
        GIT_TERMINAL_PROMPT="0",
        GIT_LITERAL_PATHSPECS="1",
        LC_ALL="C",
    )
    if "GIT_SSH" not in env:
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    if secret is not None:
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0=f"http.{url.header_scope}.extraHeader",
            GIT_CONFIG_VALUE_0=authorization(secret),
        )
    return env


class _TooLarge(GitError):
    pass


async def _read(stream: asyncio.StreamReader, limit: int, too_much: Callable[[], None]) -> bytes:
    """At most limit + 1 bytes of a stream; past that, `too_much` is called and reading stops."""
    data = bytearray()
    while chunk := await stream.read(65536):
        data += chunk
        if len(data) > limit:
            too_much()
            break
    return bytes(data)


async def run_git(
    *args: str, cwd: Path, env: dict[str, str], time_limit: float, limit: int = _OUTPUT_LIMIT
) -> bytes:
    """git's standard output; GitError with git's own message when it fails, takes longer than
    `time_limit` seconds or writes more than `limit` bytes."""
    process = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its helpers (git-remote-https, ssh) are stopped with it
    )
    assert process.stdout is not None and process.stderr is not None

    def stop() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    try:
        async with asyncio.timeout(time_limit):
            output, errors = await asyncio.gather(
                _read(process.stdout, limit, stop), _read(process.stderr, _ERROR_LIMIT, stop)
            )
            await process.wait()
    except TimeoutError:
        stop()
        await process.wait()
        raise GitError(f"git {args[0]} took longer than {time_limit:g}s") from None
    except BaseException:
        stop()
        await process.wait()
        raise
    if len(output) > limit:
        raise _TooLarge(f"git {args[0]} wrote more than {limit} bytes")
    if process.returncode != 0:
        message = " ".join(errors.decode("utf-8", "replace").split()) or "no message"
        raise GitError(f"git {args[0]} failed: {message}")
    return output


@dataclass
class _Repository:
    """One project's bare cache repository, and the environment its remote is reached with."""

    path: Path
    remote: GitRemote
    env: dict[str, str] = field(repr=False)
    timeout: float

    async def git(self, *args: str, limit: int = _OUTPUT_LIMIT) -> bytes:
        return await run_git(
            *args, cwd=self.path, env=self.env, time_limit=self.timeout, limit=limit
        )

    async def fetch(self, *what: str, depth: int = 1) -> None:
        await self.git(
            "fetch",
            "--quiet",
            f"--depth={depth}",
            "--filter=blob:none",
            "--no-tags",
            "--no-write-fetch-head",
            "origin",
            *what,
        )

    async def default_branch(self) -> str:
        answer = await self.git("ls-remote", "--symref", "origin", "HEAD")
        for line in answer.decode("utf-8", "replace").splitlines():
            target, _, name = line.partition("\t")
            if name == "HEAD" and target.startswith("ref: refs/heads/"):
                return target.removeprefix("ref: refs/heads/")
        raise GitError("the repository is empty, or its server does not say its default branch")

    async def has_commit(self, sha: str) -> bool:
        # rev-list with --missing never fetches: `cat-file -e` would fetch a missing commit's
        # whole history from the promisor remote
        try:
            await self.git("rev-list", "--missing=print", "--no-walk", f"{sha}^{{commit}}")
        except GitError:
            return False
        return True

    async def commit(self, ref: str) -> str:
        """The commit a branch name or a commit sha stands for, fetched (shallow) if need be."""
        if _SHA.fullmatch(ref):
            if not await self.has_commit(ref):
                await self.fetch(ref)
            return ref
        if _BAD_BRANCH.search(ref):
            raise GitError(f"not a branch name: {ref!r}")
        local = f"refs/remotes/origin/{ref}"
        await self.fetch(f"+refs/heads/{ref}:{local}")
        return (await self.git("rev-parse", "--verify", f"{local}^{{commit}}")).decode().strip()

    async def fetched(self, sha: str) -> bool:
        """Whether the commit is here, fetched now if not; False when the server cannot give it."""
        if await self.has_commit(sha):
            return True
        try:
            await self.fetch(sha)
        except GitError as exc:
            log.info("cannot fetch commit %s: %s", sha, exc)
            return False
        return True

    async def log(self, base: str, head: str) -> list[Commit]:
        lines = await self.git(
            "log",
            f"--max-count={HISTORY_DEPTHS[-1]}",
            "--format=%H%x00%an%x00%s",
            f"{base}..{head}",
        )
        return [
            Commit(sha, title, author)
            for sha, author, title in (
                line.split("\0", 2) for line in lines.decode("utf-8", "replace").splitlines()
            )
        ]

    async def is_ancestor(self, base: str, head: str) -> bool:
        try:
            await self.git("merge-base", "--is-ancestor", base, head)
        except GitError:
            return False
        return True


class GitHost:
    """`conjunction.codehost.CodeHost` for the projects of one host that are read with git.

    `remotes` tells where a project is read from; `secrets` gives the value of a named secret.
    Each project has a bare cache repository under `cache_dir`.
    """

    codeowners_paths: Sequence[str] = (
        "CODEOWNERS",
        "docs/CODEOWNERS",
        ".github/CODEOWNERS",
        ".gitlab/CODEOWNERS",
        ".gitea/CODEOWNERS",
    )

    def __init__(
        self,
        host: str,
        remotes: RemoteLookup,
        secrets: SecretLookup,
        cache_dir: Path,
        *,
        timeout: float = GIT_TIMEOUT,
    ) -> None:
        self._host = host.lower()
        self._remotes = remotes
        self._secrets = secrets
        self._cache_dir = cache_dir
        self._timeout = timeout
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @property
    def host(self) -> str:
        return self._host

    @contextlib.asynccontextmanager
    async def _open(self, project: str) -> AsyncIterator[_Repository]:
        """The project's cache repository, made on first use; one reader at a time."""
        remote = await self._remotes(project)
        if remote is None:
            raise GitError(
                f"{project} is not a git-hosted project (python app.py project add GIT_URL)"
            )
        try:
            secret = self._secrets(remote.secret, project) if remote.secret else None
        except LookupError as exc:
            raise GitError(str(exc)) from None
        key = project_key(project)
        path = self._cache_dir / f"{key}.git"
        async with self._locks[key]:
            if not (path / "HEAD").exists():
                path.mkdir(parents=True, exist_ok=True)
                await run_git(
                    "init", "--bare", "--quiet", "--template=", str(path),
                    cwd=path, env=git_environment(remote.url, None), time_limit=self._timeout,
                )  # fmt: skip
            repository = _Repository(
                path, remote, git_environment(remote.url, secret), self._timeout
            )
            await repository.git("config", "remote.origin.url", remote.url.url)
            yield repository

    async def project_info(self, project: str) -> ProjectInfo:
        async with self._open(project) as repository:
            return ProjectInfo(await repository.default_branch(), repository.remote.private)

    async def read_file(self, project: str, path: str, ref: str | None = None) -> str | None:
        """The file at a branch (fetched now, so the latest) or a commit."""
        async with self._open(project) as repository:
            commit = await repository.commit(ref or await repository.default_branch())
            entry = await repository.git("ls-tree", "-z", commit, "--", path)
            info, _, _ = entry.partition(b"\t")
            if not info or info.split()[1] != b"blob":
                return None  # missing, a directory or a submodule
            oid = info.split()[2].decode()
            try:
                data = await repository.git("cat-file", "blob", oid, limit=MAX_FILE_BYTES)
            except _TooLarge:
                raise GitError(
                    f"{path} in {project} is larger than {MAX_FILE_BYTES} bytes"
                ) from None
            return data.decode("utf-8", errors="replace")

    async def changed_files(self, project: str, base: str, head: str) -> list[str] | None:
        """Paths that differ between the two commits' trees; None when either cannot be
        fetched. Only commits and trees are fetched, no file contents."""
        if not (_SHA.fullmatch(base) and _SHA.fullmatch(head)):
            return None
        return await self._unless_failing(self._changed_files(project, base, head), project)

    async def _changed_files(self, project: str, base: str, head: str) -> list[str] | None:
        async with self._open(project) as repository:
            if not (await repository.fetched(base) and await repository.fetched(head)):
                return None
            names = await repository.git(
                "diff", "--no-renames", "--no-ext-diff", "--name-only", "-z", base, head
            )
        return [name for name in names.decode("utf-8", "replace").split("\0") if name]

    async def commits_between(self, project: str, base: str, head: str) -> CommitRange | None:
        """The commits after base up to head, deepening the cache's history step by step (at
        most HISTORY_DEPTHS[-1] commits); None when base is not found within it."""
        if not (_SHA.fullmatch(base) and _SHA.fullmatch(head)):
            return None
        found = await self._unless_failing(self._commits(project, base, head), project)
        if found is None:
            return None
        oldest_first = tuple(reversed(found))
        return CommitRange(base, head, oldest_first[:COMMITS_LISTED], total=len(found))

    async def commit_list(self, project: str, base: str, head: str) -> list[Commit] | None:
        """Every commit after base up to head, oldest first (at most HISTORY_DEPTHS[-1])."""
        if not (_SHA.fullmatch(base) and _SHA.fullmatch(head)):
            return None
        found = await self._unless_failing(self._commits(project, base, head), project)
        return None if found is None else list(reversed(found))

    async def _commits(self, project: str, base: str, head: str) -> list[Commit] | None:
        async with self._open(project) as repository:
            if not await repository.fetched(head):
                return None
            for depth in (None, *HISTORY_DEPTHS):
                if depth is not None:
                    await repository.fetch(head, depth=depth)
                if await repository.has_commit(base) and await repository.is_ancestor(base, head):
                    return await repository.log(base, head)
            return None

    async def _unless_failing(self, comparing: Awaitable[T | None], project: str) -> T | None:
        """A comparison's answer, or None (unknown) when git fails or it takes longer than
        COMPARE_TIME_LIMIT: an upstream success waits for it before its answer."""
        try:
            async with asyncio.timeout(COMPARE_TIME_LIMIT):
                return await comparing
        except (GitError, TimeoutError) as exc:
            log.info("cannot compare commits of %s: %s", project, exc or "it took too long")
            return None

    async def publish_report(
        self, project: str, sha: str, report: CommitReport, *, status: bool, check: bool
    ) -> None:
        log.debug("%s: a git server has no statuses; the report is on the dashboard", project)

    async def comment_on_change(self, project: str, sha: str, marker: str, body: str) -> None:
        log.debug("%s: a git server has no comments", project)

    async def find_issue(self, project: str, marker: str) -> IssueRef | None:
        return None

    async def open_issue(
        self, project: str, title: str, body: str, labels: Sequence[str]
    ) -> IssueRef:
        """Nothing is opened: a git server has no issues (the pair's state is still kept)."""
        log.debug("%s: a git server has no issues", project)
        return IssueRef(0)

    async def comment_issue(self, project: str, number: int, body: str) -> None:
        log.debug("%s: a git server has no issues", project)

    async def close_issue(self, project: str, number: int, body: str) -> None:
        log.debug("%s: a git server has no issues", project)

    async def report_config(self, project: str, sha: str, error: ConfigError | None) -> None:
        log.debug("%s: a git server has no checks; config problems show on the dashboard", project)

    def compare_url(self, project: str, base: str, head: str) -> str:
        """None to link to: a git server has no web pages (an empty link is left out)."""
        return ""

    def profile_url(self, owner: str) -> None:
        return None  # a git server has no pages of people either

    async def can_write(self, project: str, user: str) -> bool:
        return False  # a git server has no comments to command from, nor permissions to ask

    async def get_change(self, project: str, number: int) -> Change | None:
        return None  # nor pull requests

    async def react(self, comment: CommentRef, emoji: str) -> None:
        log.debug("%s: a git server has no comments", comment.project)

    async def reply(self, comment: CommentRef, body: str) -> None:
        log.debug("%s: a git server has no comments", comment.project)
