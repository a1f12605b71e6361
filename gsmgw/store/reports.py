"""Status reports: stored, and matched to the part they answer in the same transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, insert, select, update

from gsmgw.domain import EventType, MessageState
from gsmgw.numbers import same_number
from gsmgw.store import tables as t
from gsmgw.store.events import insert_message_events
from gsmgw.store.executor import Executor, batchable
from gsmgw.store.messages import settle_states
from gsmgw.store.records import ReportIn, ReportMatch, utcnow


def lock_message(conn: Connection, message_id: str) -> None:
    """Row lock on a message until the transaction ends (nothing on SQLite, whose one
    writer serialises transactions anyway)."""
    if conn.dialect.name == "sqlite":
        return
    conn.execute(select(t.messages.c.id).where(t.messages.c.id == message_id).with_for_update()).first()


class ReportsRepo:
    def __init__(self, db: Executor, *, region: str | None = None) -> None:
        self.db = db
        # Where a national rendering of a recipient is read (gsmgw.numbers).
        self.region = region

    @batchable
    def record_status_report(
        self,
        modem_id: str,
        *,
        tp_mr: int,
        recipient: str,
        status: int,
        category: str,
        meaning: str,
        scts: dt.datetime | None,
        discharge_at: dt.datetime | None,
        window_s: float,
    ) -> ReportMatch:
        """Store a status report and apply it to the part it answers, in one transaction.

        Matched on (SIM, TP-MR, recipient) among parts sent within ``window_s``;
        TP-MR wraps at 256, so among several candidates the part sent closest to
        the report's SCTS (when the SC took the message) wins. A report that
        matches nothing is kept (``message_id`` NULL) and retried whenever a part
        is recorded as sent: it may have overtaken the send's own commit.
        """
        now = utcnow()
        with self.db.tx() as conn:
            report_id = conn.execute(
                insert(t.status_reports)
                .values(
                    modem_id=modem_id,
                    tp_mr=tp_mr,
                    recipient=recipient,
                    status=status,
                    category=category,
                    meaning=meaning,
                    scts=scts,
                    discharge_at=discharge_at,
                    received_at=now,
                )
                .returning(t.status_reports.c.id)
            ).scalar_one()
            rep = ReportIn(modem_id, tp_mr, recipient, status, category, meaning, scts, discharge_at)
            return self.apply_in(conn, report_id, rep, window_s, now)

    def apply_in(
        self, conn: Connection, report_id: int, rep: ReportIn, window_s: float, now: dt.datetime
    ) -> ReportMatch:
        modem_id, tp_mr, recipient, status = rep.modem_id, rep.tp_mr, rep.recipient, rep.status
        category, meaning, scts, discharge_at = rep.category, rep.meaning, rep.scts, rep.discharge_at
        p = t.message_parts
        rows = conn.execute(
            select(p.c.message_id, p.c.seq, p.c.recipient, p.c.sent_at, p.c.state).where(
                p.c.modem_id == modem_id,
                p.c.tp_mr == tp_mr,
                p.c.sent_at >= now - dt.timedelta(seconds=window_s),
            )
        ).all()
        cands = [r for r in rows if same_number(r.recipient, recipient, self.region)]
        if not cands:
            return ReportMatch(report_id=report_id, message_id=None)
        ref = scts or now
        best = min(cands, key=lambda r: abs((r.sent_at - ref).total_seconds()))
        # One report (or settlement) of a message at a time: on PostgreSQL the reports of
        # a multipart message come in on several connections, and each would otherwise
        # see only its own part delivered and leave the message "sent" for ever.
        lock_message(conn, best.message_id)
        conn.execute(
            update(t.status_reports)
            .where(t.status_reports.c.id == report_id)
            .values(message_id=best.message_id, seq=best.seq)
        )
        values: dict[str, Any] = {"report_status": status}
        if category == "delivered":
            values.update(state=MessageState.DELIVERED, delivered_at=discharge_at or now)
        elif category in ("failed", "failed-temporary"):
            values.update(
                state=MessageState.FAILED, error_code=f"report:0x{status:02X}", error_text=meaning
            )
        conn.execute(
            update(p).where(p.c.message_id == best.message_id, p.c.seq == best.seq).values(**values)
        )
        m = t.messages
        msg_state = conn.execute(select(m.c.state).where(m.c.id == best.message_id)).scalar()
        if msg_state not in (MessageState.SENT, MessageState.DELIVERED):
            # Still sending other parts (or already final): the claim's settlement decides.
            return ReportMatch(report_id=report_id, message_id=best.message_id, seq=best.seq)
        states = [
            s for (s,) in conn.execute(select(p.c.state).where(p.c.message_id == best.message_id))
        ]
        settled = settle_states(states)
        new_state = None
        if settled is not None and settled != msg_state:
            mvalues: dict[str, Any] = {"state": settled, "updated_at": now}
            if settled is MessageState.DELIVERED:
                mvalues["delivered_at"] = discharge_at or now
            if settled is MessageState.FAILED:
                mvalues.update(error_code=f"report:0x{status:02X}", error_text=meaning)
            conn.execute(update(m).where(m.c.id == best.message_id).values(**mvalues))
            insert_message_events(conn, EventType.for_message(settled), [best.message_id], now)
            new_state = settled
        return ReportMatch(
            report_id=report_id, message_id=best.message_id, seq=best.seq, new_state=new_state
        )

    def match_waiting(self, conn: Connection, message_id: str, window_s: float) -> None:
        """Reports that arrived before this message's parts were recorded as sent."""
        p, sr = t.message_parts, t.status_reports
        parts = conn.execute(
            select(p.c.modem_id, p.c.tp_mr).where(
                p.c.message_id == message_id, p.c.state == MessageState.SENT, p.c.tp_mr.is_not(None)
            )
        ).all()
        now = utcnow()
        for part in parts:
            waiting = conn.execute(
                select(sr).where(
                    sr.c.modem_id == part.modem_id,
                    sr.c.tp_mr == part.tp_mr,
                    sr.c.message_id.is_(None),
                    sr.c.received_at >= now - dt.timedelta(seconds=window_s),
                )
            ).all()
            for w in waiting:
                rep = ReportIn(w.modem_id, w.tp_mr, w.recipient, w.status, w.category, w.meaning,
                               w.scts, w.discharge_at)
                self.apply_in(conn, w.id, rep, window_s, now)

    @batchable
    def list_status_reports(
        self, *, unmatched_only: bool = False, message_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest first; those matched to ``message_id`` only, if given."""
        q = select(t.status_reports).order_by(t.status_reports.c.id.desc()).limit(limit)
        if unmatched_only:
            q = q.where(t.status_reports.c.message_id.is_(None))
        if message_id is not None:
            q = q.where(t.status_reports.c.message_id == message_id)
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]


__all__ = ["ReportsRepo", "lock_message"]
