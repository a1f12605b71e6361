"""A clock tests move by hand, and store reads of what schedules and keep-alive did."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from sqlalchemy import select

from gsmgw.config import Config
from gsmgw.daemon import Gateway
from gsmgw.store import Store
from gsmgw.store import tables as t
from tests.helpers import Client


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


@asynccontextmanager
async def clocked_gateway(cfg: Config, clock: FakeClock) -> AsyncIterator[tuple[Gateway, Client]]:
    """``running_gateway`` with the scheduler's and keep-alive's clock set before it starts."""
    gw = Gateway(cfg, host="test-host")
    gw.scheduler.clock = gw.keepalive.clock = clock
    await gw.start()
    try:
        _, key = await gw.store.call(gw.store.keys.create_api_key, "test", ["send", "read", "admin"])
        async with aiohttp.ClientSession() as session:
            yield gw, Client(gw.base_url, key, session)
    finally:
        await gw.stop()
