"""subscription edges read from their indexes: each index of `subscriptions` also holds the
other end of the edge, so the fan-out's graph walk reads no table row

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
    _replace(
        {"upstream": ["upstream", "id", "downstream"], "downstream": ["downstream", "upstream"]}
    )


def downgrade() -> None:
    _replace({"upstream": ["upstream"], "downstream": ["downstream"]})


def _replace(columns: dict[str, list[str]]) -> None:
    with op.batch_alter_table("subscriptions") as batch:
        for end, indexed in columns.items():
            batch.drop_index(f"ix_subscriptions_{end}")
            batch.create_index(f"ix_subscriptions_{end}", indexed, unique=False)
