"""culprit searches: the range of one failure, its steps and its answer

Revision ID: 0008_bisect
Revises: 0007_run_model
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_bisect"
down_revision = "0007_run_model"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bisects",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("upstream", sa.String(length=300), nullable=False),
        sa.Column("downstream", sa.String(length=300), nullable=False),
        sa.Column("running", sa.String(length=620), nullable=True),
        sa.Column("failure_id", sa.String(length=32), nullable=False),
        sa.Column("base_sha", sa.String(length=64), nullable=False),
        sa.Column("head_sha", sa.String(length=64), nullable=False),
        sa.Column("commits", sa.JSON(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("current_id", sa.String(length=32), nullable=True),
        sa.Column("max_runs", sa.Integer(), nullable=False),
        sa.Column("confirm", sa.Boolean(), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("running"),
    )
    op.create_index("ix_bisects_failure", "bisects", ["failure_id"])
    op.create_index("ix_bisects_current", "bisects", ["current_id"])


def downgrade() -> None:
    op.drop_index("ix_bisects_current", table_name="bisects")
    op.drop_index("ix_bisects_failure", table_name="bisects")
    op.drop_table("bisects")
