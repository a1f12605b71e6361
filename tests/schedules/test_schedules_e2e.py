"""Recurring schedules end to end: the API, a gateway on the emulator over a real pty,
time made fast with an injected clock, a restart in the middle, and a second host."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import aiohttp

from gsmgw.config import SchedulesConfig
from gsmgw.daemon import Gateway
from gsmgw.emulator import FakeModemPool
from gsmgw.intake.types import Caller, SendRequest
from gsmgw.schedules import Scheduler, occurrence_key
from gsmgw.store import Store
from tests.helpers import make_config, running_gateway
from tests.schedules.helpers import FakeClock, schedule_messages, utc

T0 = utc(2026, 3, 28, 21, 30)  # 22:30 in Berlin, which changes to summer time at 01:00 UTC on 29 March


def _config(tmp_path: Path, ports: list[str], store_url: str | None = None):  # type: ignore[no-untyped-def]
    cfg = make_config(tmp_path, ports, store_url=store_url)
    # A long poll: the test drives the scheduler with tick() (its loop also runs).
    return dataclasses.replace(cfg, schedules=SchedulesConfig(poll_interval_s=3600.0, grace_s=300.0))


async def _wait_sent(store: Store, schedule_id: str, n: int) -> list[dict]:
    for _ in range(500):
        rows = schedule_messages(store, schedule_id)
        if len(rows) == n and all(r["state"] in ("sent", "delivered") for r in rows):
            return rows
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {n} sent messages of schedule {schedule_id}, got {schedule_messages(store, schedule_id)}")


async def test_each_occurrence_once_across_a_restart_with_the_missed_policy(tmp_path: Path, store_url: str) -> None:
    clock = FakeClock(T0)
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        cfg = _config(tmp_path, [str(m.path) for m in fake.modems], store_url)
        async with running_gateway(cfg) as (gw, c):
            gw.scheduler.clock = clock
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            ids = {}
            for missed in ("once", "skip"):
                status, body = await c.request("POST", "/api/v1/schedules", json={
                    "name": f"hourly {missed}", "cron": "0 * * * *", "timezone": "Europe/Berlin",
                    "to": ["+447700900301"], "template": "reading at {time} ({missed})",
                    "variables": {"missed": missed}, "missed": missed})
                assert status == 201, body
                assert body["next_run_local"] == "2026-03-28T23:00:00+01:00" and body["runs"] == 0
                ids[missed] = body["id"]
            key = c.key
            assert await gw.scheduler.tick() == 0  # nothing due at 22:30 Berlin
            clock.now = utc(2026, 3, 28, 22, 0, 10)  # 23:00:10 Berlin (UTC+1)
            # 23:00 Berlin, for both schedules (the scheduler's own loop may take it first:
            # whoever does, each occurrence is queued once).
            await gw.scheduler.tick()
            assert await gw.scheduler.tick() == 0  # again at the same time: nothing new
            for sid in ids.values():
                [m] = await _wait_sent(gw.store, sid, 1)
                assert m["door"] == "schedule" and m["idempotency_key"] == occurrence_key(sid, utc(2026, 3, 28, 22))
                assert m["text"].startswith("reading at 23:00")
            # A crash after a submit and before the cursor moved: the next gateway submits the
            # occurrence again, and its key makes that a replay.
            caller = Caller(id=(await gw.store.call(gw.store.schedules.get_schedule, ids["once"]))["api_key_id"],
                            name="test", scopes=frozenset({"send"}))
            early = await gw.intake.submit(caller, SendRequest(
                to=["+447700900301"], template="reading at {time} ({missed})",
                variables={"date": "2026-03-29", "time": "04:00", "missed": "once"},
                idempotency_key=occurrence_key(ids["once"], utc(2026, 3, 29, 2)), door="schedule",
                schedule_id=ids["once"]))
            await c.wait_state(early.batch_id, {"sent", "delivered"})
        # Down from 23:00:10 to 04:30 Berlin: 00:00, 01:00, 03:00 and 04:00 Berlin (22:00 ...
        # 02:00 UTC; 02:00 Berlin does not exist that night) were missed.
        clock.now = utc(2026, 3, 29, 2, 30)
        gw2 = Gateway(cfg, host="test-host")
        gw2.scheduler.clock = clock
        await gw2.start()
        try:
            await gw2.pool.slots["sim1"].driver.wait_ready(10)
            await gw2.scheduler.tick()  # once: the latest missed only (04:00 Berlin)
            once = await _wait_sent(gw2.store, ids["once"], 2)
            assert once[1]["id"] == early.batch_id  # the replayed one: not queued twice
            assert once[1]["text"].startswith("reading at 04:00")
            assert len(schedule_messages(gw2.store, ids["skip"])) == 1  # skip: none of the missed
            # A second host on the same store at the same moment finds nothing to do.
            other = Store(cfg.store.url, host="other-host")
            try:
                assert await Scheduler(other, gw2.intake, lambda: cfg, clock=clock).tick() == 0
            finally:
                other.close()
            clock.now = utc(2026, 3, 29, 3, 0, 5)  # 05:00 Berlin: on time for both
            await gw2.scheduler.tick()
            await _wait_sent(gw2.store, ids["once"], 3)
            skip = await _wait_sent(gw2.store, ids["skip"], 2)
            assert skip[1]["text"].startswith("reading at 05:00")
            for sid in ids.values():
                keys = [m["idempotency_key"] for m in schedule_messages(gw2.store, sid)]
                assert len(keys) == len(set(keys))
            async with aiohttp.ClientSession() as s:
                async with s.get(f"{gw2.base_url}/api/v1/schedules/{ids['skip']}",
                                 headers={"Authorization": f"Bearer {key}"}) as r:
                    view = await r.json()
            assert view["runs"] == 2 and view["skipped"] == 4, view
            assert view["last_run_local"] == "2026-03-29T05:00:00+02:00"
            assert view["next_run_local"] == "2026-03-29T06:00:00+02:00"
            assert view["messages_by_state"].get("sent", 0) + view["messages_by_state"].get("delivered", 0) == 2
        finally:
            await gw2.stop()
