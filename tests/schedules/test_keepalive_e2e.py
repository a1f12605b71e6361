"""SIM keep-alive end to end over the emulator (real ptys), with days made to pass by an
injected clock: it fires when due and its result is recorded; a failing one (a USSD
code the network refuses, an SMS the modem refuses) logs a warning and writes
sim:keepalive-failed; a SIM quiet past its operator's expiry gets sim:expiry-risk once;
two hosts never both fire it."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from pathlib import Path

import pytest

from gsmgw.config import KeepAliveConfig, KeepAliveSim
from gsmgw.emulator import Behaviour, FakeModemPool
from gsmgw.store import Store
from tests.helpers import make_config
from tests.schedules.helpers import FakeClock, clocked_gateway, utc

T0 = utc(2026, 11, 1, 12)


async def _events(gw, type_: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return await gw.store.call(gw.store.events.list_events, type_=type_)


async def test_ussd_keepalive_fires_when_due_and_a_failing_one_warns(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(T0)
    async with FakeModemPool(count=2, directory=tmp_path / "ports") as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
        cfg = dataclasses.replace(cfg, keepalive=KeepAliveConfig(
            enabled=True, every_days=7, action="ussd", ussd="*100#", check_interval_s=3600.0,
            retry_after_s=3600.0, sim=(KeepAliveSim(modem="sim2", ussd="*999#", expiry_days=10),)))
        async with clocked_gateway(cfg, clock) as (gw, c):
            for sid in ("sim1", "sim2"):
                await gw.pool.slots[sid].driver.wait_ready(10)
            assert await gw.keepalive.tick() == []  # first seen now: nothing due
            clock.advance(days=6, hours=23)
            assert await gw.keepalive.tick() == []  # not yet
            clock.advance(hours=2)  # 7 days and 1 hour since first seen
            with caplog.at_level(logging.WARNING, logger="gsmgw.schedules"):
                runs = {r["sim"]: r for r in await gw.keepalive.tick()}
            assert runs["sim1"]["ok"] is True and "12.34 EUR" in runs["sim1"]["detail"]
            assert runs["sim2"]["ok"] is False and "*999#" in runs["sim2"]["detail"]
            assert any("sim2" in r.getMessage() and "keep-alive failed" in r.getMessage() for r in caplog.records)
            [failed] = await _events(gw, "sim:keepalive-failed")
            assert failed["modem_id"] == "sim2" and '"kind": "ussd"' in failed["payload"]
            # Recorded in the store: time, kind, ok/failed, detail.
            [run1] = await gw.store.call(gw.store.schedules.keepalive_runs, "sim1")
            assert (run1["at"], run1["kind"], run1["ok"], run1["host"]) == (clock.now, "ussd", True, "test-host")
            # Shown per SIM in the status.
            status, st = await c.request("GET", "/api/v1/status")
            ka = {k["sim"]: k for k in st["keepalive"]}
            assert ka["sim1"]["last_success_at"] == "2026-11-08T13:00:00Z"
            assert ka["sim1"]["next_due_at"] == "2026-11-15T13:00:00Z"
            assert ka["sim2"]["last_success_at"] is None and ka["sim2"]["last_run"]["ok"] is False
            assert ka["sim2"]["next_due_at"] == "2026-11-08T14:00:00Z"  # retry_after_s after the failure
            # Not again at once: sim1 succeeded, sim2 waits retry_after_s.
            assert await gw.keepalive.tick() == []
            clock.advance(hours=1, minutes=1)
            runs = await gw.keepalive.tick()
            assert [(r["sim"], r["ok"]) for r in runs] == [("sim2", False)]
            assert len(await _events(gw, "sim:keepalive-failed")) == 2
            # 10 days without success on sim2 (expiry_days 10): one expiry alert, not one per check.
            assert await _events(gw, "sim:expiry-risk") == []
            clock.now = T0 + (utc(2026, 11, 11, 12, 1) - utc(2026, 11, 1, 12))
            await gw.keepalive.tick()
            await gw.keepalive.tick()
            [risk] = await _events(gw, "sim:expiry-risk")
            assert risk["modem_id"] == "sim2" and '"expiry_days": 10.0' in risk["payload"]
            _, body = await c.request("GET", "/api/v1/keepalive")
            assert {k["sim"]: k["expiry_risk"] for k in body["items"]} == {"sim1": False, "sim2": True}
            # A SIM that sends a normal SMS needs no keep-alive: its send counts as a success.
            _, sent = await c.request("POST", "/api/v1/messages", json={"to": "+447700900777", "text": "hi",
                                                                         "sim": "sim1"})
            await c.wait_state(sent["id"], {"sent", "delivered"})
            clock.now = utc(2026, 11, 16, 12)  # more than 7 days after sim1's keep-alive, in fake time
            runs = await gw.keepalive.tick()
            assert "sim1" not in {r["sim"] for r in runs}  # its real send is later than fake "now - 7 d"


async def test_sms_keepalive_recorded_when_sent_and_failed_when_refused(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    async with FakeModemPool(count=2, directory=tmp_path / "ports",
                             behaviours=[Behaviour(), Behaviour(cms_error_on_submit=21)]) as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
        cfg = dataclasses.replace(cfg, keepalive=KeepAliveConfig(
            enabled=True, every_days=30, action="sms", sms_to="+447700900999", sms_text="still here",
            check_interval_s=0.05))
        async with clocked_gateway(cfg, clock) as (gw, c):
            for sid in ("sim1", "sim2"):
                await gw.pool.slots[sid].driver.wait_ready(10)
            await gw.keepalive.tick()
            clock.advance(days=31)
            # Due now: queued by this tick or by the keep-alive loop (check_interval_s 0.05),
            # whichever comes first; once either way. The loop settles them once sent/failed.
            await gw.keepalive.tick()
            last: dict = {}
            for _ in range(500):
                last = {r["modem_id"]: r for r in await gw.store.call(gw.store.schedules.keepalive_runs)}
                if len(last) == 2 and all(r["ok"] is not None for r in last.values()):
                    break
                await asyncio.sleep(0.02)
            assert len(await gw.store.call(gw.store.schedules.keepalive_runs)) == 2  # one run per SIM
            assert last["sim1"]["ok"] is True and last["sim1"]["kind"] == "sms"
            assert last["sim2"]["ok"] is False and "failed" in last["sim2"]["detail"]
            _, msg = await c.request("GET", f"/api/v1/messages/{last['sim1']['message_id']}")
            assert msg["sim"] == "sim1" and msg["text"] == "still here"
            [ev] = await gw.store.call(gw.store.events.list_events, type_="sim:keepalive-failed")
            assert ev["modem_id"] == "sim2"


def test_two_hosts_never_both_fire_a_keepalive(store_url: str) -> None:
    a, b = Store(store_url, host="host-a"), Store(store_url, host="host-b")
    try:
        a.migrate()
        now = T0
        due = {"due_before": now - dt.timedelta(days=30), "retry_before": now - dt.timedelta(hours=1),
               "lease_s": 300.0}
        first_seen = now - dt.timedelta(days=40)
        a.schedules.keepalive_rows(["sim1"], first_seen)  # first seen 40 days ago
        got = [a.schedules.claim_keepalive("sim1", now, **due), b.schedules.claim_keepalive("sim1", now, **due)]
        assert sum(g is not None for g in got) == 1
        assert b.schedules.claim_keepalive("sim1", now, **due) is None
        a.schedules.record_keepalive("sim1", "ussd", True, "ok", now)
        # Done: not due for either host until every_days pass again.
        assert a.schedules.claim_keepalive("sim1", now, **due) is None
        assert b.schedules.claim_keepalive("sim1", now, **due) is None
    finally:
        a.close()
        b.close()
