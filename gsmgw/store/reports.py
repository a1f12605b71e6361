"""Status reports: stored, and matched to the part they answer in the same transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, text, update
from sqlalchemy.sql.expression import Executable

from gsmgw.domain import EventType, MessageState
from gsmgw.numbers import same_number
from gsmgw.store import tables as t
from gsmgw.store.events import insert_message_events
from gsmgw.store.executor import Executor, batchable
from gsmgw.store.messages import settle_states
from gsmgw.store.prepared import prebuilt, run, update_message
from gsmgw.store.records import ReportIn, ReportMatch, utcnow


def lock_message(conn: Connection, message_id: str) -> None:
    """Row lock on a message until the transaction ends (nothing on SQLite, whose one
    writer serialises transactions anyway)."""
    if conn.dialect.name == "sqlite":
        return
    conn.execute(select(t.messages.c.id).where(t.messages.c.id == message_id).with_for_update()).first()


_MATCH_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:k))")


def lock_report_matching(conn: Connection, modem_ids: Sequence[str]) -> None:
    """Serialise, per modem, matching a status report with recording a part as sent
    (PostgreSQL; nothing on SQLite, whose one writer serialises them anyway).

    A report that overtakes its send's commit is kept unmatched and matched again by
    the settle (``match_waiting``). On PostgreSQL both run at once on two connections,
    and under READ COMMITTED neither sees the other's uncommitted row: the report's
    transaction finds no sent part, the settle's finds no waiting report, both commit,
    and the report stays unmatched for ever (the message ``sent``, its receipt never
    pushed: seen as a 3-part SMPP message with no receipts). With this transaction
    lock taken first by both, the one that comes second sees the other's commit.
    Taken before any message row lock (``lock_message``), in sorted order, so the two
    paths lock in the same order.
    """
    if conn.dialect.name == "sqlite":
        return
    for modem_id in sorted(set(modem_ids)):
        conn.execute(_MATCH_LOCK, {"k": f"gsmgw-report-match|{modem_id}"})


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
        durable: bool = True,
    ) -> ReportMatch:
        """Store a status report and apply it to the part it answers, in one transaction.

        ``durable=False``: the commit does not wait for the disk (SQLite); the caller
        awaits ``Store.synced()`` before anything that needs it on disk (deleting the
        report from the SIM, which keeps it until then).

        Matched on (SIM, TP-MR, recipient) among parts sent within ``window_s``;
        TP-MR wraps at 256, so among several candidates the part sent closest to
        the report's SCTS (when the SC took the message) wins. A report that
        matches nothing is kept (``message_id`` NULL) and retried whenever a part
        is recorded as sent: it may have overtaken the send's own commit.
        """
        now = utcnow()
        with self.db.tx(durable=durable) as conn:
            lock_report_matching(conn, [modem_id])  # before the match: see there
            report_id = run(conn, _R.insert_report, {
                "b_modem": modem_id, "b_tp_mr": tp_mr, "b_recipient": recipient, "b_status": status,
                "b_category": category, "b_meaning": meaning, "b_scts": scts, "b_discharge_at": discharge_at,
                "b_now": now,
            }).scalar_one()
            rep = ReportIn(modem_id, tp_mr, recipient, status, category, meaning, scts, discharge_at)
            return self.apply_in(conn, report_id, rep, window_s, now)

    def apply_in(
        self, conn: Connection, report_id: int, rep: ReportIn, window_s: float, now: dt.datetime
    ) -> ReportMatch:
        modem_id, tp_mr, recipient, status = rep.modem_id, rep.tp_mr, rep.recipient, rep.status
        category, meaning, scts, discharge_at = rep.category, rep.meaning, rep.scts, rep.discharge_at
        rows = run(conn, _R.candidates, {"b_modem": modem_id, "b_tp_mr": tp_mr,
                                            "b_since": now - dt.timedelta(seconds=window_s)}).all()
        cands = [r for r in rows if same_number(r.recipient, recipient, self.region)]
        if not cands:
            return ReportMatch(report_id=report_id, message_id=None)
        ref = scts or now
        best = min(cands, key=lambda r: abs((r.sent_at - ref).total_seconds()))
        # One report (or settlement) of a message at a time: on PostgreSQL the reports of
        # a multipart message come in on several connections, and each would otherwise
        # see only its own part delivered and leave the message "sent" for ever.
        lock_message(conn, best.message_id)
        run(conn, _R.report_matched, {"b_rid": report_id, "b_mid": best.message_id, "b_seq": best.seq})
        key = {"b_mid": best.message_id, "b_seq": best.seq, "b_status": status}
        if category == "delivered":
            run(conn, _R.part_delivered, {**key, "b_at": discharge_at or now})
        elif category in ("failed", "failed-temporary"):
            run(conn, _R.part_failed, {**key, "b_code": f"report:0x{status:02X}", "b_text": meaning})
        else:
            run(conn, _R.part_status, key)
        rows = run(conn, _R.message_and_part_states, {"b_mid": best.message_id}).all()
        msg_state = rows[0].msg_state if rows else None
        if msg_state not in (MessageState.SENT, MessageState.DELIVERED):
            # Still sending other parts (or already final): the claim's settlement decides.
            return ReportMatch(report_id=report_id, message_id=best.message_id, seq=best.seq)
        settled = settle_states([r.part_state for r in rows if r.part_state is not None])
        new_state = None
        if settled is not None and settled != msg_state:
            mvalues: dict[str, Any] = {"state": settled, "updated_at": now}
            if settled is MessageState.DELIVERED:
                mvalues["delivered_at"] = discharge_at or now
            if settled is MessageState.FAILED:
                mvalues.update(error_code=f"report:0x{status:02X}", error_text=meaning)
            update_message(conn, best.message_id, mvalues)
            insert_message_events(conn, EventType.for_message(settled), [best.message_id], now)
            new_state = settled
        return ReportMatch(
            report_id=report_id, message_id=best.message_id, seq=best.seq, new_state=new_state
        )

    def match_waiting(self, conn: Connection, message_id: str, window_s: float) -> bool:
        """Reports that arrived before this message's parts were recorded as sent;
        whether there was any (then the message's state may have changed)."""
        now = utcnow()
        waiting = run(conn, _R.waiting_for, {"b_mid": message_id,
                                              "b_since": now - dt.timedelta(seconds=window_s)}).all()
        for w in {w.id: w for w in waiting}.values():  # a report once, were two parts to share a TP-MR
            rep = ReportIn(w.modem_id, w.tp_mr, w.recipient, w.status, w.category, w.meaning, w.scts, w.discharge_at)
            self.apply_in(conn, w.id, rep, window_s, now)
        return bool(waiting)

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


class _R:
    """The report path's statements, built once (see gsmgw.store.claims._S)."""

    p, m, sr = t.message_parts, t.messages, t.status_reports
    insert_report = insert(sr).values(
        modem_id=bindparam("b_modem"), tp_mr=bindparam("b_tp_mr"), recipient=bindparam("b_recipient"),
        status=bindparam("b_status"), category=bindparam("b_category"), meaning=bindparam("b_meaning"),
        scts=bindparam("b_scts"), discharge_at=bindparam("b_discharge_at"), received_at=bindparam("b_now"),
    ).returning(sr.c.id)
    candidates = select(p.c.message_id, p.c.seq, p.c.recipient, p.c.sent_at, p.c.state).where(
        p.c.modem_id == bindparam("b_modem"), p.c.tp_mr == bindparam("b_tp_mr"), p.c.sent_at >= bindparam("b_since"),
    )
    report_matched = (
        update(sr).where(sr.c.id == bindparam("b_rid")).values(message_id=bindparam("b_mid"), seq=bindparam("b_seq"))
    )
    _part = update(p).where(p.c.message_id == bindparam("b_mid"), p.c.seq == bindparam("b_seq"))
    part_status = _part.values(report_status=bindparam("b_status"))
    part_delivered = _part.values(report_status=bindparam("b_status"), state=MessageState.DELIVERED.value,
                                  delivered_at=bindparam("b_at"))
    part_failed = _part.values(report_status=bindparam("b_status"), state=MessageState.FAILED.value,
                               error_code=bindparam("b_code"), error_text=bindparam("b_text"))
    # A message's state and its parts' (one row per part; a message without parts, none).
    message_and_part_states = (
        select(m.c.state.label("msg_state"), p.c.state.label("part_state"))
        .select_from(m.join(p, p.c.message_id == m.c.id)).where(m.c.id == bindparam("b_mid"))
    )
    # The reports waiting (unmatched, in the window) for a message's sent parts: one
    # statement for what was a read of the parts and one of the reports per part.
    waiting_for = (
        select(sr).select_from(sr.join(p, (sr.c.modem_id == p.c.modem_id) & (sr.c.tp_mr == p.c.tp_mr)))
        .where(p.c.message_id == bindparam("b_mid"), p.c.state == MessageState.SENT.value,
               p.c.tp_mr.is_not(None), sr.c.message_id.is_(None), sr.c.received_at >= bindparam("b_since"))
        .order_by(p.c.seq, sr.c.id)
    )


for _name, _stmt in vars(_R).items():
    if isinstance(_stmt, Executable) and not _name.startswith("_"):
        prebuilt(_stmt)


__all__ = ["ReportsRepo", "lock_message"]
