"""Retention: what may be pruned, in small batches, and the row lease of the one pruning host.

Every ``prune_*`` call is one short transaction that deletes at most ``limit`` rows,
so the pruner (``gsmgw.housekeeping``) can yield between batches and dispatch never
waits long on the store. What is never deleted:

* an event a consumer of the outbox (webhooks, SMPP, the report rollup, ...) has not
  passed: only ids at or below the lowest cursor; and never the newest event (SQLite
  would hand its id out again, under a consumer's cursor);
* a message that is not final (queued, sending, sent), or whose final state the
  report rollup has not counted yet (``report_mark``), or that changed after the
  oldest event some consumer still has to read (its webhook may not be made yet);
* an inbound message received after that event, for the same reason;
* a webhook or SMPP delivery still pending.

On PostgreSQL with several hosts one host prunes at a time: ``take_lease`` is a row
lease in ``job_leases`` (compare-and-set; a crashed holder's lease runs out).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Collection
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from gsmgw.domain import FINAL_MESSAGE_STATES
from gsmgw.store import tables as t
from gsmgw.store.executor import Executor, batchable
from gsmgw.store.records import utcnow

KINDS = ("webhook_deliveries", "events", "messages", "inbound")
# A message or inbound row changed this long before the oldest unread event is safe
# from commit-order skew between hosts (PostgreSQL sequences) and clock differences.
SAFETY_MARGIN = dt.timedelta(minutes=10)
# Rows deleted between two looks at ``stop`` (about a millisecond of SQLite's time).
CHUNK_ROWS = 20


class Batch(NamedTuple):
    """What one ``RetentionRepo.prune`` call did."""

    deleted: int
    more: bool  # it stopped at its limit or was asked to stop: there may be more to prune


class RetentionRepo:
    def __init__(self, db: Executor, host: str) -> None:
        self.db = db
        self.host = host

    # --- the lease ----------------------------------------------------------------------------

    def take_lease(self, name: str, ttl_s: float, *, now: dt.datetime | None = None) -> bool:
        """Take or renew the lease ``name`` for ``ttl_s``; False while another host holds it."""
        now = now or utcnow()
        until = now + dt.timedelta(seconds=ttl_s)
        j = t.job_leases
        with self.db.tx() as conn:
            res = conn.execute(update(j).where(j.c.name == name, (j.c.owner == self.host) | (j.c.until < now))
                               .values(owner=self.host, until=until))
            if res.rowcount == 1:
                return True
            if conn.execute(select(j.c.name).where(j.c.name == name)).first() is not None:
                return False
        try:
            with self.db.tx() as conn:
                conn.execute(insert(j).values(name=name, owner=self.host, until=until))
            return True
        except IntegrityError:  # another host inserted it meanwhile
            return False

    def release_lease(self, name: str) -> None:
        with self.db.tx() as conn:
            conn.execute(delete(t.job_leases).where(t.job_leases.c.name == name,
                                                    t.job_leases.c.owner == self.host))

    def wal_mark(self) -> tuple[int, int] | None:
        """SQLite: the WAL file's (size, mtime in ns), which changes with every commit and
        not with a checkpoint; None where there is none (PostgreSQL, no WAL yet)."""
        path = self.db.engine.url.database if self.db.is_sqlite else None
        if not path:
            return None
        try:
            st = os.stat(f"{path}-wal")
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def checkpoint(self) -> None:
        """SQLite: copy the WAL back into the database now, without waiting for readers
        (``PRAGMA wal_checkpoint(PASSIVE)``); nothing elsewhere."""
        if not self.db.is_sqlite:
            return
        with self.db.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").all()

    # --- what consumers still need --------------------------------------------------------------

    @batchable
    def horizon(self, *, ignore_consumers: Collection[str] = (),
                margin: dt.timedelta = SAFETY_MARGIN) -> tuple[int, dt.datetime]:
        """(the lowest consumer cursor, the time before which rows are safe to prune):
        rows changed before the oldest event some consumer has not read yet, minus a margin."""
        c, e = t.webhook_cursor, t.events
        with self.db.read() as conn:
            q = select(func.min(c.c.last_event_id))
            if ignore_consumers:
                q = q.where(c.c.name.not_in(list(ignore_consumers)))
            low = conn.execute(q).scalar()
            if low is None:  # no consumer at all yet: nothing is known to be read
                low = 0
            first_unread = conn.execute(select(func.min(e.c.created_at)).where(e.c.id > low)).scalar()
        safe = (first_unread or utcnow()) - margin
        return int(low), safe

    # --- one batch each (one short transaction) ---------------------------------------------------

    def _select(self, conn: Connection, kind: str, cutoff: dt.datetime, horizon: tuple[int, dt.datetime],
                limit: int) -> list[Any]:
        low, safe = horizon
        if kind == "webhook_deliveries":
            w = t.webhook_deliveries
            return list(conn.execute(select(w.c.id).where(w.c.state != "pending", w.c.created_at < cutoff)
                                     .order_by(w.c.id).limit(limit)).scalars())
        if kind == "smpp_deliveries":
            s = t.smpp_deliveries
            return list(conn.execute(select(s.c.id).where(s.c.state != "pending", s.c.created_at < cutoff)
                                     .order_by(s.c.id).limit(limit)).scalars())
        if kind == "events":
            e = t.events
            newest = conn.execute(select(func.max(e.c.id))).scalar() or 0
            return list(conn.execute(select(e.c.id).where(e.c.id <= low, e.c.id < newest, e.c.created_at < cutoff)
                                     .order_by(e.c.id).limit(limit)).scalars())
        if kind == "messages":
            m = t.messages
            # No ORDER BY: SQLite would read the state index and sort every final message
            # for each batch (0.8 s for 333,000 rows); any prunable rows will do.
            return list(conn.execute(select(m.c.id).where(*self._message_prunable(cutoff, safe))
                                     .limit(limit)).scalars())
        if kind == "inbound":
            i = t.inbound_messages
            return list(conn.execute(select(i.c.id).where(i.c.received_at < min(cutoff, safe))
                                     .order_by(i.c.received_at).limit(limit)).scalars())
        if kind == "status_reports":  # reports never matched to a message
            r = t.status_reports
            return list(conn.execute(select(r.c.id).where(r.c.message_id.is_(None), r.c.received_at < cutoff)
                                     .order_by(r.c.id).limit(limit)).scalars())
        raise ValueError(f"unknown retention kind {kind!r}")

    @staticmethod
    def _message_prunable(cutoff: dt.datetime, safe: dt.datetime) -> list[Any]:
        m = t.messages
        return [m.c.created_at < cutoff, m.c.state.in_([s.value for s in FINAL_MESSAGE_STATES]),
                m.c.report_mark.is_not(None), m.c.updated_at < safe]

    @batchable
    def count(self, kind: str, cutoff: dt.datetime, horizon: tuple[int, dt.datetime], *,
              cap: int = 10_000_000) -> int:
        """How many rows ``prune`` would delete now (``--dry-run``)."""
        with self.db.read() as conn:
            return len(self._select(conn, kind, cutoff, horizon, cap))

    @batchable
    def prune(self, kind: str, cutoff: dt.datetime, horizon: tuple[int, dt.datetime], *, limit: int = 500,
              stop: Callable[[], bool] | None = None) -> Batch:
        """Delete one batch of at most ``limit`` prunable rows of ``kind``, in one transaction.

        The rows go ``CHUNK_ROWS`` at a time (a row with its parts and reports together);
        between two chunks ``stop()`` is asked, and when it says so the batch ends there
        and commits what it has deleted: the writer thread's hot-path calls, waiting
        behind it, wait about one chunk, not a whole batch. The commit does not fsync
        on SQLite (``tx(durable=False)``): a batch lost to a power cut is pruned again."""
        with self.db.tx(durable=False) as conn:
            ids = self._select(conn, kind, cutoff, horizon, limit)
            if not ids:
                return Batch(0, False)
            more = len(ids) >= limit
            done = 0
            for at in range(0, len(ids), CHUNK_ROWS):
                if at and stop is not None and stop():
                    return Batch(done, True)
                chunk = ids[at:at + CHUNK_ROWS]
                if kind == "messages":  # re-checked chunk by chunk, right before its delete
                    chunk = self._recheck_messages(conn, chunk, cutoff, horizon)
                self._delete(conn, kind, chunk)
                done += len(chunk)
            return Batch(done, more)

    @staticmethod
    def _recheck_messages(conn: Connection, ids: list[Any], cutoff: dt.datetime,
                          horizon: tuple[int, dt.datetime]) -> list[Any]:
        """Re-checked under the write: a late status report may have moved one. The rows
        are read by id only and the rule applied here: with the rule's terms in the
        WHERE, SQLite took the state index for more than ~15 ids and walked every final
        message (80 ms per batch at 333,000; the dispatch waited)."""
        m = t.messages
        final = {s.value for s in FINAL_MESSAGE_STATES}
        safe = horizon[1]
        return [r.id for r in conn.execute(
            select(m.c.id, m.c.created_at, m.c.state, m.c.report_mark, m.c.updated_at)
            .where(m.c.id.in_(ids)))
            if r.created_at < cutoff and r.state in final and r.report_mark is not None
            and r.updated_at < safe]

    @staticmethod
    def _delete(conn: Connection, kind: str, ids: list[Any]) -> None:
        if kind == "webhook_deliveries":
            w = t.webhook_deliveries
            conn.execute(delete(w).where(w.c.id.in_(ids), w.c.state != "pending"))
        elif kind == "smpp_deliveries":
            s = t.smpp_deliveries
            conn.execute(delete(s).where(s.c.id.in_(ids), s.c.state != "pending"))
        elif kind == "events":
            conn.execute(delete(t.events).where(t.events.c.id.in_(ids)))
        elif kind == "messages":
            conn.execute(delete(t.status_reports).where(t.status_reports.c.message_id.in_(ids)))
            conn.execute(delete(t.message_parts).where(t.message_parts.c.message_id.in_(ids)))
            conn.execute(delete(t.messages).where(t.messages.c.id.in_(ids)))
        elif kind == "inbound":
            conn.execute(delete(t.inbound_parts).where(t.inbound_parts.c.message_id.in_(ids)))
            conn.execute(delete(t.inbound_messages).where(t.inbound_messages.c.id.in_(ids)))
        elif kind == "status_reports":
            conn.execute(delete(t.status_reports).where(
                and_(t.status_reports.c.id.in_(ids), t.status_reports.c.message_id.is_(None))))


__all__ = ["CHUNK_ROWS", "KINDS", "SAFETY_MARGIN", "Batch", "RetentionRepo"]
