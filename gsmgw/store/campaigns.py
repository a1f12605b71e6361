"""Campaigns and their recipients (issue 21 part 2).

A campaign's recipients are a snapshot taken when it starts (number and rendered
text per contact), each row submitted once: ``pending`` -> ``submitted`` (with its
message id) | ``opted_out`` | ``cancelled``. Progress is counted from these rows and
from the campaign's messages (``messages.campaign_id``), so the figures add up to
the recipients total whatever happened in between.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, insert, select, update

from gsmgw.domain import MessageState
from gsmgw.store import tables as t
from gsmgw.store.executor import Executor, batchable
from gsmgw.store.records import new_id, utcnow

# Campaign states.
DRAFT, SCHEDULED, RUNNING, PAUSED, COMPLETED, CANCELLED = (
    "draft", "scheduled", "running", "paused", "completed", "cancelled")
CAMPAIGN_STATES = (DRAFT, SCHEDULED, RUNNING, PAUSED, COMPLETED, CANCELLED)
# Recipient states.
R_PENDING, R_SUBMITTED, R_OPTED_OUT, R_CANCELLED = "pending", "submitted", "opted_out", "cancelled"

UNSENT = (MessageState.QUEUED.value, MessageState.SENDING.value)


class CampaignsRepo:
    def __init__(self, db: Executor) -> None:
        self.db = db

    def create_campaign(self, *, name: str, template: str, target_kind: str, target: str, api_key_id: str,
                        priority: int, window: int, sim: str | None, start_at: dt.datetime | None) -> dict[str, Any]:
        now = utcnow()
        row = {"id": new_id(), "name": name, "template": template, "target_kind": target_kind, "target": target,
               "state": DRAFT, "api_key_id": api_key_id, "priority": priority, "queue_window": window, "sim": sim,
               "start_at": start_at, "started_at": None, "finished_at": None, "recipients_total": 0,
               "last_error": "", "created_at": now, "updated_at": now}
        with self.db.tx() as conn:
            conn.execute(insert(t.campaigns).values(**row))
        return row

    @batchable
    def get_campaign(self, campaign_id: str) -> dict[str, Any] | None:
        with self.db.read() as conn:
            row = conn.execute(select(t.campaigns).where(t.campaigns.c.id == campaign_id)).first()
        return None if row is None else dict(row._mapping)

    def list_campaigns(self, *, owner: str | None = None, state: str | None = None, after: str | None = None,
                       limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; ``after`` is the last id of the previous page."""
        c = t.campaigns
        q = select(c).order_by(c.c.id.desc()).limit(limit)
        if owner is not None:
            q = q.where(c.c.api_key_id == owner)
        if state is not None:
            q = q.where(c.c.state == state)
        if after:
            q = q.where(c.c.id < after)
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q).all()]

    def update_draft(self, campaign_id: str, **values: Any) -> bool:
        """Change a campaign that has not started."""
        c = t.campaigns
        with self.db.tx() as conn:
            res = conn.execute(update(c).where(c.c.id == campaign_id, c.c.state == DRAFT)
                               .values(**values, updated_at=utcnow()))
            return res.rowcount == 1

    def delete_campaign(self, campaign_id: str) -> bool:
        """Delete a campaign that is a draft, completed or cancelled (its messages stay)."""
        c = t.campaigns
        with self.db.tx() as conn:
            res = conn.execute(c.delete().where(c.c.id == campaign_id,
                                                c.c.state.in_([DRAFT, COMPLETED, CANCELLED])))
            return res.rowcount == 1

    def start_campaign(self, campaign_id: str, recipients: Sequence[tuple[str, str, str]], *,
                       at: dt.datetime | None) -> bool:
        """Draft -> scheduled (``at`` in the future) or running, with its recipients
        ``(contact_id, number, text)``, in one transaction. False if it was not a draft
        (started already: starting twice is harmless)."""
        now = utcnow()
        c, r = t.campaigns, t.campaign_recipients
        state = SCHEDULED if at is not None and at > now else RUNNING
        with self.db.tx() as conn:
            res = conn.execute(update(c).where(c.c.id == campaign_id, c.c.state == DRAFT).values(
                state=state, start_at=at, started_at=now if state == RUNNING else None,
                recipients_total=len(recipients), updated_at=now, last_error=""))
            if res.rowcount != 1:
                return False
            rows = [{"campaign_id": campaign_id, "contact_id": cid, "seq": i, "number": number, "text": text,
                     "state": R_PENDING, "message_id": None, "updated_at": now}
                    for i, (cid, number, text) in enumerate(recipients)]
            for i in range(0, len(rows), 2000):
                conn.execute(insert(r), rows[i:i + 2000])
            if not rows:
                conn.execute(update(c).where(c.c.id == campaign_id).values(state=COMPLETED, finished_at=now))
        return True

    def set_state(self, campaign_id: str, from_states: Sequence[str], to_state: str, *,
                  error: str | None = None) -> bool:
        """Move a campaign from one of ``from_states``; False if it was in none of them."""
        now = utcnow()
        c = t.campaigns
        values: dict[str, Any] = {"state": to_state, "updated_at": now}
        if to_state in (COMPLETED, CANCELLED):
            values["finished_at"] = now
        if error is not None:
            values["last_error"] = error
        with self.db.tx() as conn:
            res = conn.execute(update(c).where(c.c.id == campaign_id, c.c.state.in_(list(from_states)))
                               .values(**values))
            if res.rowcount == 1 and to_state == CANCELLED:
                r = t.campaign_recipients
                conn.execute(update(r).where(r.c.campaign_id == campaign_id, r.c.state == R_PENDING)
                             .values(state=R_CANCELLED, updated_at=now))
            return res.rowcount == 1

    def note_error(self, campaign_id: str, error: str) -> None:
        with self.db.tx() as conn:
            conn.execute(update(t.campaigns).where(t.campaigns.c.id == campaign_id).values(last_error=error[:500]))

    def due_campaigns(self) -> list[dict[str, Any]]:
        """Running campaigns, after moving scheduled ones whose start_at has come to running."""
        now = utcnow()
        c = t.campaigns
        with self.db.tx() as conn:
            conn.execute(update(c).where(c.c.state == SCHEDULED, c.c.start_at <= now)
                         .values(state=RUNNING, started_at=now, updated_at=now))
            return [dict(r._mapping) for r in conn.execute(select(c).where(c.c.state == RUNNING)
                                                           .order_by(c.c.id)).all()]

    def next_start_at(self) -> dt.datetime | None:
        """When the earliest scheduled campaign is due to start (None: none is scheduled)."""
        c = t.campaigns
        with self.db.read() as conn:
            return conn.execute(select(func.min(c.c.start_at)).where(c.c.state == SCHEDULED)).scalar()

    @batchable
    def in_flight(self, campaign_id: str) -> int:
        """The campaign's messages in the queue (queued or being sent)."""
        m = t.messages
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(m).where(
                m.c.campaign_id == campaign_id, m.c.state.in_(UNSENT))).scalar_one())

    @batchable
    def next_pending(self, campaign_id: str, n: int) -> list[dict[str, Any]]:
        r = t.campaign_recipients
        with self.db.read() as conn:
            rows = conn.execute(select(r.c.contact_id, r.c.number, r.c.text)
                                .where(r.c.campaign_id == campaign_id, r.c.state == R_PENDING)
                                .order_by(r.c.seq).limit(n)).all()
        return [dict(x._mapping) for x in rows]

    @batchable
    def mark_recipients(self, campaign_id: str, outcomes: Sequence[tuple[str, str, str | None]]) -> None:
        """``(contact_id, state, message_id)`` for recipients still pending."""
        if not outcomes:
            return
        now = utcnow()
        r = t.campaign_recipients
        with self.db.tx() as conn:
            for contact_id, state, message_id in outcomes:
                conn.execute(update(r).where(r.c.campaign_id == campaign_id, r.c.contact_id == contact_id,
                                             r.c.state == R_PENDING)
                             .values(state=state, message_id=message_id, updated_at=now))

    def finish_if_done(self, campaign_id: str) -> bool:
        """Running -> completed once no recipient is pending and nothing is in the queue."""
        r, m, c = t.campaign_recipients, t.messages, t.campaigns
        with self.db.tx() as conn:
            pending = conn.execute(select(r.c.contact_id).where(r.c.campaign_id == campaign_id,
                                                                r.c.state == R_PENDING).limit(1)).first()
            if pending is not None:
                return False
            queued = conn.execute(select(m.c.id).where(m.c.campaign_id == campaign_id,
                                                       m.c.state.in_(UNSENT)).limit(1)).first()
            if queued is not None:
                return False
            now = utcnow()
            res = conn.execute(update(c).where(c.c.id == campaign_id, c.c.state == RUNNING)
                               .values(state=COMPLETED, finished_at=now, updated_at=now))
            return res.rowcount == 1

    def queued_message_ids(self, campaign_id: str) -> list[str]:
        """The campaign's messages not yet claimed by a modem (cancel takes them back)."""
        m = t.messages
        with self.db.read() as conn:
            return list(conn.execute(select(m.c.id).where(m.c.campaign_id == campaign_id,
                                                          m.c.state == MessageState.QUEUED.value)).scalars())

    def owner_key(self, api_key_id: str) -> dict[str, Any] | None:
        """The API key a campaign sends as, if it still exists and is not revoked."""
        k = t.api_keys
        with self.db.read() as conn:
            row = conn.execute(select(k).where(k.c.id == api_key_id, k.c.revoked_at.is_(None))).first()
        if row is None:
            return None
        return {"id": row.id, "name": row.name, "scopes": row.scopes.split(","), "rate_per_s": row.rate_per_s,
                "daily_quota": row.daily_quota}

    @batchable
    def progress(self, campaign_id: str) -> dict[str, int] | None:
        """Where each recipient is: pending (not fed yet), queued, sent, delivered,
        failed, opted_out, cancelled (these add up to ``total``), and ``replies``:
        recipients who sent an SMS (to any of the gateway's SIMs) after the campaign
        started. An expired or unknown message counts as failed."""
        c, r, m, i = t.campaigns, t.campaign_recipients, t.messages, t.inbound_messages
        with self.db.read() as conn:
            camp = conn.execute(select(c.c.recipients_total, c.c.started_at).where(c.c.id == campaign_id)).first()
            if camp is None:
                return None
            by_r = dict(conn.execute(select(r.c.state, func.count()).where(r.c.campaign_id == campaign_id)
                                     .group_by(r.c.state)).all())
            by_m = dict(conn.execute(
                select(m.c.state, func.count()).select_from(r.join(m, m.c.id == r.c.message_id))
                .where(r.c.campaign_id == campaign_id, r.c.state == R_SUBMITTED).group_by(m.c.state)).all())
            replies = 0
            if camp.started_at is not None:
                replies = int(conn.execute(
                    select(func.count(func.distinct(r.c.number))).select_from(
                        r.join(i, and_(i.c.sender == r.c.number, i.c.received_at >= camp.started_at)))
                    .where(r.c.campaign_id == campaign_id)).scalar_one())
        submitted = int(by_r.get(R_SUBMITTED, 0))
        out = {
            "total": int(camp.recipients_total),
            "pending": int(by_r.get(R_PENDING, 0)),
            "queued": int(by_m.get("queued", 0)) + int(by_m.get("sending", 0)),
            "sent": int(by_m.get("sent", 0)),
            "delivered": int(by_m.get("delivered", 0)),
            "failed": sum(int(by_m.get(s, 0)) for s in ("failed", "expired", "unknown")),
            "cancelled": int(by_r.get(R_CANCELLED, 0)) + int(by_m.get("cancelled", 0)),
            "opted_out": int(by_r.get(R_OPTED_OUT, 0)),
            "replies": replies,
        }
        # A submitted recipient whose message row is gone (pruned): counted as sent.
        out["sent"] += submitted - sum(by_m.values())
        return out

    def recipients(self, campaign_id: str, *, after: int = -1, limit: int = 100,
                   state: str | None = None) -> list[dict[str, Any]]:
        """A page of recipients in campaign order with their message's state."""
        r, m = t.campaign_recipients, t.messages
        q = (select(r.c.seq, r.c.contact_id, r.c.number, r.c.state, r.c.message_id,
                    m.c.state.label("message_state"), m.c.modem_id)
             .select_from(r.outerjoin(m, m.c.id == r.c.message_id))
             .where(r.c.campaign_id == campaign_id, r.c.seq > after).order_by(r.c.seq).limit(limit))
        if state is not None:
            q = q.where(r.c.state == state)
        with self.db.read() as conn:
            return [dict(x._mapping) for x in conn.execute(q).all()]


__all__ = ["CAMPAIGN_STATES", "CampaignsRepo"]
