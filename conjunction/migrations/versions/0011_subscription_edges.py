"""subscription edges read from an index: `ix_subscriptions_upstream` also holds each edge's
downstream (and its id, the order subscribers are listed in), so the fan-out's graph walk
reads no table row

Revision ID: 0011_subscription_edges
Revises: 0010_excerpts
"""

from __future__ import annotations

from alembic import op

revision = "0011_subscription_edges"
down_revision = "0010_excerpts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _index_upstream("upstream", "id", "downstream")


def downgrade() -> None:
    _index_upstream("upstream")


def _index_upstream(*columns: str) -> None:
    with op.batch_alter_table("subscriptions") as batch:
        batch.drop_index("ix_subscriptions_upstream")
        batch.create_index("ix_subscriptions_upstream", list(columns), unique=False)
