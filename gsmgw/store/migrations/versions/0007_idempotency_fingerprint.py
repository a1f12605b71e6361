"""messages.idempotency_fingerprint, and an index for per-key listing

A reused Idempotency-Key with a different request is a conflict, not a replay:
the first message of a keyed request stores a fingerprint of the request. A key
that is not admin lists only its own messages, newest first.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_fingerprint", sa.String(length=64), nullable=True))
    op.create_index("ix_messages_owner", "messages", ["api_key_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_messages_owner", table_name="messages")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("idempotency_fingerprint")
