"""results' meanings in CONTRACT §6 words; the event an issue link last acted on; when a
trigger's start was asked

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import conjunction.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (old word, results it applied to, new word)
VERDICTS = [
    ("broke", ("failure", "error"), "new regression"),
    ("improved", ("success",), "fixed"),
    ("same", ("success",), "passed"),
    ("same", ("failure", "error"), "still failing"),
]


def upgrade() -> None:
    with op.batch_alter_table("issue_links") as batch_op:
        batch_op.add_column(sa.Column("last_event_id", sa.String(length=32), nullable=True))
    with op.batch_alter_table("events") as batch_op:
        batch_op.add_column(
            sa.Column("sending_at", conjunction.models.UTCDateTime(), nullable=True)
        )
    events = sa.table("events", sa.column("change", sa.String), sa.column("result", sa.String))
    for old, results, new in VERDICTS:
        op.execute(
            events.update()
            .where(events.c.change == old, events.c.result.in_(results))
            .values(change=new)
        )
    op.execute(
        events.update()
        .where(events.c.change.in_(["broke", "improved", "same"]))
        .values(change=None)
    )


def downgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_column("sending_at")
    with op.batch_alter_table("issue_links") as batch_op:
        batch_op.drop_column("last_event_id")
