"""Modems as the hosts see them: the status rows the pool writes and the API lists."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from gsmgw.store import tables as t
from gsmgw.store.executor import Executor, batchable
from gsmgw.store.records import utcnow


class ModemsRepo:
    def __init__(self, db: Executor, host: str) -> None:
        self.db = db
        self.host = host

    @batchable
    def upsert_modem(self, modem_id: str, **values: Any) -> None:
        now = utcnow()
        values = {k: v for k, v in values.items() if v is not None}
        values["updated_at"] = now
        values.setdefault("host", self.host)
        with self.db.tx() as conn:
            res = conn.execute(update(t.modems).where(t.modems.c.id == modem_id).values(**values))
            if res.rowcount == 0:
                values.setdefault("state", "disconnected")
                conn.execute(insert(t.modems).values(id=modem_id, **values))

    @batchable
    def list_modems(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            return [
                dict(r._mapping) for r in conn.execute(select(t.modems).order_by(t.modems.c.id))
            ]


__all__ = ["ModemsRepo"]
