from config.codeowners import catch_all_owners


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
