"""The admin console: inbound read marks; indexes for per-window figures and batches.

``message_parts.sent_at`` lets "parts sent in the last hour / day" (throughput,
delivery rate) read one index range instead of every part ever sent;
``messages.batch_id`` gives a batch's progress without a table scan.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("read_at", sa.DateTime(), nullable=True))
    op.create_index("ix_message_parts_sent_at", "message_parts", ["sent_at"])
    op.create_index("ix_messages_batch", "messages", ["batch_id"])


def downgrade() -> None:
    op.drop_index("ix_messages_batch", table_name="messages")
    op.drop_index("ix_message_parts_sent_at", table_name="message_parts")
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_column("read_at")
