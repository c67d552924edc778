import json
from pathlib import Path

from gidgethub.sansio import Event

FIXTURES = Path(__file__).parent / "fixtures" / "github"


def load_fixtures() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(FIXTURES.glob("*.json"))}


def test_every_fixture_is_a_webhook_event():
    fixtures = load_fixtures()
    assert len(fixtures) >= 14
    for name, data in fixtures.items():
        assert isinstance(data, dict), name
        event_name, _, rest = name.removesuffix(".json").partition(".")
        event = Event(data, event=event_name, delivery_id="x")
        assert event.event == event_name
        assert data.get("action") == (rest or None), name


def test_fixtures_without_installation():
    """These example payloads carry no `installation` key; handlers must cope."""
    missing = sorted(name for name, data in load_fixtures().items() if "installation" not in data)
    assert missing == [
        "check_run.completed.json",
        "check_suite.completed.json",
        "ping.json",
        "workflow_run.completed.json",
    ]
