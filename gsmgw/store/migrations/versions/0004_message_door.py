"""messages.door and messages.door_data: which door took a message, and its own data

Kannel's DLR request (dlr-url, dlr-mask, ...) used to ride in callback_url as
``kannel-dlr:{json}``; it moves to door_data, and such rows get door "kannel".

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

PREFIX = "kannel-dlr:"


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("door", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("door_data", sa.Text(), nullable=True))
    # substr() is 1-based on both SQLite and PostgreSQL.
    op.execute(
        sa.text(
            "UPDATE messages SET door = 'kannel', door_data = substr(callback_url, :start), callback_url = NULL "
            "WHERE callback_url LIKE :pattern"
        ).bindparams(start=len(PREFIX) + 1, pattern=PREFIX + "%")
    )


def downgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE messages SET callback_url = :prefix || door_data "
            "WHERE door = 'kannel' AND door_data IS NOT NULL"
        ).bindparams(prefix=PREFIX)
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("door_data")
        batch_op.drop_column("door")
