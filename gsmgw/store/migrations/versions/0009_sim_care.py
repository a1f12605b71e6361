"""SIM care: sim_care, sim_usage, sim_contacts, messages.wait_reason, ix_messages_sent_at,
ix_messages_claim_tx

Per-SIM pacing and warm-up state, parts per local day and month, first contacts per
(SIM, number, day) for distinct-recipient caps, and why a queued message waits
(recipient-local quiet hours). Issue 20, parts 1, 4 and 5.

Revision ID: 0009
Revises: 0011 (main's head when this was rebased; 0009 was the number assigned)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sim_care",
        sa.Column("modem_id", sa.String(length=64), primary_key=True),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("next_send_at", sa.DateTime(), nullable=True),
        sa.Column("last_send_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "sim_usage",
        sa.Column("modem_id", sa.String(length=64), primary_key=True),
        sa.Column("period", sa.String(length=10), primary_key=True),
        sa.Column("parts", sa.Integer(), nullable=False),
    )
    op.create_table(
        "sim_contacts",
        sa.Column("modem_id", sa.String(length=64), primary_key=True),
        sa.Column("number", sa.String(length=32), primary_key=True),
        sa.Column("day", sa.String(length=10), primary_key=True),
    )
    op.create_index("ix_sim_contacts_day", "sim_contacts", ["modem_id", "day"])
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("wait_reason", sa.String(length=40), nullable=True))
    op.create_index("ix_messages_sent_at", "messages", ["sent_at"])
    op.create_index("ix_messages_claim_tx", "messages", ["state", sa.text("priority DESC"), "created_at"],
                    sqlite_where=sa.text("transactional = 1"), postgresql_where=sa.text("transactional = true"))


def downgrade() -> None:
    op.drop_index("ix_messages_claim_tx", table_name="messages")
    op.drop_index("ix_messages_sent_at", table_name="messages")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("wait_reason")
    op.drop_index("ix_sim_contacts_day", table_name="sim_contacts")
    op.drop_table("sim_contacts")
    op.drop_table("sim_usage")
    op.drop_table("sim_care")
