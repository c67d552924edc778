"""Projects on any git host: `project add|refresh|list`, reading through git (file://, git
daemon, smart HTTP with a secret), changed files and commits between commits, a re-read on each
reported build, and a git-hosted downstream of a GitHub upstream from trigger to report."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conjunction.adapters import Adapters
from conjunction.app import create_app, main
from conjunction.codehost import CommitReport, IssueRef
from conjunction.config.settings import Settings
from conjunction.forges.git import GitError, GitHost, GitRemote, parse_git_url
from testkit.memoryhost import MemoryHost
from testkit.payloads import workflow_run
from tests.conftest import post_github, run_jobs, runtime
from tests.gitservers import (
    SEEN,
    Repository,
    free_port,
    git,
    git_daemon,
    has_git_daemon,
    smart_http,
)
from tests.test_adapters import RecordingRunner

LIB = "github.com/acme/lib"
CLI = "git.acme.dev/tools/cli"
PARSER = "git.acme.dev/tools/parser"
CONFIG = """\
upstreams:
  - project: github.com/acme/lib
trigger:
  webhook:
    url: https://ci.acme.dev/hooks/cli
"""
SECRETS = """\
acme-git:
  value: "ada:tok-123"
  projects: ["git.acme.dev/tools/*"]
"""

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    repository = Repository(tmp_path / "served", "tools/cli.git")
    repository.commit(
        "Add the config",
        {
            ".conjunction.yml": CONFIG,
            "docs/CODEOWNERS": "* @alice @acme/cli-team\n",
            "src/main.c": "int main(void) { return 0; }\n",
        },
    )
    return repository


@pytest.fixture
def cli(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    sqlite_url: str,
    no_env: None,
) -> Cli:
    """`python app.py ARGS` on the tests' database: (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONJUNCTION_DATABASE_URL", sqlite_url)
    (tmp_path / "secrets.yml").write_text(SECRETS)
    monkeypatch.setenv("CONJUNCTION_SECRETS_FILE", str(tmp_path / "secrets.yml"))

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


async def in_thread(cli: Cli, *args: str) -> tuple[int, str, str]:
    """The command from an async test: it runs its own event loop."""
    return await asyncio.to_thread(cli, *args)


def add(repo: Repository) -> list[str]:
    """`project add` of the repository by its file:// URL, named CLI."""
    return ["project", "add", repo.file_url, "--allow-file", "--name", CLI]


def added(url: str, name: str = CLI) -> str:
    return (
        f"added {name}, read from {url}\n"
        f"{name}: default branch trunk, public\n"
        "upstreams: github.com/acme/lib\n"
        "owners: alice, acme/cli-team\n"
        "trigger: webhook https://ci.acme.dev/hooks/cli\n"
        f"report its own builds with a project token: python app.py token create {name}\n"
    )


async def project_view(client: Any, name: str = CLI) -> dict[str, Any]:
    answer = await client.get(f"/api/v1/projects/{name}")
    assert answer.status == 200
    view: dict[str, Any] = await answer.json()
    return view


async def test_project_add_reads_config_and_codeowners_over_file_url(
    cli: Cli, repo: Repository, aiohttp_client: Any, settings: Settings
) -> None:
    code, out, err = await in_thread(cli, *add(repo))

    assert (code, out, err) == (0, added(repo.file_url), "")
    client = await aiohttp_client(create_app(settings, adapters=Adapters(), run_workers=False))
    view = await project_view(client)
    assert [spec["project"] for spec in view["upstreams"]] == [LIB]
    assert (view["default_branch"], view["owners"], view["private"]) == (
        "trunk",
        ["alice", "acme/cli-team"],
        False,
    )
    assert await in_thread(cli, "project", "list") == (
        0,
        f"{CLI}  {repo.file_url}  (no secret, public, config ok)\n",
        "",
    )


@pytest.mark.skipif(not has_git_daemon(), reason="git-daemon is not installed with this git")
def test_project_add_over_git_daemon_fetches_only_what_it_reads(
    cli: Cli, repo: Repository, tmp_path: Path
) -> None:
    large = repo.commit("Add a large asset", {"assets/logo.svg": "<svg/>\n" * 50_000})

    with git_daemon(tmp_path / "served") as base:
        url = f"{base}/tools/cli.git"
        code, out, err = cli("project", "add", url)

    name = "127.0.0.1/tools/cli"  # named after the URL's host and path
    assert (code, out, err) == (0, added(url, name), "")
    cache = tmp_path / ".conjunction" / "git" / "127.0.0.1" / "tools" / "cli.git"
    assert git("rev-parse", "--is-shallow-repository", cwd=cache) == "true"
    objects = git("rev-list", "--objects", "--missing=print", "--all", cwd=cache).splitlines()
    missing = {line[1:] for line in objects if line.startswith("?")}
    assert missing == {
        git("rev-parse", f"{large}:{path}", cwd=repo.work)
        for path in ("assets/logo.svg", "src/main.c")
    }
    assert git("rev-list", "--count", "--all", cwd=cache) == "1"  # one commit, not the history


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["ftp://git.acme.dev/tools/cli.git"], "ftp:// URLs are not read: use https, http, ssh"),
        (["file:///srv/git/cli.git"], "file:// URLs read this machine's own disk: pass --allow"),
        (
            ["file:///srv/git/cli.git", "--allow-file"],
            "a file:// URL names no host: give the project's name with --name",
        ),
        (
            ["https://ada:hunter2@git.acme.dev/tools/cli.git"],
            "put credentials in a named secret (--secret NAME), not in the URL",
        ),
        (
            ["https://git.acme.dev/cli.git"],
            "cannot name a project after https://git.acme.dev/cli.git: not a project name: "
            "it needs a host and two path segments",
        ),
        (["git@-oProxyCommand=touch_x:tools/cli"], "has no valid host name"),
        (["git://git.acme.dev/tools/cli.git", "--secret", "acme-git"], "take no credentials"),
        (["git@git.acme.dev:tools/cli.git", "--secret", "acme-git"], "not with a secret"),
        (["http://git.acme.dev/tools/cli.git", "--secret", "acme-git"], "only over https"),
        (
            ["https://git.acme.dev/tools/cli.git", "--secret", "nope"],
            "secret 'nope' is not in the server's secrets file",
        ),
        (
            ["https://git.acme.dev/web/app.git", "--secret", "acme-git"],
            "secret 'acme-git' may not be used by git.acme.dev/web/app",
        ),
    ],
)
def test_project_add_refuses_a_bad_url_before_anything_is_stored(
    cli: Cli, args: list[str], error: str, tmp_path: Path
) -> None:
    code, out, err = cli("project", "add", *args)

    assert (code, out) == (2, "")
    assert err.startswith("conjunction: ") and error in err
    assert "hunter2" not in err
    assert not (tmp_path / "conjunction.db").exists()  # the database was not even opened


def test_a_forge_host_keeps_its_adapter(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from testkit.keys import PRIVATE_KEY_PEM

    for name, value in [
        ("GITHUB_APP_ID", "1"),
        ("GITHUB_PRIVATE_KEY", PRIVATE_KEY_PEM),
        ("GITHUB_WEBHOOK_SECRET", "s"),
    ]:
        monkeypatch.setenv(name, value)

    code, _, err = cli("project", "add", "https://github.com/acme/lib.git")

    assert (code, err) == (
        2,
        "conjunction: github.com is served by the GitHub App (install it on the repository), "
        "not read through git\n",
    )


def test_project_add_of_an_unreachable_url_stores_nothing(cli: Cli) -> None:
    url = f"git://127.0.0.1:{free_port()}/tools/cli.git"  # nothing listens there

    code, out, err = cli("project", "add", url, "--name", CLI)

    assert (code, out) == (1, "")
    assert err.startswith(f"conjunction: cannot read {url}: git ls-remote failed: ")
    assert "unable to connect to 127.0.0.1" in err
    assert cli("project", "list")[1].startswith("no git-hosted projects")


def test_project_add_reports_config_problems_with_their_lines(cli: Cli, repo: Repository) -> None:
    repo.commit(
        "Misspell a key",
        {".conjunction.yml": CONFIG.replace("trigger:", "    brnaches: [main]\ntrigger:")},
    )

    code, out, err = cli(*add(repo))

    assert code == 1
    assert out == f"added {CLI}, read from {repo.file_url}\n{CLI}: default branch trunk, public\n"
    assert err.splitlines() == [
        f"{CLI}: .conjunction.yml: line 3: upstreams.0.brnaches: unknown key 'brnaches', "
        "did you mean 'branches'?",
        ".conjunction.yml is invalid: nothing is indexed until a fixed one is read "
        f"(python app.py project refresh {CLI})",
    ]
    assert cli("project", "list")[1].endswith("(no secret, public, config invalid)\n")

    repo.commit("Fix the key", {".conjunction.yml": CONFIG})
    code, out, err = cli("project", "refresh", CLI)
    assert (code, err) == (0, "")
    assert "upstreams: github.com/acme/lib\n" in out
    assert cli("project", "list")[1].endswith("(no secret, public, config ok)\n")


def test_project_refresh_reads_a_new_commit(cli: Cli, repo: Repository) -> None:
    assert cli(*add(repo))[0] == 0
    repo.commit(
        "Test against the parser too",
        {".conjunction.yml": CONFIG.replace("upstreams:", f"upstreams:\n  - project: {PARSER}")},
    )

    code, out, err = cli("project", "refresh", CLI)

    assert (code, err) == (0, "")
    assert f"upstreams: {PARSER}, {LIB}\n" in out
    assert cli("project", "refresh", "git.acme.dev/tools/nope") == (
        2,
        "",
        "conjunction: git.acme.dev/tools/nope is not a git-hosted project (project list)\n",
    )


@pytest.fixture
def git_host(repo: Repository, tmp_path: Path) -> GitHost:
    remote = GitRemote(parse_git_url(repo.file_url, allow_file=True))

    async def remotes(project: str) -> GitRemote | None:
        return remote if project == CLI else None

    def no_secrets(name: str, project: str) -> str:
        raise LookupError(name)

    return GitHost("git.acme.dev", remotes, no_secrets, tmp_path / "cache")


async def test_changed_files_and_commits_between_two_commits(
    git_host: GitHost, repo: Repository
) -> None:
    first = git("rev-parse", "HEAD", cwd=repo.work)
    fix = repo.commit("Fix main", {"src/main.c": "int main(void) { return 1; }\n"})
    docs = repo.commit("Document it", {"README.md": "# cli\n", "docs/CODEOWNERS": None})
    # the cache holds only the tip so far: the commit list deepens it
    assert await git_host.read_file(CLI, "README.md") == "# cli\n"

    assert await git_host.changed_files(CLI, first, docs) == [
        "README.md",
        "docs/CODEOWNERS",
        "src/main.c",
    ]
    listed = await git_host.commits_between(CLI, first, docs)
    assert listed is not None
    assert [(commit.sha, commit.title) for commit in listed.commits] == [
        (fix, "Fix main"),
        (docs, "Document it"),
    ]
    assert listed.total == 2
    every = await git_host.commit_list(CLI, first, docs)
    assert every is not None and [commit.sha for commit in every] == [fix, docs]
    assert await git_host.commit_list(CLI, docs, first) is None
    assert await git_host.read_file(CLI, "src/main.c", first) == "int main(void) { return 0; }\n"
    assert await git_host.read_file(CLI, "docs/CODEOWNERS", docs) is None
    assert await git_host.read_file(CLI, "src", docs) is None  # a directory
    # a commit the server does not have; a base that is not an ancestor of head
    assert await git_host.changed_files(CLI, first, "f" * 40) is None
    assert await git_host.commits_between(CLI, docs, first) is None


async def test_nothing_is_posted_to_a_git_server(tmp_path: Path) -> None:
    asked: list[str] = []

    async def remotes(project: str) -> GitRemote | None:
        asked.append(project)
        return None

    host = GitHost("git.acme.dev", remotes, lambda *_: "", tmp_path)
    report = CommitReport("failure", "failure", "0 of 1 passed", "https://c.test/e/1", "t", "s")

    await host.publish_report(CLI, "a" * 40, report, status=True, check=True)
    await host.comment_on_change(CLI, "a" * 40, "<!-- marker -->", "body")
    await host.report_config(CLI, "a" * 40, None)
    assert await host.find_issue(CLI, "<!-- marker -->") is None
    assert await host.open_issue(CLI, "title", "body", ["conjunction"]) == IssueRef(0)
    await host.comment_issue(CLI, 0, "body")
    await host.close_issue(CLI, 0, "body")

    assert asked == []  # no git server was even looked up
    assert host.compare_url(CLI, "a" * 40, "b" * 40) == ""  # no page to link to


async def test_credentials_go_as_a_header_to_that_host_only(
    cli: Cli, repo: Repository, tmp_path: Path, aiohttp_server: Any
) -> None:
    expected = "Basic " + base64.b64encode(b"ada:tok-123").decode()
    server = await aiohttp_server(smart_http(tmp_path / "served", expected))
    url = f"http://127.0.0.1:{server.port}/tools/cli.git"  # loopback: a secret may go over http

    code, out, err = await in_thread(
        cli, "project", "add", url, "--secret", "acme-git", "--name", CLI
    )

    assert (code, err) == (0, "")
    assert f"{CLI}: default branch trunk, private\n" in out
    assert server.app[SEEN] and set(server.app[SEEN]) == {expected}
    listing = (await in_thread(cli, "project", "list"))[1]
    assert listing == f"{CLI}  {url}  (secret acme-git, private, config ok)\n"
    cache = tmp_path / ".conjunction" / "git"
    assert not [
        path for path in cache.rglob("*") if path.is_file() and b"tok-123" in path.read_bytes()
    ]

    code, _, err = await in_thread(cli, "project", "add", url, "--name", "git.acme.dev/tools/cli2")

    assert code == 1 and err.startswith(f"conjunction: cannot read {url}: git ls-remote failed")
    assert None in server.app[SEEN]  # asked without the header, refused


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for connection in accepted:
            connection.close()


async def test_a_git_server_that_never_answers_is_given_up(tmp_path: Path) -> None:
    with silent_server() as port:
        remote = GitRemote(parse_git_url(f"git://127.0.0.1:{port}/tools/cli.git"))

        async def remotes(project: str) -> GitRemote:
            return remote

        host = GitHost("git.acme.dev", remotes, lambda *_: "", tmp_path, timeout=0.3)
        with pytest.raises(GitError, match=r"^git ls-remote took longer than 0.3s$"):
            await host.project_info(CLI)


async def test_each_reported_build_reads_the_project_again(
    cli: Cli,
    repo: Repository,
    aiohttp_client: Any,
    settings: Settings,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONJUNCTION_DATABASE_URL", database_url)
    settings = settings.model_copy(update={"database_url": database_url})
    assert (await in_thread(cli, *add(repo)))[0] == 0
    token = (await in_thread(cli, "token", "create", CLI))[1].splitlines()[0]
    sha = repo.commit("Drop the upstream", {".conjunction.yml": "owners: [bob]\n"})
    client = await aiohttp_client(create_app(settings, adapters=Adapters(), run_workers=False))

    answer = await client.post(
        "/api/v1/builds",
        json={"project": CLI, "sha": sha, "ref": "trunk", "result": "success"},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert answer.status == 202
    assert [spec["project"] for spec in (await project_view(client))["upstreams"]] == [LIB]
    await run_jobs(client)
    view = await project_view(client)
    assert (view["upstreams"], view["owners"]) == ([], ["bob"])


async def test_git_hosted_downstream_of_a_github_upstream(
    cli: Cli, repo: Repository, aiohttp_client: Any, settings: Settings
) -> None:
    sha = "c" * 40
    assert (await in_thread(cli, *add(repo)))[0] == 0
    github = MemoryHost()
    runner = RecordingRunner()  # stands in for the webhook runner of `trigger.webhook`
    adapters = Adapters.of(github, runners={"webhook": runner})
    client = await aiohttp_client(create_app(settings, adapters=adapters, run_workers=False))
    engine = runtime(client).engine
    await engine.index_project(LIB, private=False, default_branch="main", config_text=None)

    await post_github(client, "workflow_run", workflow_run("acme/lib", sha))
    await run_jobs(client)

    [request] = runner.started
    assert (request.project, request.upstream, request.upstream_sha, request.default_branch) == (
        CLI,
        LIB,
        sha,
        "trunk",
    )
    assert request.trigger.webhook is not None
    assert request.trigger.webhook.url == "https://ci.acme.dev/hooks/cli"
    answer = await client.post(
        f"/api/v1/events/{request.event_id}/status",
        json={"result": "success", "url": "https://ci.acme.dev/builds/1"},
        headers={"Authorization": f"Bearer {request.callback_token}"},
    )
    assert answer.status == 202
    await run_jobs(client)

    project, (reported_sha, report) = github.of("status")[-1]
    assert (project, reported_sha) == (LIB, sha)
    assert (report.state, report.description) == ("success", "1 of 1 downstream projects passed")
    assert f"| {CLI} | ✅ passed | [run](https://ci.acme.dev/builds/1)" in report.summary
    assert isinstance(adapters.host(CLI), GitHost)  # registered when the server started
