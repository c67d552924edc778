"""Default owners from a CODEOWNERS file (GitHub's, or GitLab's with its sections)."""

from __future__ import annotations

import re

from conjunction.config.repo_config import MAX_ITEMS

CATCH_ALL_PATTERNS = ("*", "**")
# GitLab: `[Section]`, `^[Optional section]`, `[Section][2]`, then the section's default owners
SECTION = re.compile(r"^\^?\[[^\]]*\](?:\[\d+\])?(?P<owners>.*)$")


def catch_all_owners(text: str) -> list[str]:
    """Owners of the last `*` (or `**`) rule, '@' stripped from users and teams; [] if none.

    A later catch-all with no owners wins too (it un-assigns), so it also yields [] — except in
    a GitLab section, where a rule without owners has the section's default owners. At most
    MAX_ITEMS owners are taken (the first ones), as for `owners:` in `.conjunction.yml`.
    """
    owners: list[str] = []
    defaults: list[str] = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        section = SECTION.match(line)
        if section is not None:
            defaults = section["owners"].split()
            continue
        pattern, *names = line.split()
        if pattern in CATCH_ALL_PATTERNS:
            owners = [name.removeprefix("@") for name in (names or defaults)[:MAX_ITEMS]]
    return owners
