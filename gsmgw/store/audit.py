"""The audit log: admin actions (keys, modems, erasures, config reloads, prunes).

Written by the paths that act (``record_in`` in their own transaction where they
have one), listed by ``GET /api/v1/audit`` and ``gsmgw audit``. The detail is JSON
and never holds a phone number an erasure removed (erasures record its hash).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Connection, insert, select

from gsmgw.store import tables as t
from gsmgw.store.executor import Executor, batchable
from gsmgw.store.records import utcnow


def record_in(conn: Connection, actor: str, action: str, target: str = "", detail: dict[str, Any] | None = None,
              *, host: str = "", now: dt.datetime | None = None) -> None:
    """One audit entry in the caller's transaction."""
    conn.execute(insert(t.audit_log).values(
        at=now or utcnow(), actor=actor[:100], action=action[:40], target=target[:200],
        detail=json.dumps(detail or {}, default=str, sort_keys=True), host=host[:100],
    ))


class AuditRepo:
    def __init__(self, db: Executor, host: str) -> None:
        self.db = db
        self.host = host

    @batchable
    def record(self, actor: str, action: str, target: str = "", detail: dict[str, Any] | None = None) -> None:
        with self.db.tx() as conn:
            record_in(conn, actor, action, target, detail, host=self.host)

    @batchable
    def list_entries(self, *, before_id: int | None = None, action: str | None = None,
                     since: dt.datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; ``before_id`` pages back, ``action`` is exact or a family (``key.*``)."""
        a = t.audit_log
        q = select(a).order_by(a.c.id.desc()).limit(limit)
        if before_id is not None:
            q = q.where(a.c.id < before_id)
        if action:
            q = q.where(a.c.action.like(action[:-1] + "%") if action.endswith("*") else a.c.action == action)
        if since is not None:
            q = q.where(a.c.at >= since)
        with self.db.read() as conn:
            rows = conn.execute(q).all()
        out = []
        for r in rows:
            d = dict(r._mapping)
            try:
                d["detail"] = json.loads(d["detail"])
            except ValueError:
                pass
            out.append(d)
        return out


__all__ = ["AuditRepo", "record_in"]
