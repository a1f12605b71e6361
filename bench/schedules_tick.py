"""How long the scheduler takes to queue N due occurrences (SQLite, no modems), and
what planning costs for an old minutely rule with and without its anchor.

    .venv/bin/python bench/schedules_tick.py [N]
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from gsmgw.config import Config, StoreConfig
from gsmgw.intake import IntakeService
from gsmgw.intake.types import Caller
from gsmgw.schedules import Scheduler, ScheduleSpec
from gsmgw.schedules.rules import Recurrence, plan, zone
from gsmgw.store import Store


async def tick_bench(n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        cfg = Config(store=StoreConfig(url=f"sqlite:///{Path(d) / 'b.db'}"))
        store = Store(cfg.store.url, host="bench")
        store.migrate()
        _, _key = store.keys.create_api_key("bench", ["send", "read"])
        key_id = store.keys.list_api_keys()[0]["id"]
        caller = Caller(id=key_id, name="bench", scopes=frozenset({"send", "read"}))
        now = dt.datetime(2026, 11, 28, 8, 59, 30, tzinfo=dt.UTC)
        clock = [now]
        intake = IntakeService(store, lambda: cfg)
        sch = Scheduler(store, intake, lambda: cfg, clock=lambda: clock[0])
        t0 = time.perf_counter()
        for i in range(n):
            await sch.create(caller, ScheduleSpec(to=f"+4477009{i:05d}", cron="0 9 * * *", timezone="UTC",
                                                  text="daily reading"))
        create_s = time.perf_counter() - t0
        clock[0] = now + dt.timedelta(seconds=31)
        t0 = time.perf_counter()
        queued = await sch.tick()
        tick_s = time.perf_counter() - t0
        assert queued == n, queued
        store.close()
        return create_s, tick_s


def plan_bench() -> tuple[float, float]:
    start = dt.datetime(2025, 11, 28, tzinfo=dt.UTC)
    cursor = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
    now = cursor + dt.timedelta(minutes=3)
    plain = Recurrence("rrule", "FREQ=MINUTELY;INTERVAL=5", zone("Europe/Berlin"), start)
    anchored = Recurrence("rrule", "FREQ=MINUTELY;INTERVAL=5", zone("Europe/Berlin"), start, anchor=cursor)
    out = []
    for rec in (plain, anchored):
        t0 = time.perf_counter()
        plan(rec, cursor, now, "once", 300)
        out.append(time.perf_counter() - t0)
    return out[0], out[1]


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    create_s, tick_s = asyncio.run(tick_bench(n))
    plain_s, anchored_s = plan_bench()
    print(f"{n} schedules: create {create_s / n * 1000:.2f} ms each; one tick queued {n} occurrences in "
          f"{tick_s:.2f} s ({n / tick_s:.0f}/s)")
    print(f"plan() for a 5-minutely RRULE one year old: {plain_s * 1000:.1f} ms from DTSTART, "
          f"{anchored_s * 1000:.2f} ms from its anchor")
