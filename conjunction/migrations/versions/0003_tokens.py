"""project tokens get a name and the time they were last used

Revision ID: 0003_tokens
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

import conjunction.models

revision = "0003_tokens"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("project_tokens") as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("last_used_at", conjunction.models.UTCDateTime(), nullable=True)
        )
    tokens = sa.table(
        "project_tokens", sa.column("name", sa.String), sa.column("prefix", sa.String)
    )
    # a token made before names existed is named by its prefix, as `token list` shows it
    op.execute(tokens.update().where(tokens.c.name.is_(None)).values(name=tokens.c.prefix))
    with op.batch_alter_table("project_tokens") as batch_op:
        batch_op.alter_column("name", existing_type=sa.String(length=100), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("project_tokens") as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("name")
