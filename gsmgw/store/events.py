"""Events: the durable outbox, and the cursors of the doors that consume it.

Every state change that matters writes an event in its own transaction
(``insert_event``, ``insert_message_events``). A door that pushes events
(webhooks, MQTT, e-mail, SMPP) is a consumer with a durable cursor, a row of
``webhook_cursor`` under its own name: it reads the events after its cursor
(``read_after``), pushes them, and only then moves the cursor (``advance``, a
compare-and-set, so two hosts running the same consumer never move it backwards
and never both move it from the same place).

The gap rule: event ids come from a sequence, and on PostgreSQL a transaction that
took an id may commit after one that took a later id. A reader stops before a gap
in the ids until the event after it is ``gap_wait_s`` old (a rolled-back insert
leaves a gap forever). On SQLite writers commit one at a time, so ``gap_wait_s=0``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection, Iterable, Sequence
from typing import Any, Literal

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from gsmgw.domain import EventType
from gsmgw.store import tables as t
from gsmgw.store.executor import Executor, batchable
from gsmgw.store.records import OutboxEvent, OutboxRead, utcnow


def insert_event(conn: Connection, type_: EventType, now: dt.datetime, *, message_id: str | None = None,
                 modem_id: str | None = None, payload: dict[str, Any] | None = None) -> None:
    """One event, in the caller's transaction."""
    conn.execute(
        insert(t.events).values(
            type=type_, message_id=message_id, modem_id=modem_id,
            payload=json.dumps(payload or {}, default=str), created_at=now,
        )
    )


def insert_message_events(conn: Connection, type_: EventType, ids: Iterable[str], now: dt.datetime) -> None:
    """One event per message (``sms:sent`` ...), in the caller's transaction."""
    rows = [{"type": type_, "message_id": i, "payload": "{}", "created_at": now} for i in ids]
    if rows:
        conn.execute(_INSERT_EVENTS, rows)


_INSERT_EVENTS = insert(t.events)  # built once: every settle writes an event through it


def type_matches(patterns: Collection[str], type_: str) -> bool:
    """``*`` = every event; ``sms:*`` = every event of a family; else the exact type."""
    for p in patterns:
        if p == "*" or p == type_:
            return True
        if p.endswith(":*") and type_.startswith(p[:-1]):
            return True
    return False


def safe_prefix(rows: Sequence[Any], cursor: int, now: dt.datetime, gap_wait_s: float) -> list[Any]:
    """The rows after ``cursor`` (in id order) a reader may take now: up to the first
    gap in the ids whose next event is younger than ``gap_wait_s``."""
    taken = []
    expected = cursor + 1
    for row in rows:
        if row.id != expected and (now - row.created_at).total_seconds() < gap_wait_s:
            break
        taken.append(row)
        expected = row.id + 1
    return taken


def cursor_in(conn: Connection, consumer: str, now: dt.datetime) -> int:
    """The consumer's cursor, created at 0 in this transaction if it has none."""
    c = t.webhook_cursor
    last = conn.execute(select(c.c.last_event_id).where(c.c.name == consumer)).scalar()
    if last is None:
        conn.execute(insert(c).values(name=consumer, last_event_id=0, updated_at=now))
        return 0
    return int(last)


def read_after_in(conn: Connection, consumer: str, *, limit: int, gap_wait_s: float,
                  types: Collection[str] | None, now: dt.datetime) -> OutboxRead:
    """``EventsRepo.read_after`` on an open transaction (the webhook fan-out's)."""
    e = t.events
    cursor = cursor_in(conn, consumer, now)
    rows = conn.execute(select(e).where(e.c.id > cursor).order_by(e.c.id).limit(limit)).all()
    taken = safe_prefix(rows, cursor, now, gap_wait_s)
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
    c = t.webhook_cursor
    res = conn.execute(
        update(c).where(c.c.name == consumer, c.c.last_event_id == from_id)
        .values(last_event_id=to_id, updated_at=now)
    )
    return res.rowcount == 1


class EventsRepo:
    def __init__(self, db: Executor) -> None:
        self.db = db

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
    def list_events(self, *, after_id: int = 0, type_: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        e = t.events
        q = select(e).where(e.c.id > after_id).order_by(e.c.id).limit(limit)
        if type_:
            q = q.where(e.c.type == type_)
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q).all()]

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
                                 now=now or utcnow())

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
    "advance_in",
    "cursor_in",
    "insert_event",
    "insert_message_events",
    "read_after_in",
    "safe_prefix",
    "type_matches",
]
