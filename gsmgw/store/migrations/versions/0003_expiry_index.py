"""Index for the expiry sweep (state, valid_until).

The sweep runs every poll interval; without this index it walks every queued
row, which with a million queued messages costs more than the sends.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_expiry", "messages", ["state", "valid_until"])


def downgrade() -> None:
    op.drop_index("ix_messages_expiry", table_name="messages")
