"""SMPP door: accounts, held parts of long messages, deliver_sm outbox (issue 22)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "smpp_accounts",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("system_id", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("scopes", sa.String(length=100), nullable=False),
        sa.Column("rate_per_s", sa.Integer(), nullable=False),
        sa.Column("daily_quota", sa.Integer(), nullable=False),
        sa.Column("max_binds", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smpp_accounts")),
        sa.UniqueConstraint("system_id", name=op.f("uq_smpp_accounts_system_id")),
    )
    op.create_table(
        "smpp_parts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("system_id", sa.String(length=16), nullable=False),
        sa.Column("group_key", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("part_id", sa.String(length=32), nullable=False),
        sa.Column("user_data", sa.Text(), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smpp_parts")),
        sa.UniqueConstraint("group_key", "seq", name="uq_smpp_parts_group_seq"),
    )
    op.create_index("ix_smpp_parts_created", "smpp_parts", ["created_at"])
    op.create_table(
        "smpp_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("system_id", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("ref", sa.String(length=40), nullable=False),
        sa.Column("pdu", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_smpp_deliveries")),
        sa.UniqueConstraint("event_id", "system_id", "ref", name="uq_smpp_deliveries_event"),
    )
    op.create_index("ix_smpp_deliveries_due", "smpp_deliveries", ["system_id", "state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_smpp_deliveries_due", table_name="smpp_deliveries")
    op.drop_table("smpp_deliveries")
    op.drop_index("ix_smpp_parts_created", table_name="smpp_parts")
    op.drop_table("smpp_parts")
    op.drop_table("smpp_accounts")
