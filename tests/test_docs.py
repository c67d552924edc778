"""The operator's documents hold together: every setting in the README's one settings table."""

from __future__ import annotations

from pathlib import Path

from conjunction.config.settings import variables

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_a_row_of_one_settings_table() -> None:
    section = (ROOT / "README.md").read_text().split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    rows = [number for number, line in enumerate(lines) if line.startswith("|")]
    table = lines[rows[0] : rows[-1] + 1]
    # a line of text among the rows would end the table there, and the rest render as text
    assert [line for line in table if not line.startswith("|")] == []
    missing = [name for name in sorted(variables()) if f"`{name}`" not in "\n".join(table)]
    assert missing == []
