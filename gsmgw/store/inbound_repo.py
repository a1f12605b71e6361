"""Store methods for inbound SMS, opt-out and the webhook outbox (mixed into Store).

Inbound: every part is committed (``inbound_parts``, unique dedup key) before it is
deleted from the SIM; the part that completes a message assembles it in the same
transaction, together with the opt-out change its text asks for and the
``sms:received`` event. Decoding and text joining stay out of the store: the pool
passes pure callables (``join``, ``classify``).

Webhooks: the ``events`` table is the outbox. ``webhook_fanout`` turns new events
into one ``webhook_deliveries`` row per receiver (cursor in ``webhook_cursor``); the
sender claims due rows under a lease and settles them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from gsmgw.domain import EventType
from gsmgw.isotime import iso_or_value
from gsmgw.store import tables as t

if TYPE_CHECKING:
    from sqlalchemy import Engine

# join(parts) -> text; parts have .concat_seq, .encoding, .text, .user_data (hex).
JoinFn = Callable[[Sequence[Any]], str]
# classify(text) -> ("stop" | "start", keyword) or None.
ClassifyFn = Callable[[str], "tuple[str, str] | None"]
# render(event row, message row or None) -> the JSON body of a webhook.
RenderFn = Callable[[Any, Any], str]

CURSOR_NAME = "main"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_id() -> str:
    from gsmgw.store.repo import new_id

    return new_id()


def _same_number(a: str, b: str) -> bool:
    from gsmgw.store.repo import same_number

    return same_number(a, b)


def number_key(number: str) -> str:
    """The last 8 digits: international and national renderings share it."""
    digits = "".join(c for c in number if c.isdigit())
    return digits[-8:] if digits else number[-8:]


@dataclass(frozen=True, slots=True)
class InboundPart:
    """One decoded SMS-DELIVER as read from a SIM (or routed with +CMT)."""

    modem_id: str
    dedup_key: str
    sender: str
    scts: dt.datetime | None
    encoding: str
    text: str
    user_data: str  # hex, UDH removed
    pdu: str
    concat_ref: int | None = None
    concat_bits: int | None = None
    concat_total: int = 1
    concat_seq: int = 1


@dataclass(frozen=True, slots=True)
class StoredInbound:
    id: str
    modem_id: str
    sender: str
    text: str
    encoding: str
    parts_total: int
    parts_received: int
    complete: bool
    missing: tuple[int, ...]
    in_reply_to: str | None
    sent_at: dt.datetime | None
    received_at: dt.datetime
    # ("stop" | "start", keyword) when the text changed the sender's opt-out.
    optout: tuple[str, str] | None = None
    # The opt-out list actually changed (a repeated STOP does not).
    optout_changed: bool = False


@dataclass(frozen=True, slots=True)
class IngestResult:
    duplicate: bool
    # Set when this part completed (or was) a whole message.
    message: StoredInbound | None = None


class _CursorMoved(Exception):
    pass


class InboundRepo:
    """Mixin: ``Store`` inherits these; they use ``self.engine`` like the rest of the store."""

    engine: Engine
    is_sqlite: bool
    host: str

    # --- inbound ----------------------------------------------------------------

    def ingest_inbound_part(
        self,
        part: InboundPart,
        *,
        join: JoinFn,
        classify: ClassifyFn,
        reply_window_s: float = 30 * 86400.0,
        now: dt.datetime | None = None,
    ) -> IngestResult:
        """Commit one part; assemble its message if it was the last one missing.

        Returns ``duplicate=True`` when the part was stored before (the caller may
        delete it from the SIM either way: it is safe in the database).
        """
        now = now or _now()
        p = t.inbound_parts
        try:
            with self.engine.begin() as conn:
                seen = conn.execute(select(p.c.id).where(p.c.dedup_key == part.dedup_key)).first()
                if seen is not None:
                    return IngestResult(duplicate=True)
                conn.execute(
                    insert(p).values(
                        dedup_key=part.dedup_key,
                        modem_id=part.modem_id,
                        sender=part.sender,
                        concat_ref=part.concat_ref,
                        concat_bits=part.concat_bits,
                        concat_total=part.concat_total,
                        concat_seq=part.concat_seq,
                        encoding=part.encoding,
                        text=part.text,
                        user_data=part.user_data,
                        pdu=part.pdu,
                        scts=part.scts,
                        received_at=now,
                    )
                )
                rows = conn.execute(
                    select(p).where(*self._group_cond(part)).order_by(p.c.concat_seq, p.c.id)
                ).all()
                by_seq: dict[int, Any] = {}
                for r in rows:
                    by_seq.setdefault(r.concat_seq, r)
                if part.concat_ref is not None and len(by_seq) < part.concat_total:
                    return IngestResult(duplicate=False)
                msg = self._assemble(conn, rows, by_seq, part.concat_total, join=join,
                                     classify=classify, reply_window_s=reply_window_s, now=now)
                return IngestResult(duplicate=False, message=msg)
        except IntegrityError:
            # Another worker (or host) stored the same part in the meantime.
            return IngestResult(duplicate=True)

    @staticmethod
    def _group_cond(part: Any) -> list[Any]:
        p = t.inbound_parts
        if part.concat_ref is None:
            return [p.c.dedup_key == part.dedup_key]
        return [
            p.c.modem_id == part.modem_id,
            p.c.sender == part.sender,
            p.c.concat_ref == part.concat_ref,
            p.c.concat_bits == part.concat_bits,
            p.c.concat_total == part.concat_total,
            p.c.message_id.is_(None),
        ]

    def _assemble(
        self,
        conn: Connection,
        rows: Sequence[Any],
        by_seq: dict[int, Any],
        total: int,
        *,
        join: JoinFn,
        classify: ClassifyFn,
        reply_window_s: float,
        now: dt.datetime,
    ) -> StoredInbound:
        ordered = [by_seq[s] for s in sorted(by_seq)]
        first = ordered[0]
        missing = tuple(i for i in range(1, total + 1) if i not in by_seq) if first.concat_ref is not None else ()
        complete = not missing
        text = join(ordered)
        if len(ordered) == 1 and first.concat_ref is None:
            key = first.dedup_key
        else:
            key = hashlib.sha256("|".join(sorted(r.dedup_key for r in ordered)).encode()).hexdigest()
        in_reply_to = self._last_outbound(conn, first.sender, first.modem_id,
                                          now - dt.timedelta(seconds=reply_window_s))
        encodings = {r.encoding for r in ordered}
        encoding = encodings.pop() if len(encodings) == 1 else "mixed"
        msg_id = _new_id()
        conn.execute(
            insert(t.inbound_messages).values(
                id=msg_id,
                modem_id=first.modem_id,
                sender=first.sender,
                text=text,
                encoding=encoding,
                parts_total=total if first.concat_ref is not None else 1,
                parts_received=len(ordered),
                complete=complete,
                missing=",".join(str(i) for i in missing),
                concat_ref=first.concat_ref,
                dedup_key=key,
                in_reply_to=in_reply_to,
                sent_at=first.scts,
                received_at=now,
            )
        )
        conn.execute(
            update(t.inbound_parts)
            .where(t.inbound_parts.c.id.in_([r.id for r in rows]))
            .values(message_id=msg_id)
        )
        optout = classify(text) if complete else None
        changed = False
        if optout is not None:
            action, keyword = optout
            if action == "stop":
                changed = self._optout_add(conn, first.sender, "keyword", keyword, msg_id, "", now)
            else:
                changed = self._optout_remove(conn, first.sender, now, source="keyword")
        msg = StoredInbound(
            id=msg_id,
            modem_id=first.modem_id,
            sender=first.sender,
            text=text,
            encoding=encoding,
            parts_total=total if first.concat_ref is not None else 1,
            parts_received=len(ordered),
            complete=complete,
            missing=missing,
            in_reply_to=in_reply_to,
            sent_at=first.scts,
            received_at=now,
            optout=optout,
            optout_changed=changed,
        )
        self._insert_event(conn, EventType.SMS_RECEIVED, now, modem_id=first.modem_id, payload=inbound_view(
            {
                "id": msg_id, "modem_id": first.modem_id, "sender": first.sender, "text": text,
                "encoding": msg.encoding, "parts_total": msg.parts_total,
                "parts_received": msg.parts_received, "complete": complete,
                "missing": msg.missing, "in_reply_to": in_reply_to,
                "sent_at": first.scts, "received_at": now,
            }
        ))
        return msg

    def _last_outbound(self, conn: Connection, sender: str, modem_id: str,
                       since: dt.datetime) -> str | None:
        """The last message sent to this number, preferring one from the same SIM."""
        m = t.messages
        base = select(m.c.id, m.c.to_number, m.c.modem_id).where(m.c.created_at >= since)
        rows = conn.execute(
            base.where(m.c.to_number == sender).order_by(m.c.created_at.desc(), m.c.id.desc()).limit(20)
        ).all()
        if not rows:
            key = number_key(sender)
            if len(key) < 8:
                return None
            rows = [
                r for r in conn.execute(
                    base.where(m.c.to_number.like(f"%{key}")).order_by(m.c.created_at.desc()).limit(50)
                ).all()
                if _same_number(r.to_number, sender)
            ]
        if not rows:
            return None
        same_sim = [r for r in rows if r.modem_id == modem_id]
        return str((same_sim or rows)[0].id)

    def assemble_stale_inbound(
        self,
        *,
        timeout_s: float,
        join: JoinFn,
        classify: ClassifyFn,
        reply_window_s: float = 30 * 86400.0,
        now: dt.datetime | None = None,
    ) -> list[StoredInbound]:
        """Multipart messages whose first part came ``timeout_s`` ago and that still
        miss parts are stored with what arrived, marked incomplete."""
        now = now or _now()
        cutoff = now - dt.timedelta(seconds=timeout_s)
        p = t.inbound_parts
        out: list[StoredInbound] = []
        with self.engine.connect() as conn:
            groups = conn.execute(
                select(p.c.modem_id, p.c.sender, p.c.concat_ref, p.c.concat_bits, p.c.concat_total)
                .where(p.c.message_id.is_(None), p.c.concat_ref.is_not(None))
                .group_by(p.c.modem_id, p.c.sender, p.c.concat_ref, p.c.concat_bits, p.c.concat_total)
                .having(func.min(p.c.received_at) <= cutoff)
            ).all()
        for g in groups:
            with self.engine.begin() as conn:
                rows = conn.execute(
                    select(p).where(*self._group_cond(g)).order_by(p.c.concat_seq, p.c.id)
                    .with_for_update()
                ).all()
                if not rows:
                    continue  # another host took it
                by_seq: dict[int, Any] = {}
                for r in rows:
                    by_seq.setdefault(r.concat_seq, r)
                out.append(self._assemble(conn, rows, by_seq, g.concat_total, join=join,
                                          classify=classify, reply_window_s=reply_window_s, now=now))
        return out

    def pending_inbound_parts(self) -> int:
        """Parts waiting for the rest of their message."""
        with self.engine.connect() as conn:
            return int(conn.execute(
                select(func.count()).select_from(t.inbound_parts)
                .where(t.inbound_parts.c.message_id.is_(None))
            ).scalar_one())

    def prune_inbound_parts(self, *, older_than_s: float, now: dt.datetime | None = None) -> int:
        """Forget the dedup keys of parts whose message was stored long ago."""
        cutoff = (now or _now()) - dt.timedelta(seconds=older_than_s)
        p = t.inbound_parts
        with self.engine.begin() as conn:
            res = conn.execute(delete(p).where(p.c.message_id.is_not(None), p.c.received_at < cutoff))
        return int(res.rowcount or 0)

    def record_undecodable(self, modem_id: str, pdu: str, error: str) -> None:
        """A stored PDU we cannot decode: kept as an event (nothing lost), then deleted."""
        with self.engine.begin() as conn:
            self._insert_event(conn, EventType.SMS_UNDECODABLE, _now(), modem_id=modem_id,
                               payload={"modem_id": modem_id, "pdu": pdu, "error": error})

    def get_inbound(self, inbound_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.inbound_messages).where(t.inbound_messages.c.id == inbound_id)
            ).first()
            if row is None:
                return None
            parts = conn.execute(
                select(t.inbound_parts.c.concat_seq, t.inbound_parts.c.pdu, t.inbound_parts.c.scts,
                       t.inbound_parts.c.received_at)
                .where(t.inbound_parts.c.message_id == inbound_id)
                .order_by(t.inbound_parts.c.concat_seq)
            ).all()
        out = dict(row._mapping)
        out["parts"] = [dict(p._mapping) for p in parts]
        return out

    def list_inbound(
        self,
        *,
        sender: str | None = None,
        modem_id: str | None = None,
        since: dt.datetime | None = None,
        complete: bool | None = None,
        before_id: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        im = t.inbound_messages
        q = select(im).order_by(im.c.id.desc()).limit(limit)
        if sender:
            q = q.where(im.c.sender == sender)
        if modem_id:
            q = q.where(im.c.modem_id == modem_id)
        if since is not None:
            q = q.where(im.c.received_at >= since)
        if complete is not None:
            q = q.where(im.c.complete == complete)
        if before_id:
            q = q.where(im.c.id < before_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q).all()]

    # --- opt-out ------------------------------------------------------------------

    def _optout_rows(self, conn: Connection, number: str) -> list[Any]:
        o = t.optouts
        rows = conn.execute(select(o).where(o.c.number_key == number_key(number))).all()
        return [r for r in rows if _same_number(r.number, number)]

    def _optout_add(self, conn: Connection, number: str, source: str, keyword: str,
                    inbound_id: str | None, note: str, now: dt.datetime) -> bool:
        if self._optout_rows(conn, number):
            return False
        conn.execute(
            insert(t.optouts).values(
                number=number, number_key=number_key(number), source=source, keyword=keyword[:40],
                inbound_id=inbound_id, note=note, created_at=now,
            )
        )
        self._insert_event(conn, EventType.OPTOUT_ADDED, now, payload={
            "number": number, "source": source, "keyword": keyword, "inbound_id": inbound_id})
        return True

    def _optout_remove(self, conn: Connection, number: str, now: dt.datetime, *, source: str) -> bool:
        rows = self._optout_rows(conn, number)
        if not rows:
            return False
        conn.execute(delete(t.optouts).where(t.optouts.c.number.in_([r.number for r in rows])))
        self._insert_event(conn, EventType.OPTOUT_REMOVED, now, payload={"number": number, "source": source})
        return True

    def add_optout(self, number: str, *, source: str = "api", keyword: str = "", note: str = "") -> bool:
        """Put a number on the opt-out list; False if it already was."""
        try:
            with self.engine.begin() as conn:
                return self._optout_add(conn, number, source, keyword, None, note, _now())
        except IntegrityError:
            return False

    def remove_optout(self, number: str, *, source: str = "api") -> bool:
        with self.engine.begin() as conn:
            return self._optout_remove(conn, number, _now(), source=source)

    def opted_out(self, numbers: Sequence[str]) -> set[str]:
        """Those of ``numbers`` that are on the opt-out list (any rendering of them)."""
        if not numbers:
            return set()
        o = t.optouts
        keys = {number_key(n) for n in numbers}
        with self.engine.connect() as conn:
            rows = conn.execute(select(o.c.number).where(o.c.number_key.in_(keys))).all()
        listed = [r.number for r in rows]
        return {n for n in numbers if any(_same_number(n, x) for x in listed)}

    def list_optouts(self, *, after: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        o = t.optouts
        q = select(o).order_by(o.c.number).limit(limit)
        if after:
            q = q.where(o.c.number > after)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q).all()]

    # --- events -----------------------------------------------------------------------

    @staticmethod
    def _insert_event(conn: Connection, type_: EventType, now: dt.datetime, *, message_id: str | None = None,
                      modem_id: str | None = None, payload: dict[str, Any] | None = None) -> None:
        conn.execute(
            insert(t.events).values(
                type=type_, message_id=message_id, modem_id=modem_id,
                payload=json.dumps(payload or {}, default=str), created_at=now,
            )
        )

    def list_events(self, *, after_id: int = 0, type_: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        e = t.events
        q = select(e).where(e.c.id > after_id).order_by(e.c.id).limit(limit)
        if type_:
            q = q.where(e.c.type == type_)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q).all()]

    # --- webhook outbox -------------------------------------------------------------------

    def webhook_fanout(
        self,
        targets: Callable[[Any, Any], list[str]],
        render: RenderFn,
        *,
        limit: int = 500,
        gap_wait_s: float = 30.0,
        now: dt.datetime | None = None,
    ) -> int:
        """Turn events after the cursor into deliveries; returns how many events were read.

        ``targets(event, message row or None)`` names the receiver URLs of an event.
        Event ids come from a sequence, and on PostgreSQL a transaction that took an
        id may commit after a later one: the cursor stops before a gap until the
        event after it is ``gap_wait_s`` old (a rolled-back insert leaves a gap
        forever).
        """
        now = now or _now()
        try:
            return self._fanout(targets, render, limit=limit, gap_wait_s=gap_wait_s, now=now)
        except _CursorMoved:
            return 0

    def _fanout(self, targets: Callable[[Any, Any], list[str]], render: RenderFn, *, limit: int,
                gap_wait_s: float, now: dt.datetime) -> int:
        e, c, d, m = t.events, t.webhook_cursor, t.webhook_deliveries, t.messages
        with self.engine.begin() as conn:
            last = conn.execute(select(c.c.last_event_id).where(c.c.name == CURSOR_NAME)).scalar()
            if last is None:
                conn.execute(insert(c).values(name=CURSOR_NAME, last_event_id=0, updated_at=now))
                last = 0
            events = conn.execute(select(e).where(e.c.id > last).order_by(e.c.id).limit(limit)).all()
            if not events:
                return 0
            taken = []
            expected = last + 1
            for ev in events:
                if ev.id != expected and (now - ev.created_at).total_seconds() < gap_wait_s:
                    break
                taken.append(ev)
                expected = ev.id + 1
            if not taken:
                return 0
            msg_ids = {ev.message_id for ev in taken if ev.message_id}
            messages = {}
            if msg_ids:
                messages = {r.id: r for r in conn.execute(select(m).where(m.c.id.in_(msg_ids))).all()}
            rows = []
            for ev in taken:
                msg = messages.get(ev.message_id) if ev.message_id else None
                urls = list(dict.fromkeys(targets(ev, msg)))
                if not urls:
                    continue
                body = render(ev, msg)
                for url in urls:
                    rows.append({
                        "event_id": ev.id, "event_type": ev.type, "url": url, "body": body,
                        "state": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now,
                    })
            res = conn.execute(
                update(c).where(c.c.name == CURSOR_NAME, c.c.last_event_id == last)
                .values(last_event_id=taken[-1].id, updated_at=now)
            )
            if res.rowcount != 1:
                raise _CursorMoved  # another host fanned these out first: roll back
            if rows:
                conn.execute(insert(d), rows)
            return len(taken)

    def claim_webhook_deliveries(self, *, limit: int = 50, lease_s: float = 60.0,
                                 exclude_urls: Sequence[str] = (),
                                 now: dt.datetime | None = None) -> list[dict[str, Any]]:
        """Due pending deliveries, oldest first, leased to this host."""
        now = now or _now()
        d = t.webhook_deliveries
        with self.engine.begin() as conn:
            q = (
                select(d.c.id, d.c.event_id, d.c.event_type, d.c.url, d.c.body, d.c.attempts)
                .where(d.c.state == "pending", d.c.next_attempt_at <= now,
                       or_(d.c.lease_until.is_(None), d.c.lease_until < now))
                .order_by(d.c.id).limit(limit).with_for_update(skip_locked=True)
            )
            if exclude_urls:
                q = q.where(d.c.url.not_in(list(exclude_urls)))
            rows = [dict(r._mapping) for r in conn.execute(q).all()]
            if rows:
                conn.execute(update(d).where(d.c.id.in_([r["id"] for r in rows]))
                             .values(lease_until=now + dt.timedelta(seconds=lease_s), lease_owner=self.host))
        return rows

    def release_webhook_leases(self) -> int:
        """Deliveries this host claimed and did not settle (stopped, or crashed before
        this start) are free again at once instead of when their lease runs out."""
        d = t.webhook_deliveries
        with self.engine.begin() as conn:
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
        now = now or _now()
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
        with self.engine.begin() as conn:
            conn.execute(update(d).where(d.c.id == delivery_id).values(**values))
        return str(values["state"])

    def wake_webhook_target(self, url: str, now: dt.datetime | None = None) -> int:
        """The receiver answered again: its backed-off deliveries are due at once."""
        now = now or _now()
        d = t.webhook_deliveries
        with self.engine.begin() as conn:
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
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q).all()]

    def retry_failed_webhooks(self, *, now: dt.datetime | None = None) -> int:
        """Give every ``failed`` delivery a fresh set of attempts."""
        now = now or _now()
        d = t.webhook_deliveries
        with self.engine.begin() as conn:
            res = conn.execute(
                update(d).where(d.c.state == "failed")
                .values(state="pending", attempts=0, next_attempt_at=now, lease_until=None, lease_owner=None)
            )
        return int(res.rowcount or 0)

    def webhook_counts(self) -> dict[str, int]:
        d = t.webhook_deliveries
        with self.engine.connect() as conn:
            rows = conn.execute(select(d.c.state, func.count()).group_by(d.c.state)).all()
        return {s: n for s, n in rows}


def inbound_view(row: dict[str, Any]) -> dict[str, Any]:
    """The public shape of an inbound message (API and ``sms:received`` webhook)."""

    missing = row.get("missing") or ()
    if isinstance(missing, str):
        missing = tuple(int(x) for x in missing.split(",") if x)
    return {
        "id": row["id"],
        "from": row["sender"],
        "sim": row["modem_id"],
        "text": row["text"],
        "encoding": row["encoding"],
        "parts_total": row["parts_total"],
        "parts_received": row["parts_received"],
        "complete": bool(row["complete"]),
        "missing": list(missing),
        "in_reply_to": row.get("in_reply_to"),
        "sent_at": iso_or_value(row.get("sent_at")),
        "received_at": iso_or_value(row.get("received_at")),
    }


__all__ = [
    "InboundPart",
    "InboundRepo",
    "IngestResult",
    "StoredInbound",
    "inbound_view",
    "number_key",
]
