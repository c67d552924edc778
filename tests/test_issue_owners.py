"""How a breakage issue names owners: `@` on their own forge, a link to their page on another
(where `@name` would notify whoever has that name there)."""

from __future__ import annotations

from conjunction import texts
from conjunction.adapters import Adapters
from conjunction.engine.issues import Owner, owners_seen_from
from conjunction.forges.github.forge import GitHubForge
from conjunction.forges.gitlab.client import GitLabClient
from conjunction.forges.gitlab.host import GitLabHost


async def _no_client(project: str) -> object:
    raise AssertionError("naming owners calls no forge")


def adapters() -> Adapters:
    github = GitHubForge(_no_client, host="github.com", web_url="https://github.com")  # type: ignore[arg-type]
    gitlab = GitLabHost(
        GitLabClient("https://gitlab.example.com", "token"),
        host="gitlab.example.com",
        web_url="https://gitlab.example.com",
    )
    return Adapters.of(github, gitlab)


def test_owners_on_the_issues_own_forge_are_mentioned() -> None:
    seen = owners_seen_from(
        adapters(), "github.com/acme/app", "github.com/acme/lib", ["alice", "acme/core"]
    )
    assert seen == [Owner("alice", True, "github.com"), Owner("acme/core", True, "github.com")]


def test_names_are_read_as_the_forge_spells_them_not_as_its_host_is_called() -> None:
    """A GitHub Enterprise host reads `@john.doe` as a mention of `john`, as github.com does;
    GitLab reads the whole name, whatever its host is called."""
    enterprise = GitHubForge(_no_client, host="git.acme.dev", web_url="https://git.acme.dev")  # type: ignore[arg-type]
    on_enterprise = owners_seen_from(
        Adapters.of(enterprise), "git.acme.dev/acme/app", "git.acme.dev/acme/lib", ["john.doe"]
    )
    assert on_enterprise == [Owner("john.doe", True, "git.acme.dev", syntax="github")]
    on_gitlab = owners_seen_from(
        adapters(), "gitlab.example.com/g/app", "gitlab.example.com/g/lib", ["john.doe"]
    )
    assert on_gitlab == [Owner("john.doe", True, "gitlab.example.com", syntax="gitlab")]
    body = issue_body(downstream_owners=on_enterprise + on_gitlab, upstream_owners=[])
    assert "Downstream owners: john.doe @john.doe\n" in body


def test_owners_on_another_forge_are_linked_to_their_pages() -> None:
    on_gitlab = owners_seen_from(
        adapters(), "gitlab.example.com/group/app", "github.com/acme/lib", ["alice", "acme/core"]
    )
    assert on_gitlab == [
        Owner("alice", False, "GitHub", "https://github.com/alice"),
        Owner("acme/core", False, "GitHub", "https://github.com/orgs/acme/teams/core"),
    ]
    on_github = owners_seen_from(
        adapters(), "github.com/acme/lib", "gitlab.example.com/group/app", ["bob", "group/sub"]
    )
    assert on_github == [
        Owner("bob", False, "gitlab.example.com", "https://gitlab.example.com/bob"),
        Owner("group/sub", False, "gitlab.example.com", "https://gitlab.example.com/group/sub"),
    ]


def test_owners_on_a_host_without_pages_are_named_without_a_link() -> None:
    seen = owners_seen_from(adapters(), "github.com/acme/lib", "git.acme.dev/tools/cli", ["carol"])
    assert seen == [Owner("carol", False, "git.acme.dev")]


def issue_body(**owners: list[Owner]) -> str:
    return texts.render(
        "issue_body.md",
        marker="<!-- m -->",
        upstream="github.com/acme/lib",
        upstream_private=False,
        hint=None,
        downstream="gitlab.example.com/group/app",
        sha="a" * 40,
        run_url=None,
        compare_url=None,
        trace_url="https://conjunction.test/events/1",
        culprit=None,
        upstream_commits=None,
        downstream_commits=None,
        **owners,
    )


def test_the_issue_body_pings_only_on_the_owners_own_forge() -> None:
    body = issue_body(
        downstream_owners=[Owner("bob", True, "gitlab.example.com", syntax="gitlab")],
        upstream_owners=[
            Owner("alice", False, "GitHub", "https://github.com/alice"),
            Owner("x@y", False, "git.acme.dev"),
        ],
    )
    assert "Downstream owners: @bob\n\nUpstream owners: " in body  # a paragraph each
    assert (
        "Upstream owners: [alice on GitHub](https://github.com/alice) x\\@\u200by on git.acme.dev\n"
    ) in body
    empty = body.replace("@bob", "")
    assert empty.count("@") == 1  # the zero-width joined one, which pings nobody
