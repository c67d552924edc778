"""Commands in comments (CONTRACT §9): `/conjunction VERB [ARGS]` on a line of its own, on a
pull or merge request or on a breakage issue. Pure functions: what a comment asks for, and
whether it fits where it was written; `conjunction.engine.commands` acts on it.

Every line of a comment that starts with `/conjunction` is a command, in order, at most
MAX_COMMANDS of them; lines inside a fenced code block and quoted lines (`> /conjunction …`,
someone else's command quoted in a reply) are not.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

PREFIX = "/conjunction"
MAX_COMMANDS = 5  # acted on per comment; the rest are answered as too many
MAX_ARGS = 20  # downstreams named in one command
MAX_ARG_LENGTH = 300  # a project name at most
FENCES = ("```", "~~~")


class Verb(StrEnum):
    TEST = "test"
    RETRY = "retry"
    BISECT = "bisect"
    HELP = "help"


class Place(Enum):
    """Where a comment was written."""

    CHANGE = "change"  # a pull request (GitHub) or merge request (GitLab)
    BREAKAGE = "breakage"  # a breakage issue Conjunction opened
    ISSUE = "issue"  # any other issue


@dataclass(frozen=True)
class Command:
    word: str  # the verb as written, lower-cased ("" for a bare `/conjunction`)
    args: tuple[str, ...] = ()

    @property
    def verb(self) -> Verb | None:
        """The verb, or None for a word that is none."""
        try:
            return Verb(self.word)
        except ValueError:
            return None


def parse(body: str) -> list[Command]:
    """The commands of a comment, in order (every one: the caller acts on MAX_COMMANDS)."""
    commands = []
    fenced = False
    for line in body.splitlines():
        stripped = line.strip()
        if stripped.startswith(FENCES):
            fenced = not fenced
            continue
        words = stripped.split()
        if fenced or not words or words[0].lower() != PREFIX:
            continue
        word = words[1].lower() if len(words) > 1 else ""
        args = tuple(arg[:MAX_ARG_LENGTH] for arg in words[2 : 2 + MAX_ARGS])
        commands.append(Command(word, args))
    return commands


@dataclass(frozen=True)
class Misplaced:
    """Why a known command does not fit where it was written: the places it belongs."""

    verb: Verb
    belongs: str


def misplaced(command: Command, place: Place) -> Misplaced | None:
    """None when the command may be acted on where it was written (CONTRACT §9's table)."""
    verb = command.verb
    if verb is None or verb is Verb.HELP:
        return None
    if verb is Verb.TEST and place is not Place.CHANGE:
        return Misplaced(verb, "on a pull or merge request of an upstream")
    if verb is Verb.BISECT and place is not Place.BREAKAGE:
        return Misplaced(verb, "on a breakage issue Conjunction opened")
    if verb is Verb.RETRY and place is Place.ISSUE:
        return Misplaced(verb, "on a pull or merge request of an upstream, or on a breakage issue")
    return None
