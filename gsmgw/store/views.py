"""Read models for people watching the gateway (the admin console) that span
aggregates or exist for dashboards: per-SIM counts, throughput, delivery rate,
queue age, recent errors, recent batches, conversations. Queries of one aggregate
live in its repository (``messages.search``, ``messages.batch_progress``,
``inbound.mark_read``, ``keys.is_active``...).

Every query here is bounded, by an index or by the time order of ids: message
and inbound ids start with 12 hex digits of milliseconds (``new_id``), so "created
since T" is a primary-key range. A console refreshes these every few seconds on
a Raspberry Pi next to a busy dispatcher; none of them may walk a million rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, cast, func, select

from gsmgw.domain import MessageState
from gsmgw.store import tables as t
from gsmgw.store.executor import Executor, batchable
from gsmgw.store.messages import batch_view
from gsmgw.store.records import id_floor

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement

# Message priorities as the intake accepts them (named ones map inside this range).
PRIORITY_MIN, PRIORITY_MAX = -10, 10


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _percentile(sorted_values: Sequence[float], q: float) -> float | None:
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


class ViewsRepo:
    """Queries for dashboards and browsing; the one write is marking a thread read."""

    def __init__(self, db: Executor) -> None:
        self.db = db

    def _bucket(self, column: Any, bucket_s: int) -> ColumnElement[Any]:
        """``column`` (UTC) as the start of its ``bucket_s`` bucket, in Unix seconds."""
        if self.db.is_sqlite:
            epoch = cast(func.strftime("%s", column), Integer)
        else:
            epoch = cast(func.floor(func.extract("epoch", column)), Integer)
        return (epoch // bucket_s) * bucket_s  # integer division on both

    # --- overview -----------------------------------------------------------------

    @batchable
    def sim_counts(self, since: dt.datetime, *, now: dt.datetime | None = None) -> dict[str, dict[str, int]]:
        """Parts sent and messages failed per SIM since ``since`` (e.g. UTC midnight).

        Failures are looked for among messages created in the two days before
        ``since`` or later: a message fails within its validity (one day by default).
        """
        p, m = t.message_parts, t.messages
        out: dict[str, dict[str, int]] = {}
        with self.db.read() as conn:
            for modem_id, n in conn.execute(
                select(p.c.modem_id, func.count())
                .where(p.c.sent_at >= since, p.c.modem_id.is_not(None))
                .group_by(p.c.modem_id)
            ):
                out.setdefault(modem_id, {"sent": 0, "failed": 0})["sent"] = int(n)
            for modem_id, n in conn.execute(
                select(m.c.modem_id, func.count())
                .where(m.c.id >= id_floor(since - dt.timedelta(days=2)), m.c.state == MessageState.FAILED,
                       m.c.updated_at >= since, m.c.modem_id.is_not(None))
                .group_by(m.c.modem_id)
            ):
                out.setdefault(modem_id, {"sent": 0, "failed": 0})["failed"] = int(n)
        return out

    @batchable
    def queue(self, *, now: dt.datetime | None = None) -> dict[str, Any]:
        """Queue depth (queued + sending), of which due now and scheduled for later.

        This counts index entries: with a million queued it takes a good part of a
        second on a Pi, so callers refresh it seldom (the console: every 15 s).
        """
        now = now or _now()
        m = t.messages
        with self.db.read() as conn:
            counts = dict(
                conn.execute(
                    select(m.c.state, func.count())
                    .where(m.c.state.in_([MessageState.QUEUED, MessageState.SENDING]))
                    .group_by(m.c.state)
                ).all()
            )
            due = conn.execute(
                select(func.count()).where(m.c.state == MessageState.QUEUED, m.c.send_at <= now)
            ).scalar_one()
        queued, sending = int(counts.get(MessageState.QUEUED, 0)), int(counts.get(MessageState.SENDING, 0))
        return {
            "queued": queued,
            "sending": sending,
            "depth": queued + sending,
            "due": int(due),
            "scheduled": max(0, queued - int(due)),
        }

    @batchable
    def oldest_due(self, *, now: dt.datetime | None = None) -> dt.datetime | None:
        """When the oldest message that is due and still queued was created.

        One short walk of the claim index (state, priority, created_at) per priority
        (-10..10, the intake's range): each stops at its first due message, so the
        cost does not grow with the queue.
        """
        now = now or _now()
        m = t.messages
        oldest: dt.datetime | None = None
        with self.db.read() as conn:
            for priority in range(PRIORITY_MIN, PRIORITY_MAX + 1):
                at = conn.execute(
                    select(m.c.created_at)
                    .where(m.c.state == MessageState.QUEUED, m.c.priority == priority, m.c.send_at <= now)
                    .order_by(m.c.created_at)
                    .limit(1)
                ).scalar()
                if at is not None and (oldest is None or at < oldest):
                    oldest = at
        return oldest

    @batchable
    def throughput(self, since: dt.datetime, bucket_s: int) -> list[tuple[str, int, int]]:
        """(SIM, bucket start in Unix seconds, parts sent) for parts sent since ``since``."""
        p = t.message_parts
        bucket = self._bucket(p.c.sent_at, bucket_s).label("bucket")
        with self.db.read() as conn:
            rows = conn.execute(
                select(p.c.modem_id, bucket, func.count())
                .where(p.c.sent_at >= since, p.c.modem_id.is_not(None))
                .group_by(p.c.modem_id, bucket)
                .order_by(bucket)
            ).all()
        return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    @batchable
    def delivery(self, since: dt.datetime, *, sample: int = 5000) -> dict[str, Any]:
        """Of the parts sent since ``since``: how many were delivered, failed, or still
        wait for their report; and the time from sent to delivered (median, 90th
        percentile) over the newest ``sample`` delivered ones."""
        p = t.message_parts
        with self.db.read() as conn:
            counts = dict(
                conn.execute(
                    select(p.c.state, func.count()).where(p.c.sent_at >= since).group_by(p.c.state)
                ).all()
            )
            pairs = conn.execute(
                select(p.c.sent_at, p.c.delivered_at)
                .where(p.c.sent_at >= since, p.c.state == MessageState.DELIVERED, p.c.delivered_at.is_not(None))
                .order_by(p.c.sent_at.desc())
                .limit(sample)
            ).all()
        delays = sorted(max(0.0, (d - s).total_seconds()) for s, d in pairs)
        delivered = int(counts.get(MessageState.DELIVERED, 0))
        failed = int(counts.get(MessageState.FAILED, 0))
        unknown = int(counts.get(MessageState.UNKNOWN, 0))
        waiting = int(counts.get(MessageState.SENT, 0))
        total = delivered + failed + unknown + waiting
        return {
            "sent": total,
            "delivered": delivered,
            "failed": failed,
            "unknown": unknown,
            "waiting": waiting,
            "rate": (delivered / (delivered + failed)) if delivered + failed else None,
            "p50_s": _percentile(delays, 0.5),
            "p90_s": _percentile(delays, 0.9),
        }

    @batchable
    def recent_errors(self, *, since: dt.datetime, limit: int = 8) -> list[dict[str, Any]]:
        """The newest messages created since ``since`` that ended in an error."""
        m = t.messages
        with self.db.read() as conn:
            rows = conn.execute(
                select(m.c.id, m.c.to_number, m.c.modem_id, m.c.state, m.c.error_code, m.c.error_text,
                       m.c.updated_at)
                .where(m.c.id >= id_floor(since),
                       m.c.state.in_([MessageState.FAILED, MessageState.UNKNOWN, MessageState.EXPIRED]))
                .order_by(m.c.id.desc())
                .limit(limit)
            ).all()
        return [dict(r._mapping) for r in rows]

    # --- batches and conversations --------------------------------------------------

    @batchable
    def recent_batches(self, *, owner: str | None = None, limit: int = 20, scan: int = 5000) -> list[dict[str, Any]]:
        """Batches of more than one message among the newest ``scan`` messages, newest first."""
        m = t.messages
        newest = select(m.c.batch_id).order_by(m.c.id.desc()).limit(scan)
        if owner is not None:
            newest = newest.where(m.c.api_key_id == owner)
        recent = newest.subquery()
        with self.db.read() as conn:
            ids = [
                r[0] for r in conn.execute(
                    select(recent.c.batch_id).group_by(recent.c.batch_id)
                    .having(func.count() > 1).order_by(recent.c.batch_id.desc()).limit(limit)
                ).all()
            ]
            if not ids:
                return []
            rows = conn.execute(
                select(m.c.batch_id, m.c.state, func.count(), func.min(m.c.created_at))
                .where(m.c.batch_id.in_(ids))
                .group_by(m.c.batch_id, m.c.state)
            ).all()
        per: dict[str, tuple[dict[str, int], dt.datetime]] = {}
        for batch_id, state, n, created in rows:
            counts, first = per.get(batch_id, ({}, created))
            counts[state] = int(n)
            per[batch_id] = (counts, min(first, created))
        return [batch_view(b, *per[b]) for b in ids if b in per]

    @batchable
    def conversations(self, *, owner: str | None = None, limit: int = 50, scan: int = 500) -> list[dict[str, Any]]:
        """Threads by number, the most recent activity first, over the newest ``scan``
        inbound and ``scan`` outbound messages (``owner``'s only, if given); with the
        unread inbound count."""
        im, m = t.inbound_messages, t.messages
        out_q = select(m.c.id, m.c.to_number, m.c.text, m.c.created_at, m.c.state).order_by(m.c.id.desc()).limit(scan)
        if owner is not None:
            out_q = out_q.where(m.c.api_key_id == owner)
        with self.db.read() as conn:
            inbound = conn.execute(
                select(im.c.id, im.c.sender, im.c.text, im.c.received_at, im.c.read_at, im.c.complete)
                .order_by(im.c.id.desc()).limit(scan)
            ).all()
            outbound = conn.execute(out_q).all()
        threads: dict[str, dict[str, Any]] = {}

        def thread(number: str) -> dict[str, Any]:
            return threads.setdefault(number, {"number": number, "last_at": None, "last_text": "",
                                               "last_direction": "", "unread": 0, "inbound": 0, "outbound": 0})

        for r in inbound:
            th = thread(r.sender)
            th["inbound"] += 1
            if r.read_at is None:
                th["unread"] += 1
            if th["last_at"] is None or r.received_at > th["last_at"]:
                th.update(last_at=r.received_at, last_text=r.text, last_direction="in")
        for r in outbound:
            th = thread(r.to_number)
            th["outbound"] += 1
            if th["last_at"] is None or r.created_at > th["last_at"]:
                th.update(last_at=r.created_at, last_text=r.text, last_direction="out")
        ordered = sorted(threads.values(), key=lambda th: th["last_at"], reverse=True)
        return ordered[:limit]

    @batchable
    def thread(self, number: str, *, owner: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Inbound from and outbound to ``number`` (``owner``'s only, if given), oldest
        first (the newest ``limit``)."""
        im, m = t.inbound_messages, t.messages
        out_q = select(m).where(m.c.to_number == number).order_by(m.c.id.desc()).limit(limit)
        if owner is not None:
            out_q = out_q.where(m.c.api_key_id == owner)
        with self.db.read() as conn:
            inbound = conn.execute(
                select(im).where(im.c.sender == number).order_by(im.c.id.desc()).limit(limit)
            ).all()
            outbound = conn.execute(out_q).all()
        items = [{"direction": "in", "at": r.received_at, **r._mapping} for r in inbound]
        items += [{"direction": "out", "at": r.created_at, **r._mapping} for r in outbound]
        items.sort(key=lambda i: (i["at"], i["id"]))
        return items[-limit:]


__all__ = ["ViewsRepo"]
