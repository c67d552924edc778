"""the subscription graph's version: one row, bumped by database triggers whenever a
subscription, or a project's name or `active`, changes; the graph a process keeps
(`conjunction.engine.graph`) is read again when it moved

Row triggers on both databases: an index that rewrites nothing bumps nothing.

Revision ID: 0013_graph_version
Revises: 0012_delivery_lz4
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_graph_version"
down_revision = "0012_delivery_lz4"
branch_labels = None
depends_on = None

BUMP = "UPDATE graph_version SET version = version + 1 WHERE id = 1"
# (trigger, the event it follows)
TRIGGERS = [
    ("subscriptions_insert_graph", "INSERT ON subscriptions"),
    ("subscriptions_update_graph", "UPDATE ON subscriptions"),
    ("subscriptions_delete_graph", "DELETE ON subscriptions"),
    ("projects_update_graph", "UPDATE OF name, active ON projects"),
    ("projects_delete_graph", "DELETE ON projects"),
]


def upgrade() -> None:
    op.create_table(
        "graph_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO graph_version (id, version) VALUES (1, 0)")
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(
            "CREATE FUNCTION bump_graph_version() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
    for name, event in TRIGGERS:
        if postgres:
            op.execute(
                f"CREATE TRIGGER {name} AFTER {event} "
                "FOR EACH ROW EXECUTE FUNCTION bump_graph_version()"
            )
        else:
            op.execute(f"CREATE TRIGGER {name} AFTER {event} BEGIN {BUMP}; END")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for name, event in TRIGGERS:
        table = event.rsplit(" ", 1)[1]
        op.execute(f"DROP TRIGGER {name} ON {table}" if postgres else f"DROP TRIGGER {name}")
    if postgres:
        op.execute("DROP FUNCTION bump_graph_version()")
    op.drop_table("graph_version")
