"""Logs are JSON lines carrying the context handlers pass in `extra`."""

from __future__ import annotations

import json
import logging

from bot.logs import JsonFormatter


def test_json_line_with_context() -> None:
    record = logging.LogRecord("conjunction", logging.INFO, __file__, 1, "got %s", ("push",), None)
    record.delivery_id = "d-1"
    record.installation_id = 42
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "got push"
    assert entry["level"] == "info"
    assert (entry["delivery_id"], entry["installation_id"]) == ("d-1", 42)
    assert "args" not in entry and "msg" not in entry


def test_exceptions_are_kept() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]
