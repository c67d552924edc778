"""the run model: a build's origin and how it came, a trigger's step, state and attempt, and
what `details` held under untyped keys, each in a column of its own

Revision ID: 0007_run_model
Revises: 0006_perf
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007_run_model"
down_revision = "0006_perf"
branch_labels = None
depends_on = None

COLUMNS: list[sa.Column[Any]] = [
    sa.Column("via", sa.String(length=8), nullable=True),
    sa.Column("step", sa.String(length=16), nullable=True),
    sa.Column("state", sa.String(length=16), nullable=True),
    sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"),
    sa.Column("change_number", sa.Integer(), nullable=True),
    sa.Column("change_url", sa.Text(), nullable=True),
    sa.Column("base_sha", sa.String(length=64), nullable=True),
    sa.Column("upstream_sha", sa.String(length=64), nullable=True),
    sa.Column("upstream_build_id", sa.String(length=32), nullable=True),
    sa.Column("chain", sa.JSON(), nullable=False, server_default="[]"),
    sa.Column("waiting", sa.JSON(), nullable=False, server_default="{}"),
    sa.Column("confirming", sa.String(length=16), nullable=True),
    sa.Column("last_passed_sha", sa.String(length=64), nullable=True),
    sa.Column("last_passed_build_id", sa.String(length=32), nullable=True),
    sa.Column("hint", sa.String(length=16), nullable=True),
    sa.Column("notified", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("fallout", sa.String(length=300), nullable=True),
    sa.Column("changes", sa.JSON(), nullable=True),
    sa.Column("artifacts", sa.JSON(), nullable=False, server_default="[]"),
    sa.Column("ci_metadata", sa.JSON(), nullable=True),
]


def state_of(row: Any) -> str | None:
    """A trigger's state, from what the old columns say of it."""
    if row.kind != "trigger":
        return None
    if row.result is None:
        return "started" if row.started_at else "sending" if row.sending_at else "planned"
    if row.result == "timed_out":
        return "timed_out"
    if row.result == "skipped":
        return "superseded" if (row.reason or "").startswith("superseded by") else "skipped"
    return "finished"


def columns_of(row: Any) -> dict[str, Any]:
    details = row.details if isinstance(row.details, dict) else json.loads(row.details or "{}")
    confirmation = details.get("confirmation") or {}
    return {
        "step": (details.get("step") or "first") if row.kind == "trigger" else None,
        "state": state_of(row),
        "upstream_sha": details.get("upstream_sha"),
        "upstream_build_id": details.get("upstream_event"),
        "chain": details.get("chain") or [],
        "waiting": details.get("waiting") or {},
        "confirming": confirmation.get("step"),
        "last_passed_sha": confirmation.get("last_passed_sha"),
        "last_passed_build_id": confirmation.get("last_passed_upstream"),
        "hint": details.get("hint"),
        "notified": bool(details.get("notified")),
        "fallout": details.get("fallout"),
        "changes": details.get("changes"),
        "artifacts": details.get("artifacts") or [],
        "ci_metadata": details.get("metadata"),
    }


def upgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        for column in COLUMNS:
            batch_op.add_column(column._copy())
    bind = op.get_bind()
    events = sa.table(
        "events",
        sa.column("id", sa.String),
        *(sa.column(column.name, column.type) for column in COLUMNS),
    )
    old = sa.text("SELECT id, kind, result, reason, started_at, sending_at, details FROM events")
    rows = bind.execute(old).all()
    for start in range(0, len(rows), 500):
        bind.execute(
            events.update().where(events.c.id == sa.bindparam("event_id")),
            [{"event_id": row.id, **columns_of(row)} for row in rows[start : start + 500]],
        )
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_column("details")
        batch_op.create_index("ix_events_run", ["project", "run_id"], unique=False)
    op.create_table(
        "trigger_results",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("taken", sa.Boolean(), nullable=False),
        sa.Column("reported_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_trigger_results_event", "trigger_results", ["event_id"])
    with op.batch_alter_table("issue_links") as batch_op:
        batch_op.add_column(sa.Column("last_attempt", sa.Integer(), nullable=True))
    op.create_table(
        "tags",
        sa.Column("project", sa.String(length=300), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("project", "name"),
    )
    op.create_index("ix_tags_sha", "tags", ["sha"])
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_index("ix_tags_sha", table_name="tags")
    op.drop_table("tags")
    with op.batch_alter_table("issue_links") as batch_op:
        batch_op.drop_column("last_attempt")
    op.drop_index("ix_trigger_results_event", table_name="trigger_results")
    op.drop_table("trigger_results")
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_index("ix_events_run")
        batch_op.add_column(sa.Column("details", sa.JSON(), nullable=False, server_default="{}"))
        for column in reversed(COLUMNS):
            batch_op.drop_column(column.name)
