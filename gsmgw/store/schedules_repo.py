"""Recurring schedules and SIM keep-alive (issue 20 parts 2-3): their rows, the claims
that keep two hosts of a shared store from acting on the same one at once, and the
keep-alive results with their outbox events in the same transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from gsmgw.domain import EventType, MessageState
from gsmgw.store import tables as t
from gsmgw.store.events import insert_event
from gsmgw.store.executor import Executor, batchable

# A keep-alive SMS in one of these states has its outcome.
_SMS_OK = (MessageState.SENT.value, MessageState.DELIVERED.value)
_SMS_FAILED = (MessageState.FAILED.value, MessageState.EXPIRED.value, MessageState.CANCELLED.value,
               MessageState.UNKNOWN.value)


class SchedulesRepo:
    def __init__(self, db: Executor, host: str) -> None:
        self.db = db
        self.host = host

    # --- schedules ------------------------------------------------------------------------

    def create_schedule(self, row: dict[str, Any]) -> dict[str, Any]:
        with self.db.tx() as conn:
            conn.execute(insert(t.schedules).values(**row))
            return dict(conn.execute(select(t.schedules).where(t.schedules.c.id == row["id"])).one()._mapping)

    def get_schedule(self, schedule_id: str, owner: str | None = None) -> dict[str, Any] | None:
        """A schedule; with ``owner``, only if that key owns it (None: any)."""
        s = t.schedules
        q = select(s).where(s.c.id == schedule_id)
        if owner is not None:
            q = q.where(s.c.api_key_id == owner)
        with self.db.read() as conn:
            r = conn.execute(q).first()
        return dict(r._mapping) if r is not None else None

    def list_schedules(self, owner: str | None = None, *, before_id: str | None = None,
                       limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; ``owner`` None lists every key's."""
        s = t.schedules
        q = select(s).order_by(s.c.id.desc()).limit(limit)
        if owner is not None:
            q = q.where(s.c.api_key_id == owner)
        if before_id is not None:
            q = q.where(s.c.id < before_id)
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q).all()]

    def update_schedule(self, schedule_id: str, owner: str | None, **values: Any) -> dict[str, Any] | None:
        """Set columns (pause, resume); None if there is no such schedule for ``owner``."""
        s = t.schedules
        cond = [s.c.id == schedule_id]
        if owner is not None:
            cond.append(s.c.api_key_id == owner)
        with self.db.tx() as conn:
            res = conn.execute(update(s).where(*cond).values(updated_at=_now(), **values))
            if res.rowcount != 1:
                return None
            return dict(conn.execute(select(s).where(s.c.id == schedule_id)).one()._mapping)

    def delete_schedule(self, schedule_id: str, owner: str | None = None) -> bool:
        """Delete a schedule (the messages it queued stay, with their schedule_id)."""
        s = t.schedules
        cond = [s.c.id == schedule_id]
        if owner is not None:
            cond.append(s.c.api_key_id == owner)
        with self.db.tx() as conn:
            return conn.execute(delete(s).where(*cond)).rowcount == 1

    def due_schedules(self, now: dt.datetime, limit: int = 100, exclude: set[str] | None = None) -> list[str]:
        """Ids of active schedules whose next run has come and that no other host holds
        (but those in ``exclude``: already looked at in this round)."""
        s = t.schedules
        q = (select(s.c.id).where(
            s.c.paused.is_(False), s.c.next_run_at.is_not(None), s.c.next_run_at <= now,
            or_(s.c.claim_until.is_(None), s.c.claim_until < now, s.c.claim_host == self.host))
            .order_by(s.c.next_run_at, s.c.id).limit(limit))
        with self.db.read() as conn:
            if exclude:
                # Few schedules are due at once; the excluded are skipped here rather than
                # sent as a NOT IN list of thousands of ids.
                rows = conn.execute(q.limit(limit + len(exclude))).scalars()
                return [r for r in rows if r not in exclude][:limit]
            return list(conn.execute(q).scalars())

    def next_due_at(self) -> dt.datetime | None:
        """The earliest next run of an active schedule (the scheduler sleeps until then)."""
        s = t.schedules
        with self.db.read() as conn:
            v = conn.execute(select(func.min(s.c.next_run_at)).where(s.c.paused.is_(False))).scalar()
        return v  # type: ignore[no-any-return]

    @batchable
    def claim_schedule(self, schedule_id: str, now: dt.datetime, lease_s: float) -> dict[str, Any] | None:
        """Take a schedule for ``lease_s`` (a compare-and-set: one host at a time); its row, or
        None if another host holds it, it was paused or deleted."""
        s = t.schedules
        with self.db.tx() as conn:
            res = conn.execute(
                update(s).where(
                    s.c.id == schedule_id, s.c.paused.is_(False),
                    or_(s.c.claim_until.is_(None), s.c.claim_until < now, s.c.claim_host == self.host))
                .values(claim_host=self.host, claim_until=now + dt.timedelta(seconds=lease_s)))
            if res.rowcount != 1:
                return None
            return dict(conn.execute(select(s).where(s.c.id == schedule_id)).one()._mapping)

    @batchable
    def advance_schedule(self, schedule_id: str, *, cursor_at: dt.datetime, next_run_at: dt.datetime | None,
                         last_run_at: dt.datetime | None = None, last_batch_id: str | None = None,
                         runs: int = 0, skipped: int = 0, error: str | None = None,
                         release: bool = True) -> bool:
        """Move the cursor forward (never back) while this host holds the claim."""
        s = t.schedules
        values: dict[str, Any] = {"cursor_at": cursor_at, "next_run_at": next_run_at, "updated_at": _now(),
                                  "runs": s.c.runs + runs, "skipped": s.c.skipped + skipped, "last_error": error}
        if last_run_at is not None:
            values.update(last_run_at=last_run_at, last_batch_id=last_batch_id)
        if release:
            values.update(claim_host=None, claim_until=None)
        with self.db.tx() as conn:
            res = conn.execute(update(s).where(s.c.id == schedule_id, s.c.claim_host == self.host,
                                               s.c.cursor_at <= cursor_at).values(**values))
            return res.rowcount == 1

    @batchable
    def release_schedule(self, schedule_id: str, error: str | None = None) -> None:
        s = t.schedules
        with self.db.tx() as conn:
            conn.execute(update(s).where(s.c.id == schedule_id, s.c.claim_host == self.host)
                         .values(claim_host=None, claim_until=None, last_error=error))

    @batchable
    def owner_key(self, key_id: str) -> dict[str, Any] | None:
        """The owner's API key (id, name, scopes, limits, revoked_at), for its occurrences."""
        k = t.api_keys
        with self.db.read() as conn:
            r = conn.execute(select(k.c.id, k.c.name, k.c.scopes, k.c.rate_per_s, k.c.daily_quota,
                                    k.c.revoked_at).where(k.c.id == key_id)).first()
        return dict(r._mapping) if r is not None else None

    def schedule_message_counts(self, schedule_id: str) -> dict[str, int]:
        """The messages a schedule queued, counted per state."""
        m = t.messages
        with self.db.read() as conn:
            rows = conn.execute(select(m.c.state, func.count()).where(m.c.schedule_id == schedule_id)
                                .group_by(m.c.state)).all()
        return {str(r[0]): int(r[1]) for r in rows}

    # --- keep-alive --------------------------------------------------------------------------

    def _refresh(self, conn: Connection, modem_id: str, now: dt.datetime) -> dict[str, Any]:
        """The SIM's row (made on first sight), with last_success_at moved up to its
        latest sent SMS part."""
        c = t.sim_keepalive
        row = conn.execute(select(c).where(c.c.modem_id == modem_id)).first()
        if row is None:
            conn.execute(insert(c).values(modem_id=modem_id, first_seen_at=now))
            row = conn.execute(select(c).where(c.c.modem_id == modem_id)).one()
        p = t.message_parts
        q = select(p.c.sent_at).where(p.c.modem_id == modem_id, p.c.sent_at.is_not(None))
        if row.last_success_at is not None:
            q = q.where(p.c.sent_at > row.last_success_at)
        last_sent = conn.execute(q.order_by(p.c.sent_at.desc()).limit(1)).scalar()
        if last_sent is not None:
            conn.execute(update(c).where(c.c.modem_id == modem_id).values(last_success_at=last_sent,
                                                                            expiry_alerted_at=None))
            row = conn.execute(select(c).where(c.c.modem_id == modem_id)).one()
        return dict(row._mapping)

    def keepalive_rows(self, modem_ids: list[str], now: dt.datetime) -> list[dict[str, Any]]:
        """Each SIM's keep-alive state (refreshed from its sends), with its last run."""
        out = []
        r = t.keepalive_runs
        with self.db.tx() as conn:
            for mid in modem_ids:
                row = self._refresh(conn, mid, now)
                last = conn.execute(select(r).where(r.c.modem_id == mid).order_by(r.c.id.desc()).limit(1)).first()
                row["last_run"] = dict(last._mapping) if last is not None else None
                out.append(row)
        return out

    def claim_keepalive(self, modem_id: str, now: dt.datetime, *, due_before: dt.datetime,
                        retry_before: dt.datetime, lease_s: float) -> dict[str, Any] | None:
        """Take a SIM's keep-alive if it is due: no success (a keep-alive or a sent SMS) since
        ``due_before``, no attempt since ``retry_before``, none pending and no other host
        holding it. One compare-and-set, so two hosts never both fire it."""
        c = t.sim_keepalive
        with self.db.tx() as conn:
            self._refresh(conn, modem_id, now)
            res = conn.execute(
                update(c).where(
                    c.c.modem_id == modem_id, c.c.pending_run_id.is_(None),
                    or_(c.c.claim_until.is_(None), c.c.claim_until < now),
                    or_(c.c.last_success_at <= due_before,
                        and_(c.c.last_success_at.is_(None), c.c.first_seen_at <= due_before)),
                    or_(c.c.last_attempt_at.is_(None), c.c.last_attempt_at <= retry_before))
                .values(claim_host=self.host, claim_until=now + dt.timedelta(seconds=lease_s), last_attempt_at=now))
            if res.rowcount != 1:
                return None
            return dict(conn.execute(select(c).where(c.c.modem_id == modem_id)).one()._mapping)

    def record_keepalive(self, modem_id: str, kind: str, ok: bool | None, detail: str, now: dt.datetime, *,
                         message_id: str | None = None, event: dict[str, Any] | None = None) -> int:
        """One keep-alive's result (``ok`` None: an SMS queued, its outcome comes later) and,
        when it failed, its ``sim:keepalive-failed`` event, in one transaction."""
        c, r = t.sim_keepalive, t.keepalive_runs
        with self.db.tx() as conn:
            run_id = int(conn.execute(insert(r).values(
                modem_id=modem_id, at=now, kind=kind, ok=ok, detail=detail[:1000], message_id=message_id,
                host=self.host, finished_at=now if ok is not None else None)).inserted_primary_key[0])
            values: dict[str, Any] = {"claim_host": None, "claim_until": None}
            if ok:
                values.update(last_success_at=now, expiry_alerted_at=None)
            elif ok is None:
                values["pending_run_id"] = run_id
            conn.execute(update(c).where(c.c.modem_id == modem_id).values(**values))
            if ok is False:
                insert_event(conn, EventType.SIM_KEEPALIVE_FAILED, now, modem_id=modem_id,
                             payload={**(event or {}), "sim": modem_id, "kind": kind, "detail": detail[:1000]})
        return run_id

    def settle_keepalive_sms(self, now: dt.datetime) -> list[dict[str, Any]]:
        """Keep-alive SMS whose message has an outcome now: recorded ok or failed (with the
        event). Returns the runs settled."""
        c, r, m = t.sim_keepalive, t.keepalive_runs, t.messages
        out = []
        with self.db.tx() as conn:
            pending = conn.execute(
                select(c.c.modem_id, r.c.id, r.c.message_id, m.c.state, m.c.sent_at, m.c.error_code, m.c.error_text)
                .join(r, r.c.id == c.c.pending_run_id).join(m, m.c.id == r.c.message_id, isouter=True)).all()
            for p in pending:
                if p.state in _SMS_OK:
                    ok, detail = True, f"SMS {p.state}"
                elif p.state in _SMS_FAILED or p.state is None:
                    ok = False
                    detail = f"SMS {p.state or 'gone'}" + (f": {p.error_code} {p.error_text or ''}".rstrip()
                                                           if p.error_code else "")
                else:
                    continue
                conn.execute(update(r).where(r.c.id == p.id).values(ok=ok, detail=detail, finished_at=now))
                values: dict[str, Any] = {"pending_run_id": None}
                if ok:
                    values.update(last_success_at=p.sent_at or now, expiry_alerted_at=None)
                else:
                    insert_event(conn, EventType.SIM_KEEPALIVE_FAILED, now, modem_id=p.modem_id,
                                 message_id=p.message_id,
                                 payload={"sim": p.modem_id, "kind": "sms", "detail": detail})
                conn.execute(update(c).where(c.c.modem_id == p.modem_id).values(**values))
                out.append({"modem_id": p.modem_id, "run_id": p.id, "ok": ok, "detail": detail})
        return out

    def alert_expiry(self, modem_id: str, now: dt.datetime, payload: dict[str, Any]) -> bool:
        """Raise ``sim:expiry-risk`` once per quiet spell (until the SIM proves alive again)."""
        c = t.sim_keepalive
        with self.db.tx() as conn:
            res = conn.execute(update(c).where(c.c.modem_id == modem_id, c.c.expiry_alerted_at.is_(None))
                               .values(expiry_alerted_at=now))
            if res.rowcount != 1:
                return False
            insert_event(conn, EventType.SIM_EXPIRY_RISK, now, modem_id=modem_id, payload=payload)
            return True

    def keepalive_pending(self) -> int:
        """SMS keep-alives waiting for their outcome."""
        c = t.sim_keepalive
        with self.db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(c).where(c.c.pending_run_id.is_not(None)))
                       .scalar_one())

    def keepalive_runs(self, modem_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        r = t.keepalive_runs
        q = select(r).order_by(r.c.id.desc()).limit(limit)
        if modem_id is not None:
            q = q.where(r.c.modem_id == modem_id)
        with self.db.read() as conn:
            return [dict(x._mapping) for x in conn.execute(q).all()]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


__all__ = ["SchedulesRepo"]
