"""jobs name whose forge budget they spend, so a worker bounds how many of one owner run at once

Revision ID: 0006_perf
Revises: 0004_git
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_perf"
down_revision = "0005_trust"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.add_column(sa.Column("concurrency_key", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch_op:
        batch_op.drop_column("concurrency_key")
