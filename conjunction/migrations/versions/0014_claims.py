"""claims: a trigger dispatched by a webhook with `claim: true` is claimed by its run

`events.claim` says the trigger awaits its run's claim (`POST /api/v1/claims`); the claimant
becomes its `run_id`, up to 200 characters (PostgreSQL keeps to a column's length, SQLite does
not: there the column is left as it is rather than copying the table). `ix_events_claims` holds
the triggers still awaiting a claim, so a claim reads a few rows however long a project's
history is.

Revision ID: 0014_claims
Revises: 0013_graph_version
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_claims"
down_revision = "0013_graph_version"
branch_labels = None
depends_on = None

# as SQLAlchemy renders `conjunction.models.AWAITING_CLAIM` on each database, so that a claim's
# query is seen to fit the index
AWAITING_CLAIM = {
    "postgresql": "claim IS true AND run_id IS NULL AND result IS NULL",
    "sqlite": "claim IS 1 AND run_id IS NULL AND result IS NULL",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("events") as batch:
        batch.add_column(
            sa.Column("claim", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    if dialect == "postgresql":
        op.alter_column(
            "events", "run_id", type_=sa.String(length=200), existing_type=sa.String(length=100)
        )
    where = sa.text(AWAITING_CLAIM[dialect])
    op.create_index(
        "ix_events_claims",
        "events",
        ["project", "created_at"],
        postgresql_where=where,
        sqlite_where=where,
    )


def downgrade() -> None:
    op.drop_index("ix_events_claims", table_name="events")
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "events", "run_id", type_=sa.String(length=100), existing_type=sa.String(length=200)
        )
    with op.batch_alter_table("events") as batch:
        batch.drop_column("claim")
