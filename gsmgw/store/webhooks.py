"""Webhook deliveries: the native webhooks' consumer of the outbox.

``webhook_fanout`` reads the events after the ``main`` cursor (the same read and
compare-and-set as every outbox consumer, ``gsmgw.store.events``) and turns them
into one ``webhook_deliveries`` row per receiver, in the transaction that moves
the cursor; the sender claims due rows under a lease and settles them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Integer, bindparam, func, insert, or_, select, update

from gsmgw.store import tables as t
from gsmgw.store.events import GapNotes, advance_in, read_after_in
from gsmgw.store.executor import Executor
from gsmgw.store.prepared import prebuilt, run
from gsmgw.store.records import utcnow

# render(event, message row or None) -> the JSON body of a webhook.
RenderFn = Callable[[Any, Any], str]

CURSOR_NAME = "main"


class _CursorMoved(Exception):
    pass


class Fanned(NamedTuple):
    """What one fan-out did: events read past the cursor, delivery rows queued."""

    events: int
    deliveries: int


NOTHING_FANNED = Fanned(0, 0)


class _CallbackOnly(NamedTuple):
    """What ``targets`` reads of a message (its own receiver URL)."""

    callback_url: str | None


class WebhooksRepo:
    def __init__(self, db: Executor, host: str) -> None:
        self.db = db
        self.gaps = GapNotes()
        self.host = host

    def webhook_fanout(
        self,
        targets: Callable[[Any, Any], list[str]],
        render: RenderFn,
        *,
        limit: int = 500,
        gap_wait_s: float = 30.0,
        now: dt.datetime | None = None,
    ) -> Fanned:
        """Turn events after the cursor into deliveries; returns how many events were
        read and how many deliveries that queued (none: the sender need not look for due
        ones).

        ``targets(event, message row or None)`` names the receiver URLs of an event.
        Event ids come from a sequence, and on PostgreSQL a transaction that took an
        id may commit after a later one: the cursor stops before a gap until no
        transaction that could fill it is alive (``gsmgw.store.events``, the gap
        rule), or the event after it is ``gap_wait_s`` old (a safety net).
        """
        now = now or utcnow()
        try:
            return self._fanout(targets, render, limit=limit, gap_wait_s=gap_wait_s, now=now)
        except _CursorMoved:
            return NOTHING_FANNED

    def _fanout(self, targets: Callable[[Any, Any], list[str]], render: RenderFn, *, limit: int,
                gap_wait_s: float, now: dt.datetime) -> Fanned:
        d, m = t.webhook_deliveries, t.messages
        with self.db.engine.begin() as conn:
            batch = read_after_in(conn, CURSOR_NAME, limit=limit, gap_wait_s=gap_wait_s, types=None, now=now,
                                  gaps=self.gaps)
            if not batch.events:
                return NOTHING_FANNED
            msg_ids = {ev.message_id for ev in batch.events if ev.message_id}
            # Targets depend on a message's callback_url only: read that first, and the
            # whole rows (for the bodies) only of events that go somewhere.
            callbacks = {}
            if msg_ids:  # the messages of the events read (the same range, no list of ids)
                callbacks = dict(run(conn, _CALLBACKS, {"b_after": batch.cursor, "b_through": batch.through_id}).all())
            routed = []
            for ev in batch.events:
                stub = _CallbackOnly(callbacks[ev.message_id]) if ev.message_id in callbacks else None
                urls = list(dict.fromkeys(targets(ev, stub)))
                if urls:
                    routed.append((ev, urls))
            need = {ev.message_id for ev, _urls in routed if ev.message_id in callbacks}
            messages = {}
            if need:
                messages = {r.id: r for r in conn.execute(select(m).where(m.c.id.in_(need))).all()}
            rows = []
            for ev, urls in routed:
                msg = messages.get(ev.message_id) if ev.message_id else None
                body = render(ev, msg)
                for url in urls:
                    rows.append({
                        "event_id": ev.id, "event_type": ev.type, "url": url, "body": body,
                        "state": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now,
                    })
            if not advance_in(conn, CURSOR_NAME, batch.cursor, batch.through_id, now):
                raise _CursorMoved  # another host fanned these out first: roll back
            if rows:
                conn.execute(insert(d), rows)
            return Fanned(len(batch.events), len(rows))

    def claim_webhook_deliveries(self, *, limit: int = 50, lease_s: float = 60.0,
                                 exclude_urls: Sequence[str] = (),
                                 now: dt.datetime | None = None) -> list[dict[str, Any]]:
        """Due pending deliveries, oldest first, leased to this host."""
        now = now or utcnow()
        d = t.webhook_deliveries
        with self.db.engine.begin() as conn:
            q = _DUE if not exclude_urls else _DUE.where(d.c.url.not_in(list(exclude_urls)))
            rows = [r._asdict() for r in run(conn, q, {"b_now": now, "b_limit": limit}).all()]
            if rows:
                conn.execute(update(d).where(d.c.id.in_([r["id"] for r in rows]))
                             .values(lease_until=now + dt.timedelta(seconds=lease_s), lease_owner=self.host))
        return rows

    def release_webhook_leases(self) -> int:
        """Deliveries this host claimed and did not settle (stopped, or crashed before
        this start) are free again at once instead of when their lease runs out."""
        d = t.webhook_deliveries
        with self.db.engine.begin() as conn:
            res = conn.execute(
                update(d).where(d.c.lease_owner == self.host, d.c.state == "pending")
                .values(lease_until=None, lease_owner=None)
            )
        return int(res.rowcount or 0)

    def settle_webhook_delivery(
        self,
        delivery_id: int,
        *,
        ok: bool,
        status: int | None,
        error: str | None,
        retry_at: dt.datetime | None = None,
        attempted: bool = True,
        now: dt.datetime | None = None,
    ) -> str:
        """Record an attempt. ``retry_at`` None after a failure = give up (``failed``).
        ``attempted=False`` releases a claimed row untried. Returns the new state."""
        now = now or utcnow()
        d = t.webhook_deliveries
        values: dict[str, Any] = {"lease_until": None, "lease_owner": None}
        if attempted:
            values.update(attempts=d.c.attempts + 1, last_status=status, last_error=error)
        if ok:
            values.update(state="delivered", delivered_at=now, last_error=None)
        elif retry_at is not None:
            values.update(state="pending", next_attempt_at=retry_at)
        else:
            values.update(state="failed")
        with self.db.engine.begin() as conn:
            conn.execute(update(d).where(d.c.id == delivery_id).values(**values))
        return str(values["state"])

    def wake_webhook_target(self, url: str, now: dt.datetime | None = None) -> int:
        """The receiver answered again: its backed-off deliveries are due at once."""
        now = now or utcnow()
        d = t.webhook_deliveries
        with self.db.engine.begin() as conn:
            res = conn.execute(
                update(d).where(d.c.url == url, d.c.state == "pending", d.c.next_attempt_at > now)
                .values(next_attempt_at=now)
            )
        return int(res.rowcount or 0)

    def list_webhook_deliveries(self, *, state: str | None = None, event_id: int | None = None,
                                before_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        d = t.webhook_deliveries
        q = select(d).order_by(d.c.id.desc()).limit(limit)
        if state:
            q = q.where(d.c.state == state)
        if event_id is not None:
            q = q.where(d.c.event_id == event_id)
        if before_id is not None:
            q = q.where(d.c.id < before_id)
        with self.db.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q).all()]

    def retry_failed_webhooks(self, *, now: dt.datetime | None = None) -> int:
        """Give every ``failed`` delivery a fresh set of attempts."""
        now = now or utcnow()
        d = t.webhook_deliveries
        with self.db.engine.begin() as conn:
            res = conn.execute(
                update(d).where(d.c.state == "failed")
                .values(state="pending", attempts=0, next_attempt_at=now, lease_until=None, lease_owner=None)
            )
        return int(res.rowcount or 0)

    def webhook_counts(self) -> dict[str, int]:
        d = t.webhook_deliveries
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(d.c.state, func.count()).group_by(d.c.state)).all()
        return {s: n for s, n in rows}


# Built once (prepared.run's fast path on SQLite): the webhook sender runs them a few
# times a second on a busy pool, most rounds finding no receiver (issue 17).
# The messages of the events after a cursor, up to where a batch read them.
_CALLBACKS = prebuilt(
    select(t.messages.c.id, t.messages.c.callback_url).where(t.messages.c.id.in_(
        select(t.events.c.message_id).where(t.events.c.id > bindparam("b_after"),
                                            t.events.c.id <= bindparam("b_through"))))
)
# Due pending deliveries, oldest first (claim_webhook_deliveries; a receiver in backoff
# is left out with one more term).
_DUE = prebuilt(
    select(t.webhook_deliveries.c.id, t.webhook_deliveries.c.event_id, t.webhook_deliveries.c.event_type,
           t.webhook_deliveries.c.url, t.webhook_deliveries.c.body, t.webhook_deliveries.c.attempts)
    .where(t.webhook_deliveries.c.state == "pending", t.webhook_deliveries.c.next_attempt_at <= bindparam("b_now"),
           or_(t.webhook_deliveries.c.lease_until.is_(None), t.webhook_deliveries.c.lease_until < bindparam("b_now")))
    .order_by(t.webhook_deliveries.c.id).limit(bindparam("b_limit", type_=Integer)).with_for_update(skip_locked=True)
)

__all__ = ["CURSOR_NAME", "RenderFn", "WebhooksRepo"]
