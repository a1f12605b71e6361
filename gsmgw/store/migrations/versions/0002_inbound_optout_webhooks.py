"""inbound parts, opt-out list, webhook outbox (issue 7)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 23:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("concat_ref", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("missing", sa.String(length=200), nullable=False, server_default="")
        )
        batch_op.create_index("ix_inbound_sender", ["sender"], unique=False)

    op.create_table(
        "inbound_parts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dedup_key", sa.String(length=64), nullable=False),
        sa.Column("modem_id", sa.String(length=64), nullable=False),
        sa.Column("sender", sa.String(length=32), nullable=False),
        sa.Column("concat_ref", sa.Integer(), nullable=True),
        sa.Column("concat_bits", sa.Integer(), nullable=True),
        sa.Column("concat_total", sa.Integer(), nullable=False),
        sa.Column("concat_seq", sa.Integer(), nullable=False),
        sa.Column("encoding", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("user_data", sa.Text(), nullable=False),
        sa.Column("pdu", sa.Text(), nullable=False),
        sa.Column("scts", sa.DateTime(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("message_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_parts")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_inbound_parts_dedup_key")),
    )
    with op.batch_alter_table("inbound_parts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbound_parts_group", ["modem_id", "sender", "concat_ref", "message_id"], unique=False
        )

    op.create_table(
        "optouts",
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("number_key", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("keyword", sa.String(length=40), nullable=False),
        sa.Column("inbound_id", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_optouts")),
    )
    with op.batch_alter_table("optouts", schema=None) as batch_op:
        batch_op.create_index("ix_optouts_number_key", ["number_key"], unique=False)

    op.create_table(
        "webhook_cursor",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_webhook_cursor")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("event_id", "url", name="uq_webhook_deliveries_event_url"),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_deliveries_due", ["state", "next_attempt_at"], unique=False
        )
    # Events from before this upgrade are history, not news: webhooks start after them.
    op.execute(
        sa.text(
            "INSERT INTO webhook_cursor (name, last_event_id, updated_at) "
            "SELECT 'main', COALESCE(MAX(id), 0), CURRENT_TIMESTAMP FROM events"
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_due")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_cursor")
    with op.batch_alter_table("optouts", schema=None) as batch_op:
        batch_op.drop_index("ix_optouts_number_key")
    op.drop_table("optouts")
    with op.batch_alter_table("inbound_parts", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_parts_group")
    op.drop_table("inbound_parts")
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_sender")
        batch_op.drop_column("missing")
        batch_op.drop_column("concat_ref")
