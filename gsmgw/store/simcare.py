"""SIM care counters (issue 20): per-SIM pacing and warm-up state, parts per local
day and month, first contacts per (SIM, number, day), and cost sums.

The claim reads them (``care_terms``: extra conditions for the claim query, all
on columns the claim index walk already reads, or a primary-key probe of
``sim_contacts``); the settle of a send writes them (``record_in``) in the same
transaction as the send's own state, so that every host sees the same counts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, exists, func, select, true, update

from gsmgw.store import tables as t
from gsmgw.store.executor import Executor, batchable
from gsmgw.store.records import CareRecord, CareUsage, ClaimCare


def usage_in(conn: Connection, modem_id: str, care: ClaimCare, *, lock: bool) -> CareUsage:
    """The SIM's counters for ``care``'s day and month. With ``lock`` its ``sim_care``
    row is locked (PostgreSQL) so that two hosts never claim for one SIM at once."""
    s, u, c = t.sim_care, t.sim_usage, t.sim_contacts
    q = select(s.c.first_seen_at, s.c.next_send_at).where(s.c.modem_id == modem_id)
    if lock:
        q = q.with_for_update()
    row = conn.execute(q).first()
    parts = dict(conn.execute(
        select(u.c.period, u.c.parts).where(u.c.modem_id == modem_id, u.c.period.in_((care.day, care.month)))
    ).all())
    day_n = conn.execute(
        select(func.count()).select_from(c).where(c.c.modem_id == modem_id, c.c.day == care.day)
    ).scalar_one()
    month_n = conn.execute(
        select(func.count(func.distinct(c.c.number))).where(
            c.c.modem_id == modem_id, c.c.day >= care.month_first_day, c.c.day <= care.month_last_day)
    ).scalar_one()
    return CareUsage(
        first_seen_at=row.first_seen_at if row else None,
        next_send_at=row.next_send_at if row else None,
        day_parts=int(parts.get(care.day, 0)),
        month_parts=int(parts.get(care.month, 0)),
        day_recipients=int(day_n),
        month_recipients=int(month_n),
    )


Terms = list[ColumnElement[bool]]


def care_terms(conn: Connection, modem_id: str, care: ClaimCare, *, lock: bool) -> list[Terms] | None:
    """The claim's extra WHERE terms for this SIM's care, as alternatives tried in
    order (the first that finds a message wins), or ``None`` when the SIM may claim
    nothing now. Unpaced: one alternative. Paced: only exempt messages, first by
    priority (a range on ix_messages_claim, so the claim order holds: any of them
    outranks a lower-priority transactional one), then transactional ones (the
    partial index ix_messages_claim_tx); never a walk through the paced bulk.
    The caps bound the parts; a reached distinct-recipient cap admits only numbers
    already contacted (a primary-key probe of sim_contacts)."""
    if care.gate is None:
        return [[]]
    g = care.gate(usage_in(conn, modem_id, care, lock=lock))
    if g.max_parts <= 0:
        return None
    m, c = t.messages, t.sim_contacts
    terms: Terms = []
    if g.max_parts < (1 << 30):
        terms.append(m.c.parts_total <= g.max_parts)
    if not g.new_recipients_ok:
        lo = care.day if g.known_since == "day" else care.month_first_day
        hi = care.day if g.known_since == "day" else care.month_last_day
        terms.append(exists().where(c.c.modem_id == modem_id, c.c.number == m.c.to_number,
                                    c.c.day >= lo, c.c.day <= hi))
    if g.pace_ok:
        return [terms]
    alternatives = [[*terms, m.c.priority >= care.exempt_priority]]
    if care.exempt_transactional:
        alternatives.append([*terms, m.c.transactional == true()])
    return alternatives


def _add_parts(conn: Connection, modem_id: str, period: str, n: int) -> None:
    u = t.sim_usage
    res = conn.execute(update(u).where(u.c.modem_id == modem_id, u.c.period == period)
                       .values(parts=u.c.parts + n))
    if res.rowcount == 0:
        conn.execute(u.insert().values(modem_id=modem_id, period=period, parts=n))


def record_in(conn: Connection, rec: CareRecord, parts_sent: int, message_id: str) -> None:
    """A send's effect on its SIM's counters (and the message's cost), in the settle's
    transaction. ``parts_sent`` = parts that left the modem (0: a failed attempt still
    spaces the next paced send, nothing is counted)."""
    s, c, m = t.sim_care, t.sim_contacts, t.messages
    if rec.cost_per_part_micros is not None and parts_sent > 0:
        conn.execute(update(m).where(m.c.id == message_id).values(
            cost_micros=func.coalesce(m.c.cost_micros, 0) + rec.cost_per_part_micros * parts_sent))
    if not rec.count:
        return
    res = conn.execute(update(s).where(s.c.modem_id == rec.modem_id)
                       .values(next_send_at=rec.next_send_at, last_send_at=rec.at))
    if res.rowcount == 0:
        conn.execute(s.insert().values(modem_id=rec.modem_id, first_seen_at=rec.at,
                                       next_send_at=rec.next_send_at, last_send_at=rec.at))
    if parts_sent <= 0:
        return
    _add_parts(conn, rec.modem_id, rec.day, parts_sent)
    _add_parts(conn, rec.modem_id, rec.month, parts_sent)
    known = conn.execute(select(c.c.day).where(c.c.modem_id == rec.modem_id, c.c.number == rec.number,
                                               c.c.day == rec.day)).first()
    if known is None:
        conn.execute(c.insert().values(modem_id=rec.modem_id, number=rec.number, day=rec.day))


def defer_in(conn: Connection, message_id: str, until: dt.datetime, reason: str) -> None:
    """Leave a queued message unclaimed until ``until`` (recipient quiet hours)."""
    m = t.messages
    conn.execute(update(m).where(m.c.id == message_id, m.c.state == "queued")
                 .values(send_at=until, wait_reason=reason))


class SimCareRepo:
    def __init__(self, db: Executor) -> None:
        self.db = db

    @batchable
    def usage(self, modem_ids: Iterable[str], cares: dict[str, ClaimCare]) -> dict[str, CareUsage]:
        """Each SIM's counters for its ``ClaimCare`` period (the status API)."""
        with self.db.read() as conn:
            return {mid: usage_in(conn, mid, cares[mid], lock=False) for mid in modem_ids}

    @batchable
    def cost_summary(self, since: dt.datetime, until: dt.datetime) -> dict[str, Any]:
        """Cost of what was sent in [since, until): in all, per SIM and per API key."""
        m = t.messages
        when = and_(m.c.sent_at >= since, m.c.sent_at < until, m.c.cost_micros.is_not(None))
        with self.db.read() as conn:
            by_sim = {r[0] or "": int(r[1]) for r in conn.execute(
                select(m.c.modem_id, func.sum(m.c.cost_micros)).where(when).group_by(m.c.modem_id))}
            by_key = {r[0] or "": int(r[1]) for r in conn.execute(
                select(m.c.api_key_id, func.sum(m.c.cost_micros)).where(when).group_by(m.c.api_key_id))}
        return {"total_micros": sum(by_sim.values()), "by_sim": by_sim, "by_key": by_key}

    @batchable
    def cost_by_day(self, days: list[tuple[str, dt.datetime, dt.datetime]]) -> list[dict[str, Any]]:
        """``cost_summary`` for each (label, since, until)."""
        return [{"day": label, **self.cost_summary(a, b)} for (label, a, b) in days]


__all__ = ["SimCareRepo", "care_terms", "defer_in", "record_in", "usage_in"]
