from typing import Any

from aiohttp.test_utils import TestClient

from conjunction.config.codeowners import catch_all_owners
from tests.test_flow import LIB, index


def test_last_catch_all_rule_wins_and_at_is_stripped():
    text = """\
# default owners
* @old-owner

*.py @py-team
*       @alice @acme/lib-team  dev@acme.dev   # the real defaults
/docs/ @docs
"""
    assert catch_all_owners(text) == ["alice", "acme/lib-team", "dev@acme.dev"]


def test_double_star_counts_as_catch_all():
    assert catch_all_owners("** @bob\n") == ["bob"]


def test_no_catch_all_rule():
    assert catch_all_owners("/src/ @alice\n*.md @docs\n# * @commented\n") == []
    assert catch_all_owners("") == []


def test_later_catch_all_without_owners_unassigns():
    assert catch_all_owners("* @alice\n*\n") == []


def test_gitlab_section_headers_are_skipped():
    text = "[Docs] @docs-team\n*.md\n^[Backend]\n* @backend\n"
    assert catch_all_owners(text) == ["backend"]


def test_a_gitlab_section_gives_its_default_owners_to_rules_without_any():
    text = "* @everyone\n[Platform][2] @acme/platform @lead\n*\n"
    assert catch_all_owners(text) == ["acme/platform", "lead"]
    assert catch_all_owners("[Docs] @docs\n*.md\n") == []


NAMES = [f"user{number}" for number in range(5_000)]
MANY = "* " + " ".join(f"@{name}" for name in NAMES) + "\n"


def test_at_most_as_many_owners_as_a_config_list_holds():
    """A catch-all rule naming thousands of owners gives the first MAX_ITEMS (200), as many as
    `owners:` in `.conjunction.yml` may list; a GitLab section's defaults too."""
    assert catch_all_owners(MANY) == NAMES[:200]
    assert catch_all_owners("[All] " + MANY.removeprefix("* ") + "*\n") == NAMES[:200]


async def test_the_project_api_shows_at_most_200_codeowners(client: TestClient[Any, Any]) -> None:
    await index(client, LIB, None, codeowners=MANY)
    project = await (await client.get(f"/api/v1/projects/{LIB}")).json()
    assert project["owners"] == NAMES[:200]
