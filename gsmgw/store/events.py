"""Events: the durable outbox, and the cursors of the doors that consume it.

Every state change that matters writes an event in its own transaction
(``insert_event``, ``insert_message_events``). A door that pushes events
(webhooks, MQTT, e-mail, SMPP) is a consumer with a durable cursor, a row of
``webhook_cursor`` under its own name: it reads the events after its cursor
(``read_after``), pushes them, and only then moves the cursor (``advance``, a
compare-and-set, so two hosts running the same consumer never move it backwards
and never both move it from the same place).

The gap rule: event ids come from a sequence, and on PostgreSQL a transaction that
took an id may commit after one that took a later id (or roll back, leaving a gap
for ever). A reader stops before a gap until no transaction that could still fill
it is alive, which it learns from transaction ids, not from a clock:

- a writer gets its (top-level) transaction id *before* it takes an event id
  (``pg_current_xact_id()`` in ``insert_event``), so the transaction that took a
  missing id ``k`` has an xid ``x_k`` assigned before ``k`` was taken;
- when a read sees rows up to id ``upto`` with a gap below it, the reader then takes
  a fresh xid ``R`` in a new, short transaction (the note ``(R, upto)``). Every
  missing ``k < upto`` was taken before ``upto`` was, ``upto`` committed before the
  read's snapshot, and ``R`` was assigned after it: ``x_k < R`` (xids are handed
  out in increasing order);
- the gaps up to ``upto`` are final once a later snapshot's xmin (its oldest
  running xid; the snapshot's xmax is above ``R`` since ``R`` has ended, so every
  running xid ``<= R`` is counted) is ``> R``: every ``x_k`` has then ended, and the
  rows of those that committed are visible to the read that follows (READ
  COMMITTED: a later statement, a later snapshot). Savepoints do not change this:
  a row inserted in a subtransaction becomes visible only when its top-level
  transaction commits, and the top-level xid is the one taken before the id, and
  the one a snapshot lists as running.

The rule is exact (a gap is never passed while its transaction may commit) and
each host keeps its own notes, so several hosts may read the same table. Its only
wait is a long transaction anywhere on the server that began before the note;
``gap_wait_s`` stays as a safety net (a gap whose next event is that old is passed
anyway, with a warning). It assumes the events sequence hands ids out in order
(``CACHE 1``, PostgreSQL's default for a serial column). On SQLite writers commit
one at a time, so there are no such gaps and ``gap_wait_s=0``.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Collection, Iterable, Sequence
from typing import Any, Literal

from sqlalchemy import Connection, Engine, Integer, bindparam, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from gsmgw.domain import EventType
from gsmgw.store import tables as t
from gsmgw.store.executor import Executor, batchable, note_events_written
from gsmgw.store.prepared import prebuilt, run
from gsmgw.store.records import OutboxEvent, OutboxRead, utcnow

log = logging.getLogger(__name__)

# Both as bigint: xid8 values are 64-bit (epoch and xid), increasing, never wrapping.
_XID_SQL = text("SELECT pg_current_xact_id()::text::bigint")
_XMIN_SQL = text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


def _xid_before_id(conn: Connection) -> None:
    """On PostgreSQL: give the transaction its xid before it takes an event id (the
    gap rule above relies on it; a no-op when it has one already)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_XID_SQL)


def insert_event(conn: Connection, type_: EventType, now: dt.datetime, *, message_id: str | None = None,
                 modem_id: str | None = None, payload: dict[str, Any] | None = None) -> None:
    """One event, in the caller's transaction."""
    _xid_before_id(conn)
    note_events_written(conn)
    conn.execute(
        insert(t.events).values(
            type=type_, message_id=message_id, modem_id=modem_id,
            payload=json.dumps(payload or {}, default=str), created_at=now,
        )
    )


def insert_message_events(conn: Connection, type_: EventType, ids: Iterable[str], now: dt.datetime) -> None:
    """One event per message (``sms:sent`` ...), in the caller's transaction."""
    rows = [{"b_type": type_, "b_mid": i, "b_now": now} for i in ids]
    if rows:
        _xid_before_id(conn)
        note_events_written(conn)
        run(conn, _INSERT_EVENTS, rows[0] if len(rows) == 1 else rows)


# Built once: every settle writes an event through it.
_INSERT_EVENTS = prebuilt(insert(t.events).values(type=bindparam("b_type"), message_id=bindparam("b_mid"),
                                                  payload="{}", created_at=bindparam("b_now")))


def type_matches(patterns: Collection[str], type_: str) -> bool:
    """``*`` = every event; ``sms:*`` = every event of a family; else the exact type."""
    for p in patterns:
        if p == "*" or p == type_:
            return True
        if p.endswith(":*") and type_.startswith(p[:-1]):
            return True
    return False


def safe_prefix(rows: Sequence[Any], cursor: int, now: dt.datetime, gap_wait_s: float,
                final_upto: int | None = None) -> list[Any]:
    """The rows after ``cursor`` (in id order) a reader may take now: up to the first
    gap in the ids that is not known final (every missing id ``<= final_upto``, the
    PostgreSQL rule) and whose next event is younger than ``gap_wait_s``."""
    taken = []
    expected = cursor + 1
    for row in rows:
        if row.id != expected:
            known_final = final_upto is not None and row.id - 1 <= final_upto
            if not known_final:
                age_s = (now - row.created_at).total_seconds()
                if age_s < gap_wait_s:
                    break
                if final_upto is not None:
                    log.warning("outbox: passing the id gap %d..%d after %.0f s although a transaction "
                                "that could fill it may still be open (a long transaction on the server?)",
                                expected, row.id - 1, age_s)
        taken.append(row)
        expected = row.id + 1
    return taken


class GapNotes:
    """A reader's notes on the gaps it stopped at (PostgreSQL), one per consumer:
    ``(R, upto)``: the gaps below ``upto`` are final once no xid ``<= R`` runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notes: dict[str, tuple[int, int]] = {}

    def get(self, consumer: str) -> tuple[int, int] | None:
        with self._lock:
            return self._notes.get(consumer)

    def put(self, consumer: str, xid: int, upto: int) -> None:
        with self._lock:
            self._notes.setdefault(consumer, (xid, upto))

    def drop(self, consumer: str, note: tuple[int, int]) -> None:
        with self._lock:
            if self._notes.get(consumer) == note:
                del self._notes[consumer]


def _note_gap(engine: Engine) -> tuple[int, bool]:
    """A fresh xid ``R`` (in its own transaction, after the caller's read), and whether
    every xid up to it has ended already (checked in the next transaction)."""
    with engine.connect() as c:
        with c.begin():
            xid = int(c.execute(_XID_SQL).scalar_one())
        xmin = int(c.execute(_XMIN_SQL).scalar_one())
        c.rollback()
    return xid, xmin > xid


def _final_upto(conn: Connection, gaps: GapNotes, consumer: str, cursor: int) -> int:
    """The id up to which the gaps are known final: the consumer's note, if no xid up
    to its ``R`` runs any more (else the cursor: nothing known)."""
    note = gaps.get(consumer)
    if note is None:
        return cursor
    xid, upto = note
    if upto <= cursor:  # passed already (by the safety net, or another host's reader)
        gaps.drop(consumer, note)
        return cursor
    if int(conn.execute(_XMIN_SQL).scalar_one()) > xid:
        gaps.drop(consumer, note)
        return upto
    return cursor


def cursor_in(conn: Connection, consumer: str, now: dt.datetime) -> int:
    """The consumer's cursor, created at 0 in this transaction if it has none."""
    c = t.webhook_cursor
    last = run(conn, _CURSOR_OF, {"b_name": consumer}).scalar()
    if last is None:
        conn.execute(insert(c).values(name=consumer, last_event_id=0, updated_at=now))
        return 0
    return int(last)


def read_after_in(conn: Connection, consumer: str, *, limit: int, gap_wait_s: float,
                  types: Collection[str] | None, now: dt.datetime,
                  gaps: GapNotes | None = None) -> OutboxRead:
    """``EventsRepo.read_after`` on an open transaction (the webhook fan-out's), which
    must be READ COMMITTED on PostgreSQL (the default). ``gaps``: the caller's notes
    (PostgreSQL's gap rule); None = only ``gap_wait_s`` decides."""
    cursor = cursor_in(conn, consumer, now)
    after = {"b_after": cursor, "b_limit": limit}
    if gaps is None or conn.dialect.name != "postgresql":
        rows = run(conn, _EVENTS_AFTER, after).all()
        taken = safe_prefix(rows, cursor, now, gap_wait_s)
    else:
        final_upto = _final_upto(conn, gaps, consumer, cursor)  # before the read: see module doc
        rows = run(conn, _EVENTS_AFTER, after).all()
        taken = safe_prefix(rows, cursor, now, gap_wait_s, final_upto)
        if len(taken) < len(rows) and gaps.get(consumer) is None:
            upto = rows[-1].id  # every gap below it is covered by the note
            xid, final = _note_gap(conn.engine)  # after the read
            if final:  # the gaps' transactions had all ended: read again, pass them now
                rows = run(conn, _EVENTS_AFTER, after).all()
                taken = safe_prefix(rows, cursor, now, gap_wait_s, max(final_upto, upto))
            else:
                gaps.put(consumer, xid, upto)
    events = tuple(
        OutboxEvent(id=r.id, type=r.type, message_id=r.message_id, modem_id=r.modem_id,
                    payload=r.payload, created_at=r.created_at)
        for r in taken if types is None or type_matches(types, r.type)
    )
    return OutboxRead(consumer=consumer, cursor=cursor, events=events,
                      through_id=taken[-1].id if taken else cursor,
                      more=len(rows) == limit and len(taken) == len(rows))


def advance_in(conn: Connection, consumer: str, from_id: int, to_id: int, now: dt.datetime) -> bool:
    """``EventsRepo.advance`` on an open transaction."""
    if to_id < from_id:
        raise ValueError(f"a cursor only moves forward ({consumer}: {from_id} -> {to_id})")
    res = run(conn, _ADVANCE, {"b_name": consumer, "b_from": from_id, "b_to": to_id, "b_now": now})
    return res.rowcount == 1


# The consumers' statements, built once: each consumer round (webhook fan-out, rollup,
# the compat doors' follower) runs them on the writer thread, a few times a second
# on a busy pool (issue 17: prepared.run's fast path on SQLite).
_CURSOR_OF = prebuilt(select(t.webhook_cursor.c.last_event_id).where(t.webhook_cursor.c.name == bindparam("b_name")))
_EVENTS_AFTER = prebuilt(select(t.events).where(t.events.c.id > bindparam("b_after"))
                         .order_by(t.events.c.id).limit(bindparam("b_limit", type_=Integer)))
_ADVANCE = prebuilt(
    update(t.webhook_cursor)
    .where(t.webhook_cursor.c.name == bindparam("b_name"), t.webhook_cursor.c.last_event_id == bindparam("b_from"))
    .values(last_event_id=bindparam("b_to"), updated_at=bindparam("b_now"))
)


def _list_query(with_door: bool, typed: bool) -> Any:
    e, m = t.events, t.messages
    q = select(e, m.c.door).select_from(e.outerjoin(m, m.c.id == e.c.message_id)) if with_door else select(e)
    q = q.where(e.c.id > bindparam("b_after"))
    if typed:
        q = q.where(e.c.type == bindparam("b_type"))
    return prebuilt(q.order_by(e.c.id).limit(bindparam("b_limit", type_=Integer)))


# list_events' four shapes: (with_door, with a type filter) -> statement.
_LIST = {(door, typed): _list_query(door, typed) for door in (False, True) for typed in (False, True)}


class EventsRepo:
    def __init__(self, db: Executor) -> None:
        self.db = db
        self.gaps = GapNotes()

    @batchable
    def add_event(
        self,
        type_: EventType,
        *,
        message_id: str | None = None,
        modem_id: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        with self.db.tx() as conn:
            insert_event(conn, type_, utcnow(), message_id=message_id, modem_id=modem_id, payload=payload)

    @batchable
    def list_events(self, *, after_id: int = 0, type_: str | None = None, limit: int = 100,
                    with_door: bool = False) -> list[dict[str, Any]]:
        """Events after ``after_id`` in id order; with ``with_door`` each carries its
        message's ``door`` (None without one), read in the same query."""
        params: dict[str, Any] = {"b_after": after_id, "b_limit": limit}
        if type_:
            params["b_type"] = type_
        with self.db.read() as conn:
            return [r._asdict() for r in run(conn, _LIST[with_door, bool(type_)], params).all()]

    @batchable
    def max_id(self) -> int:
        """The highest event id (0 when there is none): where a new follower starts."""
        with self.db.read() as conn:
            return int(conn.execute(select(func.max(t.events.c.id))).scalar() or 0)

    # --- consumers of the outbox ----------------------------------------------------------

    def ensure_cursor(self, consumer: str, *, start: Literal["oldest", "latest"] = "oldest") -> int:
        """The consumer's cursor; a consumer seen for the first time starts before the
        oldest event, or after the latest one (a door switched on later does not
        replay the history)."""
        c = t.webhook_cursor
        with self.db.engine.connect() as conn:
            last = conn.execute(select(c.c.last_event_id).where(c.c.name == consumer)).scalar()
        if last is not None:
            return int(last)
        try:
            with self.db.engine.begin() as conn:
                at = 0
                if start == "latest":
                    at = int(conn.execute(select(func.max(t.events.c.id))).scalar() or 0)
                conn.execute(insert(c).values(name=consumer, last_event_id=at, updated_at=utcnow()))
                return at
        except IntegrityError:  # another host created it meanwhile
            with self.db.engine.connect() as conn:
                return int(conn.execute(select(c.c.last_event_id).where(c.c.name == consumer)).scalar_one())

    def read_after(self, consumer: str, *, limit: int = 100, gap_wait_s: float = 30.0,
                   types: Collection[str] | None = None, now: dt.datetime | None = None) -> OutboxRead:
        """The events after the consumer's cursor that are safe to consume, in id order.

        ``types``: exact types or families (``sms:*``); None = every event. At most
        ``limit`` events are looked at (filtered-out ones count). Read only: the
        cursor moves with ``advance`` once the consumer has handled them.
        """
        self.ensure_cursor(consumer)
        with self.db.engine.begin() as conn:
            return read_after_in(conn, consumer, limit=limit, gap_wait_s=gap_wait_s, types=types,
                                 now=now or utcnow(), gaps=self.gaps)

    @batchable
    def advance(self, consumer: str, from_id: int, to_id: int) -> bool:
        """Move the consumer's cursor from ``from_id`` to ``to_id``; False (and nothing
        changed) if it is no longer at ``from_id``: another host running the same
        consumer moved it first."""
        with self.db.tx() as conn:
            return advance_in(conn, consumer, from_id, to_id, utcnow())

    @batchable
    def cursor(self, consumer: str) -> int | None:
        """Where the consumer's cursor is (None before its first read)."""
        c = t.webhook_cursor
        with self.db.read() as conn:
            last = conn.execute(select(c.c.last_event_id).where(c.c.name == consumer)).scalar()
        return None if last is None else int(last)


__all__ = [
    "EventsRepo",
    "GapNotes",
    "advance_in",
    "cursor_in",
    "insert_event",
    "insert_message_events",
    "read_after_in",
    "safe_prefix",
    "type_matches",
]
