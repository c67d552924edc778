"""Logs are JSON lines carrying the context handlers pass in `extra`, or text for people."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import JsonFormatter, configure


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


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, given back as it was: `configure` replaces its handlers."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_log_level_and_text_format(
    root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("warning", "text")
    logging.getLogger("conjunction").info("not shown")
    logging.getLogger("conjunction").warning("shown %s", "as text")
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith(" WARNING conjunction: shown as text")


def test_json_format(root_logger: logging.Logger, capsys: pytest.CaptureFixture[str]) -> None:
    configure("debug", "json")
    logging.getLogger("conjunction").debug("shown", extra={"delivery_id": "d-2"})
    entry = json.loads(capsys.readouterr().err)
    assert (entry["level"], entry["message"], entry["delivery_id"]) == ("debug", "shown", "d-2")
