"""commands in comments: each comment that held commands, taken by the delivery acting on it

Revision ID: 0009_commands
Revises: 0008_bisect
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_commands"
down_revision = "0008_bisect"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "commands",
        sa.Column("forge", sa.String(length=16), nullable=False),
        sa.Column("project", sa.String(length=300), nullable=False),
        sa.Column("comment_id", sa.String(length=64), nullable=False),
        sa.Column("delivery_id", sa.String(length=100), nullable=False),
        sa.Column("author", sa.String(length=300), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("forge", "project", "comment_id"),
    )


def downgrade() -> None:
    op.drop_table("commands")
