"""What a notification says, built from plain data: the pair's new state, the pair, links —
as Slack Block Kit, as the JSON of a generic webhook, and as one IRC line."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from conjunction.results import FLAKY_HINT, Verdict
from conjunction.texts import short

STATES = {
    Verdict.NEW_REGRESSION: "new_regression",
    Verdict.FIXED: "fixed",
    Verdict.FLAKY: "flaky",
    Verdict.ALREADY_BROKEN: "already_broken",
}
EMOJI = {
    "new_regression": ":x:",
    "fixed": ":white_check_mark:",
    "flaky": ":warning:",
    "already_broken": ":no_entry:",
}

HINTS = {
    FLAKY_HINT: f"{FLAKY_HINT} This pair has been alternating between passing and failing on "
    "unchanged commits lately: this may be a flake rather than a change of state.",
}


@dataclass(frozen=True)
class Message:
    state: str  # a `notify.on` word: new_regression, fixed, flaky, already_broken
    verdict: str
    upstream: str
    upstream_sha: str | None
    downstream: str
    downstream_sha: str | None
    event_id: str
    event_url: str
    run_url: str | None = None
    compare_url: str | None = None
    culprit: str | None = None
    hint: str | None = None  # `flaky?`: the pair's history says the verdict may be a flake's

    @property
    def verdict_words(self) -> str:
        """The verdict as the check summary shows it: `new regression (flaky?)`."""
        return f"{self.verdict} ({self.hint})" if self.hint else self.verdict

    @property
    def headline(self) -> str:
        against = f"{self.upstream} at {short(self.upstream_sha)}"
        return {
            "new_regression": f"{self.downstream} broke against {against}",
            "fixed": f"{self.downstream} passes again against {against}",
            "flaky": f"{self.downstream} failed against {against} and passed when run again",
            "already_broken": f"{self.downstream} fails against {against} and against the "
            "upstream commit it last passed with: its own breakage",
        }[self.state]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _slack_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(message: Message) -> dict[str, Any]:
    """A Slack incoming-webhook body: Block Kit, with the headline as its fallback text."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"{EMOJI[message.state]} *{_slack_text(message.verdict_words)}*: "
                f"{_slack_text(message.headline)}",
            },
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Upstream*\n{_slack_text(message.upstream)}"},
                {"type": "mrkdwn", "text": f"*Downstream*\n{_slack_text(message.downstream)}"},
            ],
        },
    ]
    notes = [HINTS.get(message.hint, message.hint) if message.hint else None, message.culprit]
    for note in filter(None, notes):
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_text(note)}]}
        )
    links = [
        ("Trace", message.event_url),
        ("Run", message.run_url),
        ("Changes", message.compare_url),
    ]
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": label}, "url": url}
                for label, url in links
                if url
            ],
        }
    )
    return {
        "text": f"Conjunction: {message.verdict_words}: {message.headline}",
        "blocks": blocks,
    }


def webhook(message: Message) -> dict[str, Any]:
    """The body of a generic webhook notification."""
    return {
        "state": message.state,
        "verdict": message.verdict,
        "hint": message.hint,
        "upstream": {"project": message.upstream, "sha": message.upstream_sha},
        "downstream": {"project": message.downstream, "sha": message.downstream_sha},
        "event": message.event_id,
        "event_url": message.event_url,
        "run_url": message.run_url,
        "compare_url": message.compare_url,
        "culprit": message.culprit,
    }


def irc(message: Message) -> str:
    return f"[conjunction] {message.verdict_words}: {message.headline} {message.event_url}"


def apprise(message: Message) -> tuple[str, str]:
    """The title and plain-text body of an Apprise notification."""
    notes = [HINTS.get(message.hint, message.hint) if message.hint else None, message.culprit]
    links = [
        ("Trace", message.event_url),
        ("Run", message.run_url),
        ("Changes", message.compare_url),
    ]
    lines = [
        message.headline,
        *filter(None, notes),
        *(f"{label}: {url}" for label, url in links if url),
    ]
    return f"Conjunction: {message.verdict_words}", "\n".join(lines)
