"""a confirming re-run names the failure it confirms; a project's runs as an upstream are
found through an index

Revision ID: 0005_trust
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_trust"
down_revision = "0004_git"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        batch_op.add_column(sa.Column("confirms_id", sa.String(length=32), nullable=True))
    op.create_index("ix_events_upstream", "events", ["upstream", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_events_upstream", table_name="events")
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_column("confirms_id")
