"""Short labels for projects shown side by side (matrix headers, graph nodes): the repository's
name, with as much of its path before it as tells it from the others shown with it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


def short_labels(names: Iterable[str]) -> dict[str, str]:
    """Each name's shortest unambiguous tail: `core` for `github.com/acme/core`, but
    `acme/core` and `other/core` where both are shown, and the full name where only the host
    differs. Names compare case-insensitively, as project names do."""
    names = sorted(set(names))
    parts = {name: name.split("/") for name in names}
    tails: dict[int, Counter[str]] = {}

    def tail(name: str, length: int) -> str:
        return "/".join(parts[name][-length:])

    labels = {}
    for name in names:
        for length in range(1, len(parts[name]) + 1):
            if length not in tails:
                tails[length] = Counter(tail(other, length).casefold() for other in names)
            if tails[length][tail(name, length).casefold()] == 1:
                break
        labels[name] = tail(name, length)
    return labels
