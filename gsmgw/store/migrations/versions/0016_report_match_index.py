"""ix_message_parts_report gains sent_at: (modem_id, tp_mr, sent_at); status_reports gets
ix_status_reports_match (modem_id, tp_mr, received_at)

A status report is matched to the parts sent on its modem with its TP-MR within the
report window (``sent_at >= since``). With (modem_id, tp_mr) alone SQLite read every
part ever sent with that TP-MR on the SIM and filtered the window out afterwards:
1/256 of the SIM's kept history per report (issue 17; bench.prof_report_match).
With sent_at in the index it reads the window only.

The other way round, each settle of a sent part looks for reports that overtook it
(unmatched, same modem and TP-MR, in the window): through the only index there was,
on message_id, that read every unmatched report kept (0.5 ms of CPU per settle at
5,000, bench.prof_report_match).

Revision ID: 0016
Revises: 0013
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_message_parts_report", table_name="message_parts")
    op.create_index("ix_message_parts_report", "message_parts", ["modem_id", "tp_mr", "sent_at"])
    op.create_index("ix_status_reports_match", "status_reports", ["modem_id", "tp_mr", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_status_reports_match", table_name="status_reports")
    op.drop_index("ix_message_parts_report", table_name="message_parts")
    op.create_index("ix_message_parts_report", "message_parts", ["modem_id", "tp_mr"])
