"""Inbound SMS: every part is committed (``inbound_parts``, unique dedup key) before it
is deleted from the SIM; the part that completes a message assembles it in the same
transaction, together with the opt-out change its text asks for and the
``sms:received`` event. Decoding and text joining stay out of the store: the pool
passes pure callables (``join``, ``classify``)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from gsmgw.domain import EventType
from gsmgw.isotime import iso_or_value
from gsmgw.numbers import lookup_keys, same_number, to_e164
from gsmgw.store import tables as t
from gsmgw.store.events import insert_event
from gsmgw.store.executor import Executor
from gsmgw.store.optouts import OptoutsRepo
from gsmgw.store.records import (
    ClassifyFn,
    InboundPart,
    IngestResult,
    JoinFn,
    StoredInbound,
    new_id,
    utcnow,
)


def _group_cond(part: Any) -> list[Any]:
    """The rows of the message ``part`` belongs to (itself alone if not concatenated)."""
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


class InboundRepo:
    def __init__(self, db: Executor, optouts: OptoutsRepo, *, region: str | None = None) -> None:
        self.db = db
        self.optouts = optouts
        # Where a national rendering of a sender is read (gsmgw.numbers).
        self.region = region

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
        now = now or utcnow()
        p = t.inbound_parts
        try:
            with self.db.engine.begin() as conn:
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
                    select(p).where(*_group_cond(part)).order_by(p.c.concat_seq, p.c.id)
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
        msg_id = new_id()
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
                changed = self.optouts.add_in(conn, first.sender, "keyword", keyword, msg_id, "", now)
            else:
                changed = self.optouts.remove_in(conn, first.sender, now, source="keyword")
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
        insert_event(conn, EventType.SMS_RECEIVED, now, modem_id=first.modem_id, payload=inbound_view(
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
        """The last message sent to this number, preferring one from the same SIM.

        Messages are stored to E.164 numbers (every door normalises them), so a sender
        that can be placed (international, or national in the configured region) is
        looked up by its E.164 form in the number's index. Only one that cannot (a
        national rendering with no region set) is searched by its last digits among
        the window's messages: a scan of the window, 38 ms at 100,000 messages, paid
        before on every SMS from a number never written to (issue 17)."""
        m = t.messages
        base = select(m.c.id, m.c.to_number, m.c.modem_id).where(m.c.created_at >= since)

        def exactly(number: str) -> list[Any]:
            return list(conn.execute(
                base.where(m.c.to_number == number).order_by(m.c.created_at.desc(), m.c.id.desc()).limit(20)
            ).all())

        rows = exactly(sender)
        placed = None if rows else to_e164(sender, self.region)
        if placed is not None:
            rows = exactly(placed) if placed != sender else []
        elif not rows:
            keys = [k for k in lookup_keys(sender, self.region) if len(k) >= 6]
            if not keys:
                return None
            like = or_(*(m.c.to_number.like(f"%{k}") for k in keys))
            rows = [
                r for r in conn.execute(
                    base.where(like).order_by(m.c.created_at.desc()).limit(50)
                ).all()
                if same_number(r.to_number, sender, self.region)
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
        now = now or utcnow()
        cutoff = now - dt.timedelta(seconds=timeout_s)
        p = t.inbound_parts
        out: list[StoredInbound] = []
        with self.db.engine.connect() as conn:
            groups = conn.execute(
                select(p.c.modem_id, p.c.sender, p.c.concat_ref, p.c.concat_bits, p.c.concat_total)
                .where(p.c.message_id.is_(None), p.c.concat_ref.is_not(None))
                .group_by(p.c.modem_id, p.c.sender, p.c.concat_ref, p.c.concat_bits, p.c.concat_total)
                .having(func.min(p.c.received_at) <= cutoff)
            ).all()
        for g in groups:
            with self.db.engine.begin() as conn:
                rows = conn.execute(
                    select(p).where(*_group_cond(g)).order_by(p.c.concat_seq, p.c.id)
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
        with self.db.engine.connect() as conn:
            return int(conn.execute(
                select(func.count()).select_from(t.inbound_parts)
                .where(t.inbound_parts.c.message_id.is_(None))
            ).scalar_one())

    def prune_inbound_parts(self, *, older_than_s: float, now: dt.datetime | None = None) -> int:
        """Forget the dedup keys of parts whose message was stored long ago."""
        cutoff = (now or utcnow()) - dt.timedelta(seconds=older_than_s)
        p = t.inbound_parts
        with self.db.engine.begin() as conn:
            res = conn.execute(delete(p).where(p.c.message_id.is_not(None), p.c.received_at < cutoff))
        return int(res.rowcount or 0)

    def record_undecodable(self, modem_id: str, pdu: str, error: str) -> None:
        """A stored PDU we cannot decode: kept as an event (nothing lost), then deleted."""
        with self.db.engine.begin() as conn:
            insert_event(conn, EventType.SMS_UNDECODABLE, utcnow(), modem_id=modem_id,
                               payload={"modem_id": modem_id, "pdu": pdu, "error": error})

    def get_inbound(self, inbound_id: str) -> dict[str, Any] | None:
        with self.db.engine.connect() as conn:
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
        reply_to_key: str | None = None,
        tag: str | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; ``reply_to_key`` keeps only replies to that API key's messages;
        ``tag`` only messages an inbound rule tagged so."""
        im = t.inbound_messages
        q = select(im).order_by(im.c.id.desc()).limit(limit)
        if tag:
            esc = tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            q = q.where((literal(",") + im.c.tags + literal(",")).like(f"%,{esc},%", escape="\\"))
        if reply_to_key is not None:
            q = q.where(im.c.in_reply_to.in_(
                select(t.messages.c.id).where(t.messages.c.api_key_id == reply_to_key)))
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
        with self.db.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q).all()]

    def mark_read(self, sender: str, *, now: dt.datetime | None = None) -> int:
        """Mark the inbound messages from ``sender`` read (the console opened the
        thread); returns how many were unread."""
        im = t.inbound_messages
        with self.db.tx() as conn:
            res = conn.execute(
                update(im).where(im.c.sender == sender, im.c.read_at.is_(None)).values(read_at=now or utcnow())
            )
        return int(res.rowcount or 0)

    def unread_count(self) -> int:
        im = t.inbound_messages
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(im).where(im.c.read_at.is_(None))).scalar_one())


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


__all__ = ["InboundRepo", "inbound_view"]
