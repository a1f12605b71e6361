"""A clock tests move by hand, and store reads of what schedules and keep-alive did."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from gsmgw.store import Store
from gsmgw.store import tables as t


class FakeClock:
    """``clock()`` is ``now``; tests set or advance it (no sleeping)."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)  # type: ignore[misc]


def schedule_messages(store: Store, schedule_id: str) -> list[dict[str, Any]]:
    """The messages a schedule queued, oldest first, with their idempotency keys."""
    m = t.messages
    with store.engine.connect() as conn:
        rows = conn.execute(select(m.c.id, m.c.to_number, m.c.text, m.c.state, m.c.idempotency_key, m.c.door,
                                   m.c.schedule_id).where(m.c.schedule_id == schedule_id).order_by(m.c.id)).all()
    return [dict(r._mapping) for r in rows]
