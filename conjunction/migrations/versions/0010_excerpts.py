"""failure excerpts: why a failing downstream run failed, stored on its event

Revision ID: 0010_excerpts
Revises: 0009_commands
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_excerpts"
down_revision = "0009_commands"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("excerpt", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("excerpt")
