"""projects read through git itself: their URL and the name of the secret they are read with

Revision ID: 0004_git
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

import conjunction.models

revision = "0004_git"
down_revision = "0003_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "git_projects",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=True),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("created_at", conjunction.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("git_projects")
