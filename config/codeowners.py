"""Default owners from a CODEOWNERS file."""

from __future__ import annotations

CATCH_ALL_PATTERNS = ("*", "**")


def catch_all_owners(text: str) -> list[str]:
    """Owners of the last `*` (or `**`) rule, '@' stripped from users and teams; [] if none.

    A later catch-all with no owners wins too (it un-assigns), so it also yields [].
    """
    owners: list[str] = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        # GitLab section headers like `[Docs]` or `^[Docs] @team` are not rules
        if not line or line.startswith(("#", "[", "^[")):
            continue
        pattern, *names = line.split()
        if pattern in CATCH_ALL_PATTERNS:
            owners = [name.removeprefix("@") for name in names]
    return owners
