"""Messages and their parts: enqueue (the one durable commit), cancel, idempotency,
reading, expiry. Every state change that matters is one transaction; ``enqueue``
returns only after the commit, so an accepted message survives a crash
(``kill -9``) that comes after the HTTP reply."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from gsmgw.domain import FINAL_MESSAGE_STATES, EventType, MessageState
from gsmgw.store import tables as t
from gsmgw.store.events import insert_message_events
from gsmgw.store.executor import Executor, batchable
from gsmgw.store.prepared import prebuilt, run
from gsmgw.store.records import EnqueueResult, NewMessage, id_floor, new_id, utcnow

# PostgreSQL NOTIFY channel: a commit that queues work wakes every host's pool.
WORK_CHANNEL = "gsmgw_work"


def settle_states(states: Sequence[str]) -> MessageState | None:
    """A message's state from its parts' states; None while parts remain to send."""
    s = set(states)
    # UNKNOWN first: if one part may have reached the phone, "failed" would invite a resend.
    if MessageState.UNKNOWN in s:
        return MessageState.UNKNOWN
    if MessageState.FAILED in s:
        return MessageState.FAILED
    if MessageState.EXPIRED in s:
        return MessageState.EXPIRED
    if MessageState.CANCELLED in s and not (s & {MessageState.QUEUED, MessageState.SENDING}):
        return MessageState.CANCELLED
    if MessageState.QUEUED in s or MessageState.SENDING in s:
        return None
    if s == {MessageState.DELIVERED}:
        return MessageState.DELIVERED
    return MessageState.SENT


def batch_view(batch_id: str, counts: dict[str, int], created_at: dt.datetime) -> dict[str, Any]:
    """A batch's progress from its messages per state."""
    final = sum(n for s, n in counts.items() if s in FINAL_MESSAGE_STATES)
    return {
        "batch_id": batch_id,
        "total": sum(counts.values()),
        "counts": counts,
        "created_at": created_at,
        "final": final,
        # Sent counts as progress: its status report may never come.
        "done": final + counts.get(MessageState.SENT, 0),
        "delivered": counts.get(MessageState.DELIVERED, 0),
        "failed": sum(counts.get(s, 0) for s in (MessageState.FAILED, MessageState.UNKNOWN, MessageState.EXPIRED)),
    }


# Built once: SQLAlchemy keys its compiled-statement cache on the statement, and a
# statement object reused with bind parameters skips building and hashing it anew.
_DUE_WORK = (
    select(t.messages.c.id)
    .where(t.messages.c.state == MessageState.QUEUED.value, t.messages.c.send_at <= bindparam("b_now"))
    .limit(1)
)

_LAST_SIM = (
    select(t.messages.c.modem_id)
    .where(t.messages.c.to_number == bindparam("b_to"), t.messages.c.sent_at >= bindparam("b_since"),
           t.messages.c.modem_id.is_not(None))
    .order_by(t.messages.c.sent_at.desc())
    .limit(1)
)
_DOOR_OF = select(t.messages.c.door).where(t.messages.c.id == bindparam("b_mid"))

# The enqueue's inserts, built once with every column enqueue writes (bound as b_<column>).
_MESSAGE_COLUMNS = (
    "id", "batch_id", "api_key_id", "idempotency_key", "idempotency_fingerprint", "to_number", "text", "encoding",
    "parts_total", "state", "priority", "sim_requested", "flash", "delivery_report", "transactional",
    "resend_unknown", "callback_url", "door", "door_data", "schedule_id", "campaign_id", "concat_ref", "attempts",
    "created_at", "updated_at", "send_at", "valid_until", "route_group", "group_until", "preferred_sim",
    "prefer_until",
)
_INSERT_MESSAGE = prebuilt(insert(t.messages).values({c: bindparam(f"b_{c}") for c in _MESSAGE_COLUMNS}))
_INSERT_PART = prebuilt(insert(t.message_parts).values(
    {c: bindparam(f"b_{c}") for c in ("message_id", "seq", "state", "recipient")}))
_EXPIRED = (
    select(t.messages.c.id)
    .where(t.messages.c.state == MessageState.QUEUED.value, t.messages.c.valid_until <= bindparam("b_now"))
    .limit(1)
)
_LEASE_RAN_OUT = (
    select(t.messages.c.id)
    .where(t.messages.c.state == MessageState.SENDING.value, t.messages.c.lease_until < bindparam("b_now"))
    .limit(1)
)


class MessagesRepo:
    def __init__(self, db: Executor) -> None:
        self.db = db
        # counts_by_state: (reuse until this monotonic time, counts of the states not live)
        self._final_counts: tuple[float, dict[str, int]] | None = None

    @batchable
    def enqueue(
        self,
        items: Sequence[NewMessage],
        *,
        api_key_id: str | None = None,
        idempotency_key: str | None = None,
        idempotency_fingerprint: str | None = None,
        default_ttl_s: float = 86400.0,
        sticky_s: float = 0.0,
        sticky_fallback_s: float = 60.0,
    ) -> EnqueueResult:
        """Queue messages in one transaction; returns once committed."""
        if not items:
            raise ValueError("nothing to enqueue")
        now = utcnow()
        batch_id = new_id()
        rows: list[dict[str, Any]] = []
        parts: list[dict[str, Any]] = []
        sticky: dict[str, str] = {}
        if sticky_s > 0:
            sticky = self.last_sims({m.to_number for m in items if m.sim_requested is None},
                                    now - dt.timedelta(seconds=sticky_s))
        # Ids sorted into recipient order: a replay (find_by_idempotency_key, by id)
        # then lists them in the order of the request, recipient by recipient.
        ids = [batch_id] if len(items) == 1 else sorted(new_id() for _ in items)
        for i, m in enumerate(items):
            mid = ids[i]
            send_at = m.send_at or now
            preferred = sticky.get(m.to_number) if m.sim_requested is None else None
            rows.append(
                {
                    "b_id": mid,
                    "b_batch_id": batch_id,
                    "b_api_key_id": api_key_id,
                    # Only the first row carries the key: the unique constraint then
                    # makes a replayed request fail as a whole.
                    "b_idempotency_key": idempotency_key if i == 0 else None,
                    "b_idempotency_fingerprint": idempotency_fingerprint if i == 0 and idempotency_key else None,
                    "b_to_number": m.to_number,
                    "b_text": m.text,
                    "b_encoding": m.encoding,
                    "b_parts_total": m.parts_total,
                    "b_state": MessageState.QUEUED.value,
                    "b_priority": m.priority,
                    "b_sim_requested": m.sim_requested,
                    "b_flash": m.flash,
                    "b_delivery_report": m.delivery_report,
                    "b_transactional": m.transactional,
                    "b_resend_unknown": m.resend_unknown,
                    "b_callback_url": m.callback_url,
                    "b_door": m.door,
                    "b_door_data": m.door_data,
                    "b_schedule_id": m.schedule_id,
                    "b_campaign_id": m.campaign_id,
                    "b_concat_ref": secrets.randbelow(256),  # 8-bit IEI: what every phone reassembles
                    "b_attempts": 0,
                    "b_created_at": now,
                    "b_updated_at": now,
                    "b_send_at": send_at,
                    "b_valid_until": m.valid_until or now + dt.timedelta(seconds=default_ttl_s),
                    "b_route_group": m.route_group,
                    "b_group_until": send_at + dt.timedelta(seconds=m.route_fallback_s)
                    if m.route_group and m.route_fallback_s
                    else None,
                    "b_preferred_sim": preferred,
                    "b_prefer_until": send_at + dt.timedelta(seconds=sticky_fallback_s) if preferred else None,
                }
            )
            for seq in range(1, m.parts_total + 1):
                parts.append(
                    {
                        "b_message_id": mid,
                        "b_seq": seq,
                        "b_state": MessageState.QUEUED.value,
                        "b_recipient": m.to_number,
                    }
                )
        try:
            with self.db.tx() as conn:
                run(conn, _INSERT_MESSAGE, rows[0] if len(rows) == 1 else rows)
                run(conn, _INSERT_PART, parts[0] if len(parts) == 1 else parts)
                if not self.db.is_sqlite:
                    # Wakes idle dispatchers on every host at commit (LISTEN in listen_for_work).
                    conn.execute(text(f"NOTIFY {WORK_CHANNEL}"))
                # No event for "queued": the row records it, and a million-message bulk
                # would otherwise leave a million events for the webhook fan-out to walk.
        except IntegrityError:
            if idempotency_key is None or self.db.in_batch:
                raise  # inside a group commit: let the batch fall back to one-by-one
            replay = self.find_by_idempotency_key(api_key_id, idempotency_key)
            if replay is None:
                raise
            return replay
        return EnqueueResult(batch_id=batch_id, message_ids=tuple(r["b_id"] for r in rows))

    @batchable
    def pending_work(self, now: dt.datetime | None = None) -> tuple[bool, bool, bool]:
        """(a queued message is due, a queued message's validity ended, a claim's lease
        ran out): the pool's one periodic read, which tells it whether to wake its
        workers and whether ``expire_due`` and ``ClaimsRepo.recover(only_expired_leases
        =True)`` have work."""
        params = {"b_now": now or utcnow()}
        with self.db.read() as conn:
            return (conn.execute(_DUE_WORK, params).first() is not None,
                    conn.execute(_EXPIRED, params).first() is not None,
                    conn.execute(_LEASE_RAN_OUT, params).first() is not None)

    def last_sims(self, numbers: set[str], since: dt.datetime) -> dict[str, str]:
        """The SIM each number last got a message from, since ``since``."""
        if not numbers:
            return {}
        out: dict[str, str] = {}
        with self.db.read() as conn:
            # One indexed probe per number (ix_messages_to_number_sent, newest first):
            # constant time whatever the number's history (issue 17).
            for number in numbers:
                sim = conn.execute(_LAST_SIM, {"b_to": number, "b_since": since}).scalar()
                if sim is not None:
                    out[number] = sim
        return out

    @batchable
    def cancel(self, message_id: str) -> tuple[bool, str | None]:
        """Cancel a queued message. Returns (cancelled?, state now or None if absent)."""
        now = utcnow()
        m, p = t.messages, t.message_parts
        with self.db.tx() as conn:
            res = conn.execute(
                update(m)
                .where(m.c.id == message_id, m.c.state == MessageState.QUEUED)
                .values(state=MessageState.CANCELLED, updated_at=now, error_code="cancelled",
                        error_text="cancelled through the API")
            )
            if res.rowcount == 1:
                conn.execute(
                    update(p)
                    .where(p.c.message_id == message_id, p.c.state == MessageState.QUEUED)
                    .values(state=MessageState.CANCELLED)
                )
                insert_message_events(conn, EventType.SMS_CANCELLED, [message_id], now)
                return True, MessageState.CANCELLED.value
            state = conn.execute(select(m.c.state).where(m.c.id == message_id)).scalar()
            return False, state

    @batchable
    def find_by_idempotency_key(self, api_key_id: str | None, key: str) -> EnqueueResult | None:
        """The request an Idempotency-Key was first used for: its batch, fingerprint and
        messages in recipient order (the ids were made in that order)."""
        m = t.messages
        with self.db.read() as conn:
            first = conn.execute(
                select(m.c.batch_id, m.c.idempotency_fingerprint).where(
                    m.c.api_key_id == api_key_id, m.c.idempotency_key == key
                )
            ).first()
            if first is None:
                return None
            rows = conn.execute(
                select(m.c.id, m.c.to_number, m.c.encoding, m.c.parts_total)
                .where(m.c.batch_id == first.batch_id)
                .order_by(m.c.id)
            ).all()
        return EnqueueResult(batch_id=first.batch_id, message_ids=tuple(r.id for r in rows), replayed=True,
                             fingerprint=first.idempotency_fingerprint,
                             messages=tuple((r.id, r.to_number, r.encoding, r.parts_total) for r in rows))

    @batchable
    def count_accepted_since(self, api_key_id: str, since: dt.datetime) -> int:
        """Messages a key has had accepted since ``since`` (daily quotas)."""
        with self.db.read() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(t.messages)
                    .where(t.messages.c.api_key_id == api_key_id, t.messages.c.created_at >= since)
                ).scalar_one()
            )

    @batchable
    def queue_depth(self) -> int:
        with self.db.read() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(t.messages)
                    .where(t.messages.c.state.in_([MessageState.QUEUED, MessageState.SENDING]))
                ).scalar_one()
            )

    # --- reading ------------------------------------------------------------

    @batchable
    def get_message(self, message_id: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            row = conn.execute(select(t.messages).where(t.messages.c.id == message_id)).first()
            if row is None:
                return None
            parts = conn.execute(
                select(t.message_parts)
                .where(t.message_parts.c.message_id == message_id)
                .order_by(t.message_parts.c.seq)
            ).all()
        out = dict(row._mapping)
        out["parts"] = [dict(p._mapping) for p in parts]
        return out

    @batchable
    def door_of(self, message_id: str) -> str | None:
        """The door a message came through (None if it has no door or does not exist):
        a door's event handler reads this before it reads the whole message."""
        with self.db.read() as conn:
            return conn.execute(_DOOR_OF, {"b_mid": message_id}).scalar()

    @batchable
    def get_messages(self, message_ids: Sequence[str]) -> list[dict[str, Any]]:
        """``get_message`` for many ids in a few queries: the ones that exist, in the order given."""
        m, p = t.messages, t.message_parts
        found: dict[str, dict[str, Any]] = {}
        ids = list(dict.fromkeys(message_ids))
        with self.db.read() as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                for row in conn.execute(select(m).where(m.c.id.in_(chunk))).all():
                    found[row.id] = {**row._mapping, "parts": []}
                parts = conn.execute(
                    select(p).where(p.c.message_id.in_(chunk)).order_by(p.c.message_id, p.c.seq)
                ).all()
                for part in parts:
                    if part.message_id in found:
                        found[part.message_id]["parts"].append(dict(part._mapping))
        return [found[i] for i in ids if i in found]

    @batchable
    def list_messages(
        self,
        *,
        state: str | None = None,
        to_number: str | None = None,
        batch_id: str | None = None,
        api_key_id: str | None = None,
        before_id: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Newest first; ``api_key_id`` limits the list to one key's messages."""
        q = select(t.messages).order_by(t.messages.c.id.desc()).limit(limit)
        if api_key_id is not None:
            q = q.where(t.messages.c.api_key_id == api_key_id)
        if batch_id:
            q = q.where(t.messages.c.batch_id == batch_id)
        if state:
            q = q.where(t.messages.c.state == state)
        if to_number:
            q = q.where(t.messages.c.to_number == to_number)
        if before_id:
            q = q.where(t.messages.c.id < before_id)
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q).all()]

    @batchable
    def search(
        self,
        *,
        state: str | None = None,
        number: str | None = None,
        number_suffix: str | None = None,
        sim: str | None = None,
        batch_id: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        before_id: str | None = None,
        owner: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Messages newest first, filtered (the console's search); ``before_id`` pages on.
        ``owner`` (an API key id) limits them to the messages that key queued. Times are
        ranges of the time-ordered primary key."""
        m = t.messages
        q = select(m).order_by(m.c.id.desc()).limit(limit)
        if owner is not None:
            q = q.where(m.c.api_key_id == owner)
        if state:
            q = q.where(m.c.state == state)
        if number:
            q = q.where(m.c.to_number == number)
        if number_suffix:
            q = q.where(m.c.to_number.like(f"%{number_suffix}"))
        if sim:
            q = q.where(or_(m.c.modem_id == sim, m.c.sim_requested == sim))
        if batch_id:
            q = q.where(m.c.batch_id == batch_id)
        if since is not None:
            q = q.where(m.c.id >= id_floor(since))
        if until is not None:
            q = q.where(m.c.id < id_floor(until))
        if before_id:
            q = q.where(m.c.id < before_id)
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q).all()]

    @batchable
    def batch_progress(self, batch_id: str, *, owner: str | None = None) -> dict[str, Any] | None:
        """A batch's messages per state, how many are final, and when it was queued
        (``owner``: that key's messages only); None if there is no such batch."""
        m = t.messages
        q = select(m.c.state, func.count(), func.min(m.c.created_at)).where(m.c.batch_id == batch_id)
        if owner is not None:
            q = q.where(m.c.api_key_id == owner)
        with self.db.read() as conn:
            rows = conn.execute(q.group_by(m.c.state)).all()
        if not rows:
            return None
        return batch_view(batch_id, {r[0]: int(r[1]) for r in rows}, min(r[2] for r in rows))

    # --- expiry ---------------------------------------------------------------

    @batchable
    def expire_due(self, now: dt.datetime | None = None) -> list[str]:
        """Queued messages past their validity become ``expired``; returns their ids."""
        now = now or utcnow()
        with self.db.tx() as conn:
            ids = list(
                conn.execute(
                    select(t.messages.c.id)
                    .where(
                        t.messages.c.state == MessageState.QUEUED,
                        t.messages.c.valid_until <= now,
                    )
                    .limit(1000)
                ).scalars()
            )
            if ids:
                conn.execute(
                    update(t.messages)
                    .where(t.messages.c.id.in_(ids), t.messages.c.state == MessageState.QUEUED)
                    .values(
                        state=MessageState.EXPIRED,
                        updated_at=now,
                        error_code="expired",
                        error_text="validity ended before it could be sent",
                    )
                )
                conn.execute(
                    update(t.message_parts)
                    .where(
                        t.message_parts.c.message_id.in_(ids),
                        t.message_parts.c.state == MessageState.QUEUED,
                    )
                    .values(state=MessageState.EXPIRED)
                )
                insert_message_events(conn, EventType.SMS_EXPIRED, ids, now)
        return ids

    @batchable
    def counts_by_state(self) -> dict[str, int]:
        """Messages per state (``GET /api/v1/status``, ``/metrics``, the console).

        The live states (queued, sending) are counted each time, through the claim
        index: a range as long as the queue. The others need a pass over every message
        kept, which grows with the retention: 70-90 ms of CPU at 1,000,000 messages on a
        2-core Xeon (``bench.prof_counts``), several times that on a Raspberry Pi, on
        every scrape. That count is reused for as long as ``count_reuse_s`` says, so
        that monitoring a big store spends at most about 1 % of a core on it; a small
        store is counted exactly each time."""
        now = time.monotonic()
        cached = self._final_counts
        with self.db.read() as conn:
            live = {state: n for state, n in conn.execute(_LIVE_COUNTS).all()}
            if cached is None or now >= cached[0]:
                t0 = time.perf_counter()
                rest = {state: n for state, n in conn.execute(_ALL_COUNTS).all() if state not in _LIVE}
                cached = self._final_counts = (now + count_reuse_s(time.perf_counter() - t0), rest)
        counts = {**cached[1], **live}
        return {state: counts[state] for state in sorted(counts)}


# counts_by_state: the states counted each time (a range of the claim index), and how
# long the full count of the rest is reused (see there).
_LIVE = (MessageState.QUEUED.value, MessageState.SENDING.value)
_LIVE_COUNTS = (select(t.messages.c.state, func.count()).where(t.messages.c.state.in_(_LIVE))
                .group_by(t.messages.c.state))
_ALL_COUNTS = select(t.messages.c.state, func.count()).group_by(t.messages.c.state)
COUNT_EXACT_S = 0.01
COUNT_REUSE = 100.0
COUNT_REUSE_MAX_S = 60.0


def count_reuse_s(took_s: float) -> float:
    """How long counts_by_state reuses a full count that took ``took_s``."""
    return 0.0 if took_s < COUNT_EXACT_S else min(COUNT_REUSE_MAX_S, took_s * COUNT_REUSE)


__all__ = ["WORK_CHANNEL", "MessagesRepo", "batch_view", "settle_states"]
