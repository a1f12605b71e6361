"""Recipient-local quiet hours end to end over the emulator (a real pty): a marketing
message to a New York number at 02:30 New York time waits (``waiting``:
``recipient_quiet_hours`` until 08:00 there) while a transactional one goes at once;
when the injected clock reaches the window, it goes. No sleeping for hours: the
gateway's SIM care clock is set by the test."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
import zoneinfo
from pathlib import Path
from typing import Any

import aiohttp

from gsmgw.config import QuietHoursConfig, SimCareConfig
from gsmgw.emulator import FakeModemPool
from tests.console.conftest import Browserish
from tests.helpers import Client, make_config, running_gateway

NY = zoneinfo.ZoneInfo("America/New_York")


def next_night_in_new_york(after: dt.datetime) -> dt.datetime:
    local = after.astimezone(NY)
    t = dt.datetime.combine(local.date(), dt.time(2, 30), tzinfo=NY).astimezone(dt.UTC)
    return t if t > after + dt.timedelta(minutes=1) else t + dt.timedelta(days=1)


async def wait_for(c: Client, mid: str, pred: Any, timeout_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    msg: Any = None
    while time.monotonic() < deadline:
        _, msg = await c.request("GET", f"/api/v1/messages/{mid}")
        if pred(msg):
            return msg
        await asyncio.sleep(0.05)
    raise AssertionError(f"message {mid}: condition not met in {timeout_s} s: {msg}")


async def test_night_message_waits_for_the_recipients_morning_and_then_goes(tmp_path: Path) -> None:
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        base = make_config(tmp_path, [str(m.path) for m in fake.modems], default_ttl_s=3 * 86400.0)
        modem = dataclasses.replace(base.modem[0], max_per_month=50, cost_per_part_micros=12_000)
        cfg = dataclasses.replace(base, modem=(modem,), quiet_hours=QuietHoursConfig("08:00-21:00"),
                                  sim_care=SimCareConfig(timezone="Europe/Berlin"))
        wall = [next_night_in_new_york(dt.datetime.now(dt.UTC))]
        async with running_gateway(cfg) as (gw, c):
            gw.pool.pipeline.wall_clock = lambda: wall[0]
            status, bulk = await c.request("POST", "/api/v1/messages",
                                           json={"to": "+12125551234", "text": "Sale: 20% off today"})
            assert status == 202, bulk
            msg = await wait_for(c, bulk["id"], lambda m: m.get("waiting"))
            opens = dt.datetime.combine(wall[0].astimezone(NY).date(), dt.time(8, 0), tzinfo=NY)
            assert msg["state"] == "queued"
            assert msg["waiting"] == {"reason": "recipient_quiet_hours",
                                      "until": opens.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")}
            # The console's message page says so too.
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
                ui = Browserish(gw.base_url, session)
                assert (await ui.login(c.key)).status == 303
                page = await ui.get(f"/ui/messages/{bulk['id']}")
            assert page.status == 200 and 'id="waiting"' in page.text and "quiet hours" in page.text
            # A transactional message to the same city is not held by the window.
            status, otp = await c.request("POST", "/api/v1/messages", json={
                "to": "+12125551235", "text": "Your code is 123456", "transactional": True})
            assert status == 202, otp
            sent_otp = await c.wait_state(otp["id"], {"sent", "delivered", "failed", "unknown"})
            assert sent_otp["state"] in ("sent", "delivered") and sent_otp["cost_micros"] == 12_000
            await asyncio.sleep(0.5)  # a few claim rounds: the night message is still held
            _, msg = await c.request("GET", f"/api/v1/messages/{bulk['id']}")
            assert msg["state"] == "queued" and msg["attempts"] == 0
            assert [r.destination for r in fake.modems[0].modem.sent] == ["+12125551235"]

            # Morning in New York: the window opens and the message goes.
            wall[0] = opens.astimezone(dt.UTC) + dt.timedelta(seconds=1)
            gw.pool.notify_work()
            msg = await c.wait_state(bulk["id"], {"sent", "delivered", "failed", "unknown"})
            assert msg["state"] in ("sent", "delivered"), msg
            assert msg["waiting"] is None and msg["cost_micros"] == 12_000
            assert [r.destination for r in fake.modems[0].modem.sent] == ["+12125551235", "+12125551234"]

            # The status API shows the SIM's month cap and the cost block.
            status, st = await c.request("GET", "/api/v1/status")
            assert status == 200
            [m] = st["modems"]
            assert m["care"]["caps"]["month"] == {"cap": 50, "used": 2, "left": 48}
            assert st["cost"]["currency"] == ""
            status, modems = await c.request("GET", "/api/v1/modems")
            assert modems["items"][0]["care"]["caps"]["month"]["used"] == 2


async def test_paced_bulk_waits_between_sends_and_an_otp_overtakes_it(tmp_path: Path) -> None:
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        base = make_config(tmp_path, [str(m.path) for m in fake.modems], default_ttl_s=3 * 86400.0)
        modem = dataclasses.replace(base.modem[0], pace_min_s=300, pace_max_s=600, pace_mode="jitter",
                                    max_recipients_per_day=10)
        cfg = dataclasses.replace(base, modem=(modem,))
        wall = [dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)]
        async with running_gateway(cfg) as (gw, c):
            gw.pool.pipeline.wall_clock = lambda: wall[0]
            ids = []
            for i in range(3):
                status, body = await c.request("POST", "/api/v1/messages",
                                               json={"to": f"+4915112345{i:03d}", "text": f"news {i}"})
                assert status == 202, body
                ids.append(body["id"])
            first = await c.wait_state(ids[0], {"sent", "delivered", "failed", "unknown"})
            assert first["state"] in ("sent", "delivered")
            _, st = await c.request("GET", "/api/v1/status")
            care = st["modems"][0]["care"]
            nxt = dt.datetime.fromisoformat(care["pace"]["next_send_at"])
            assert wall[0] + dt.timedelta(seconds=300) <= nxt <= wall[0] + dt.timedelta(seconds=600)
            assert care["caps"]["recipients_day"] == {"cap": 10, "used": 1, "left": 9}
            status, otp = await c.request("POST", "/api/v1/messages",
                                          json={"to": "+4917000000001", "text": "code 4711", "priority": "otp"})
            sent = await c.wait_state(otp["id"], {"sent", "delivered", "failed", "unknown"})
            assert sent["state"] in ("sent", "delivered")  # overtook the two paced messages
            await asyncio.sleep(0.5)
            for mid in ids[1:]:
                _, msg = await c.request("GET", f"/api/v1/messages/{mid}")
                assert msg["state"] == "queued"
            # The pause ends (the OTP's own send paced the next bulk one too).
            _, st = await c.request("GET", "/api/v1/status")
            wall[0] = dt.datetime.fromisoformat(st["modems"][0]["care"]["pace"]["next_send_at"])
            gw.pool.notify_work()
            await c.wait_state(ids[1], {"sent", "delivered"})
            _, msg = await c.request("GET", f"/api/v1/messages/{ids[2]}")
            assert msg["state"] == "queued"
            assert [r.destination for r in fake.modems[0].modem.sent] == [
                "+4915112345000", "+4917000000001", "+4915112345001"]
