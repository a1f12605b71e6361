"""messages.campaign_id, messages.schedule_id, messages.cost_micros

Links a message to the campaign or the recurring schedule that made it, and records
what sending it cost (millionths of the configured currency, summed over its parts),
so that reports can group by campaign and sum costs after the rows are pruned.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("campaign_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("schedule_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("cost_micros", sa.BigInteger(), nullable=True))
    op.create_index("ix_messages_campaign", "messages", ["campaign_id", "state"])
    op.create_index("ix_messages_schedule", "messages", ["schedule_id"])


def downgrade() -> None:
    op.drop_index("ix_messages_schedule", table_name="messages")
    op.drop_index("ix_messages_campaign", table_name="messages")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("cost_micros")
        batch_op.drop_column("schedule_id")
        batch_op.drop_column("campaign_id")
