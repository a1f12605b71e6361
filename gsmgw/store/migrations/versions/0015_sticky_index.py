"""ix_messages_to_number becomes ix_messages_to_number_sent (to_number, sent_at)

The sticky-SIM lookup (which SIM last sent to this number, issue 17) read every
message to the number in the sticky window on each enqueue; with this index it
reads the newest one (ORDER BY sent_at DESC LIMIT 1), whatever the history. The
index's first column serves every lookup by number the old one served.

Revision ID: 0015
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_to_number_sent", "messages", ["to_number", "sent_at"])
    op.drop_index("ix_messages_to_number", table_name="messages")


def downgrade() -> None:
    op.create_index("ix_messages_to_number", "messages", ["to_number"])
    op.drop_index("ix_messages_to_number_sent", table_name="messages")
