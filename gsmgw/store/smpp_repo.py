"""The SMPP door's repository (``store.smpp``): accounts, held parts, deliver_sm outbox.

- Accounts: system_id + password hash (the door hashes; the store only keeps it).
- Held parts: each part of a long message an ESME submits is committed before its
  submit_sm_resp; the part that completes the group returns all of them, and they
  are deleted once the whole message is queued (idempotently: the intake call uses
  an idempotency key made from the group).
- Deliveries: the door's outbox consumer (``gsmgw.outbox``, cursor ``smpp``) turns
  each new event into ``smpp_deliveries`` rows (``add_deliveries``), one per
  deliver_sm owed to an account; the door claims
  an account's due rows under a lease while one of its receivers is bound, and
  settles each on its deliver_sm_resp.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from gsmgw.store import tables as t


@dataclass(frozen=True, slots=True)
class SmppDelivery:
    """One deliver_sm owed to an account, as the fan-out's render callback makes it."""

    system_id: str
    kind: str  # receipt / mo
    ref: str
    pdu: dict[str, Any]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SmppRepo:
    """Each method is one transaction of its own (none joins a group commit)."""

    def __init__(self, engine: Engine, host: str) -> None:
        self.engine = engine
        self.host = host

    # --- accounts ---------------------------------------------------------------------

    def create_account(self, system_id: str, password_hash: str, scopes: Iterable[str], *,
                            rate_per_s: int = 0, daily_quota: int = 0, max_binds: int = 0,
                            note: str = "") -> str:
        """A new account; ValueError if an active one has this system_id. A revoked
        account of the same system_id is replaced (its history stays in messages)."""
        a = t.smpp_accounts
        account_id = f"smpp{secrets.token_hex(4)}"
        with self.engine.begin() as conn:
            old = conn.execute(select(a.c.id, a.c.revoked_at).where(a.c.system_id == system_id)).first()
            if old is not None and old.revoked_at is None:
                raise ValueError(f"an active account {system_id!r} exists; revoke it first")
            if old is not None:
                conn.execute(delete(a).where(a.c.id == old.id))
            conn.execute(insert(a).values(
                id=account_id, system_id=system_id, password_hash=password_hash,
                scopes=",".join(sorted(set(scopes))), rate_per_s=rate_per_s, daily_quota=daily_quota,
                max_binds=max_binds, note=note, created_at=_now(),
            ))
        return account_id

    def get_account(self, system_id: str) -> dict[str, Any] | None:
        """The active account of a system_id, or None."""
        a = t.smpp_accounts
        with self.engine.connect() as conn:
            row = conn.execute(
                select(a).where(a.c.system_id == system_id, a.c.revoked_at.is_(None))
            ).first()
        return dict(row._mapping) if row is not None else None

    def list_accounts(self) -> list[dict[str, Any]]:
        a = t.smpp_accounts
        with self.engine.connect() as conn:
            rows = conn.execute(select(a).order_by(a.c.created_at)).all()
        return [{k: v for k, v in r._mapping.items() if k != "password_hash"} for r in rows]

    def revoke_account(self, system_id: str) -> bool:
        a = t.smpp_accounts
        with self.engine.begin() as conn:
            res = conn.execute(
                update(a).where(a.c.system_id == system_id, a.c.revoked_at.is_(None)).values(revoked_at=_now())
            )
        return res.rowcount == 1

    # --- held parts ----------------------------------------------------------------------

    def hold_part(self, *, system_id: str, group_key: str, seq: int, total: int, part_id: str,
                       user_data: str, request: dict[str, Any],
                       now: dt.datetime | None = None) -> tuple[str, list[dict[str, Any]] | None]:
        """Commit one part; returns (its message id, all parts in order if the group is
        now complete, else None). A part sent again (same group and seq) keeps the id
        it was first given."""
        p = t.smpp_parts
        now = now or _now()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(p).values(
                    system_id=system_id, group_key=group_key, seq=seq, total=total, part_id=part_id,
                    user_data=user_data, request=json.dumps(request, default=str), created_at=now,
                ))
        except IntegrityError:
            with self.engine.connect() as conn:
                existing = conn.execute(
                    select(p.c.part_id).where(p.c.group_key == group_key, p.c.seq == seq)
                ).scalar()
            if existing is None:
                raise
            part_id = existing
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                select(p).where(p.c.group_key == group_key).order_by(p.c.seq, p.c.id)
            ).all()]
        seqs = {r["seq"] for r in rows}
        return part_id, rows if len(seqs) >= total and seqs >= set(range(1, total + 1)) else None

    def drop_parts(self, group_key: str, *, seq: int | None = None) -> int:
        """Forget a group's parts (queued, or refused), or one part of it."""
        p = t.smpp_parts
        q = delete(p).where(p.c.group_key == group_key)
        if seq is not None:
            q = q.where(p.c.seq == seq)
        with self.engine.begin() as conn:
            return int(conn.execute(q).rowcount or 0)

    def stale_groups(self, *, older_than: dt.datetime, limit: int = 100) -> list[list[dict[str, Any]]]:
        """Groups whose first part came before ``older_than`` (a part that never came),
        each as its parts in order."""
        p = t.smpp_parts
        with self.engine.connect() as conn:
            keys = list(conn.execute(
                select(p.c.group_key).group_by(p.c.group_key)
                .having(func.min(p.c.created_at) < older_than).limit(limit)
            ).scalars())
            if not keys:
                return []
            rows = conn.execute(select(p).where(p.c.group_key.in_(keys)).order_by(p.c.seq, p.c.id)).all()
        groups: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
        for r in rows:
            groups[r.group_key].append(dict(r._mapping))
        return [g for g in groups.values() if g]

    # --- deliver_sm outbox ------------------------------------------------------------------

    def add_deliveries(self, deliveries: Iterable[SmppDelivery], *, event_id: int = 0,
                       now: dt.datetime | None = None) -> int:
        """Deliveries owed for one outbox event (``event_id`` 0: made by the door itself,
        e.g. receipts for parts refused after their submit_sm_resp). Idempotent: the
        same event handled again (after a crash, or by a second host) adds nothing."""
        now = now or _now()
        d = t.smpp_deliveries
        rows = {(x.system_id, x.ref): {
            "system_id": x.system_id, "event_id": event_id, "kind": x.kind, "ref": x.ref,
            "pdu": json.dumps(x.pdu, separators=(",", ":")), "state": "pending", "attempts": 0,
            "next_attempt_at": now, "created_at": now} for x in deliveries}
        if not rows:
            return 0
        for _attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    have = {(r.system_id, r.ref) for r in conn.execute(
                        select(d.c.system_id, d.c.ref).where(d.c.event_id == event_id,
                                                             d.c.ref.in_([k[1] for k in rows])))}
                    new = [r for k, r in rows.items() if k not in have]
                    if new:
                        conn.execute(insert(d), new)
                    return len(new)
            except IntegrityError:  # another host added them meanwhile: look again
                continue
        return 0

    def claim_deliveries(self, system_id: str, *, limit: int, lease_s: float,
                              now: dt.datetime | None = None) -> list[dict[str, Any]]:
        """An account's due pending deliveries, oldest first, leased to this host."""
        now = now or _now()
        d = t.smpp_deliveries
        with self.engine.begin() as conn:
            q = (
                select(d.c.id, d.c.event_id, d.c.kind, d.c.ref, d.c.pdu, d.c.attempts)
                .where(d.c.system_id == system_id, d.c.state == "pending", d.c.next_attempt_at <= now,
                       or_(d.c.lease_until.is_(None), d.c.lease_until < now))
                .order_by(d.c.id).limit(limit).with_for_update(skip_locked=True)
            )
            rows = [dict(r._mapping) for r in conn.execute(q).all()]
            if rows:
                conn.execute(update(d).where(d.c.id.in_([r["id"] for r in rows]))
                             .values(lease_until=now + dt.timedelta(seconds=lease_s), lease_owner=self.host))
        return rows

    def next_due(self, system_id: str) -> dt.datetime | None:
        """When the account's next pending delivery is due (None: none pending)."""
        d = t.smpp_deliveries
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.min(d.c.next_attempt_at)).where(d.c.system_id == system_id, d.c.state == "pending")
            ).scalar()

    def settle_delivery(self, delivery_id: int, *, ok: bool, error: str | None = None,
                             retry_at: dt.datetime | None = None, attempted: bool = True,
                             now: dt.datetime | None = None) -> str:
        """Record an attempt; ``retry_at`` None after a failure gives up (``failed``).
        ``attempted=False`` hands a claimed row back untried. Returns the new state."""
        now = now or _now()
        d = t.smpp_deliveries
        values: dict[str, Any] = {"lease_until": None, "lease_owner": None}
        if attempted:
            values.update(attempts=d.c.attempts + 1, last_error=error)
        if ok:
            values.update(state="delivered", delivered_at=now, last_error=None)
        elif retry_at is not None:
            values.update(state="pending", next_attempt_at=retry_at)
        else:
            values.update(state="failed")
        with self.engine.begin() as conn:
            conn.execute(update(d).where(d.c.id == delivery_id).values(**values))
        return str(values["state"])

    def settle_deliveries(self, delivered: list[int], *, now: dt.datetime | None = None) -> int:
        """Many acknowledged deliveries in one commit."""
        if not delivered:
            return 0
        now = now or _now()
        d = t.smpp_deliveries
        with self.engine.begin() as conn:
            res = conn.execute(update(d).where(d.c.id.in_(delivered)).values(
                state="delivered", delivered_at=now, last_error=None, lease_until=None, lease_owner=None,
                attempts=d.c.attempts + 1))
        return int(res.rowcount or 0)

    def release_leases(self) -> int:
        """What this host claimed and did not settle (a stop, or a crash) is free again."""
        d = t.smpp_deliveries
        with self.engine.begin() as conn:
            res = conn.execute(update(d).where(d.c.lease_owner == self.host, d.c.state == "pending")
                               .values(lease_until=None, lease_owner=None))
        return int(res.rowcount or 0)

    def list_deliveries(self, *, system_id: str | None = None, state: str | None = None,
                             limit: int = 100) -> list[dict[str, Any]]:
        d = t.smpp_deliveries
        q = select(d).order_by(d.c.id).limit(limit)
        if system_id is not None:
            q = q.where(d.c.system_id == system_id)
        if state is not None:
            q = q.where(d.c.state == state)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q).all()]

    def delivery_counts(self) -> dict[str, int]:
        d = t.smpp_deliveries
        with self.engine.connect() as conn:
            return {s: n for s, n in conn.execute(select(d.c.state, func.count()).group_by(d.c.state)).all()}


__all__ = ["SmppDelivery", "SmppRepo"]
