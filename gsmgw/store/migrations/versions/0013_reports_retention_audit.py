"""report_daily, report_monthly, audit_log, job_leases, messages.report_mark

Daily report aggregates that survive pruning, the audit log of admin actions, row
leases for one-host-at-a-time jobs (the pruner), and the rollup's mark on each
message (what it last counted for it).

Revision ID: 0013
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0015"
branch_labels = None
depends_on = None

COUNTERS = (
    "messages", "messages_delivered", "messages_failed", "parts_sent", "parts_delivered",
    "failed_permanent", "failed_transient", "failed_modem", "failed_report", "failed_expired",
    "failed_unknown", "failed_other", "replies", "optouts", "cost_micros",
)


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("report_mark", sa.Text(), nullable=True))
    for table, period, width in (("report_daily", "day", 10), ("report_monthly", "month", 7)):
        op.create_table(
            table,
            sa.Column(period, sa.String(width), nullable=False),
            sa.Column("sim", sa.String(64), nullable=False),
            sa.Column("api_key_id", sa.String(16), nullable=False),
            sa.Column("campaign_id", sa.String(32), nullable=False),
            *[sa.Column(c, sa.BigInteger(), nullable=False) for c in COUNTERS],
            *[sa.Column(f"ttd_b{i:02d}", sa.BigInteger(), nullable=False) for i in range(32)],
            sa.PrimaryKeyConstraint(period, "sim", "api_key_id", "campaign_id", name=f"pk_{table}"),
        )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("host", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_status_reports_message", "status_reports", ["message_id"])
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("until", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_job_leases"),
    )


def downgrade() -> None:
    op.drop_index("ix_status_reports_message", table_name="status_reports")
    op.drop_table("job_leases")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("report_monthly")
    op.drop_table("report_daily")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("report_mark")
