"""Inbound rules: inbound_messages.tags, rule_runs, rule_replies (issue 19)

``rule_runs`` makes a rule's work on one inbound message happen once (a replayed
outbox event finds its row) and records what a command rule's program returned;
``rule_replies`` is the auto-reply rate limit's window, shared by every gateway on
the store.

Revision ID: 0011
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tags", sa.String(length=500), nullable=True))
    op.create_table(
        "rule_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("inbound_id", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_runs")),
        sa.UniqueConstraint("inbound_id", "rule", "action", name="uq_rule_runs"),
    )
    op.create_table(
        "rule_replies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("sender", sa.String(length=32), nullable=False),
        sa.Column("inbound_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_replies")),
        sa.UniqueConstraint("inbound_id", "rule", name="uq_rule_replies"),
    )
    op.create_index("ix_rule_replies_window", "rule_replies", ["rule", "sender", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_rule_replies_window", table_name="rule_replies")
    op.drop_table("rule_replies")
    op.drop_table("rule_runs")
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_column("tags")
