"""schedules, sim_keepalive, keepalive_runs

Recurring messages (issue 20 part 3) and per-SIM keep-alive (part 2).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("api_key_id", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("expr", sa.Text, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("start_at", sa.DateTime(), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("missed", sa.String(8), nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("cursor_at", sa.DateTime(), nullable=False),
        sa.Column("next_run_at", sa.DateTime()),
        sa.Column("last_run_at", sa.DateTime()),
        sa.Column("last_batch_id", sa.String(32)),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("skipped", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("claim_host", sa.String(100)),
        sa.Column("claim_until", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_schedules_due", "schedules", ["paused", "next_run_at"])
    op.create_index("ix_schedules_owner", "schedules", ["api_key_id", "id"])
    op.create_table(
        "sim_keepalive",
        sa.Column("modem_id", sa.String(64), primary_key=True),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_success_at", sa.DateTime()),
        sa.Column("last_attempt_at", sa.DateTime()),
        sa.Column("pending_run_id", sa.Integer),
        sa.Column("claim_host", sa.String(100)),
        sa.Column("claim_until", sa.DateTime()),
        sa.Column("expiry_alerted_at", sa.DateTime()),
    )
    op.create_table(
        "keepalive_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("modem_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("ok", sa.Boolean),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("message_id", sa.String(32)),
        sa.Column("host", sa.String(100), nullable=False),
        sa.Column("finished_at", sa.DateTime()),
    )
    op.create_index("ix_keepalive_runs_modem", "keepalive_runs", ["modem_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_keepalive_runs_modem", table_name="keepalive_runs")
    op.drop_table("keepalive_runs")
    op.drop_table("sim_keepalive")
    op.drop_index("ix_schedules_owner", table_name="schedules")
    op.drop_index("ix_schedules_due", table_name="schedules")
    op.drop_table("schedules")
