"""A campaign to 5,000 contacts over emulated modems: progress that adds up at every
look, paused (the queue stops being fed) and resumed, the gateway killed with
SIGKILL mid-campaign and started again, and nothing sent twice (PDUs the emulated
modems received, counted per recipient).

The modems live in this test process (they outlive the gateway, as real modems
outlive a crashed daemon); the gateway is a real ``gsmgw run`` subprocess.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gsmgw.emulator import Behaviour, FakeModemPool
from gsmgw.store import Store

pytestmark = pytest.mark.slow

N = 5000
N_MODEMS = 6
WINDOW = 200
PARTS = ("queued", "sent", "delivered", "failed", "opted_out", "cancelled", "pending")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_config(path: Path, db: Path, port: int, ports: list[str]) -> None:
    modems = "".join(
        f'[[modem]]\nid = "sim{i + 1}"\nport = "{p}"\ncommand_timeout_s = 2.0\nsend_timeout_s = 3.0\n'
        for i, p in enumerate(ports))
    path.write_text(
        f'[api]\nlisten = "127.0.0.1:{port}"\n[store]\nurl = "sqlite:///{db}"\nlease_s = 30.0\n'
        f'[dispatch]\npoll_interval_s = 0.2\nsticky_s = 0.0\n[logging]\nlevel = "warning"\n'
        f'[campaigns]\nwindow = {WINDOW}\npoll_interval_s = 0.1\n{modems}')


async def _start(cfg: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gsmgw", "run", "--config", str(cfg),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str, key: str) -> None:
        self.session, self.base, self.h = session, base, {"Authorization": f"Bearer {key}"}

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.base + path, headers={**self.h, **kw.pop("headers", {})},
                                        **kw) as r:
            return r.status, await r.json(content_type=None)

    async def up(self, timeout_s: float = 45.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                async with self.session.get(self.base + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert time.monotonic() < deadline, "gateway did not come up"
            await asyncio.sleep(0.05)

    async def progress(self, cid: str) -> dict[str, Any]:
        status, body = await self.call("GET", f"/api/v1/campaigns/{cid}")
        assert status == 200, body
        p = body["progress"]
        # The figures add up, at every look.
        assert sum(p[k] for k in PARTS) == p["total"] == N, p
        return {**p, "state": body["state"]}


def _on_air(fake: FakeModemPool) -> collections.Counter[str]:
    return collections.Counter(r.destination for m in fake.modems for r in m.modem.sent)


async def _until(fake: FakeModemPool, n: int, stall_s: float, what: str) -> None:
    """Until the modems received ``n`` PDUs; fails when none came for ``stall_s`` (a loaded
    machine is slow, a stuck campaign is stopped)."""
    last, since = -1, time.monotonic()
    while (now_sent := sum(_on_air(fake).values())) < n:
        if now_sent != last:
            last, since = now_sent, time.monotonic()
        assert time.monotonic() - since < stall_s, f"{what}: stuck at {now_sent}"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(300)
async def test_campaign_to_5000_paused_resumed_killed_restarted_nothing_twice(tmp_path: Path) -> None:
    t0 = time.monotonic()
    db = tmp_path / "gsmgw.db"
    store = Store(f"sqlite:///{db}")
    await store.call(store.migrate)
    _kid, key = await store.call(store.keys.create_api_key, "campaigns", ["send", "read"])
    store.close()
    numbers = [f"+1555300{i:04d}" for i in range(N)]
    csv = "number,name,city\n" + "".join(f"{n},Name {i},City{i % 7}\n" for i, n in enumerate(numbers))
    port = _free_port()
    async with FakeModemPool(count=N_MODEMS, directory=tmp_path / "ports", report_delay_s=0.01,
                             behaviours=Behaviour(send_latency_s=0.002)) as fake, aiohttp.ClientSession() as s:
        cfg = tmp_path / "gsmgw.toml"
        _write_config(cfg, db, port, [str(m.path) for m in fake.modems])
        api = Api(s, f"http://127.0.0.1:{port}", key)
        proc = await _start(cfg)
        try:
            await api.up()
            status, rep = await api.call("POST", "/api/v1/contacts/import?group=everyone", data=csv.encode(),
                                         headers={"Content-Type": "text/csv"})
            assert status == 200 and rep["created"] == N and rep["invalid"] == 0, rep
            status, camp = await api.call("POST", "/api/v1/campaigns", json={
                "name": "e2e", "template": "Hi {name}, see you in {city}", "group": "everyone"})
            assert status == 201, camp
            cid = camp["id"]
            status, v = await api.call("POST", f"/api/v1/campaigns/{cid}/validate")
            assert status == 200 and v["ok"] and v["recipients"] == N and v["missing_count"] == 0, v
            t_start = time.monotonic()
            for _ in range(2):  # starting twice is harmless
                status, body = await api.call("POST", f"/api/v1/campaigns/{cid}/start")
                assert status == 200 and body["state"] == "running", body
            await _until(fake, 1000, 30, "campaign did not send")

            # Pause: the queue stops being fed; what was queued (at most the window) drains.
            status, body = await api.call("POST", f"/api/v1/campaigns/{cid}/pause")
            assert status == 200 and body["state"] == "paused"
            at_pause = sum(_on_air(fake).values())
            p = await api.progress(cid)
            while p["queued"]:
                await asyncio.sleep(0.05)
                p = await api.progress(cid)
            settled = sum(_on_air(fake).values())
            assert settled - at_pause <= WINDOW, (at_pause, settled)
            await asyncio.sleep(0.5)  # nothing more goes out while paused
            assert sum(_on_air(fake).values()) == settled
            p = await api.progress(cid)
            assert p["pending"] == N - settled and p["state"] == "paused", p

            status, body = await api.call("POST", f"/api/v1/campaigns/{cid}/resume")
            assert status == 200 and body["state"] == "running"
            await _until(fake, settled + 1500, 30, "resume did not send")

            # kill -9 mid-campaign, then start again.
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
            at_kill = sum(_on_air(fake).values())
            proc = await _start(cfg)
            await api.up()
            # Replies: three recipients answer on one SIM, one of them twice.
            for n in numbers[:3]:
                fake.modems[0].modem.inject_sms(n, "thanks")
            fake.modems[1].modem.inject_sms(numbers[0], "again")
            last, since = -1, time.monotonic()
            while True:
                p = await api.progress(cid)
                if p["state"] == "completed" and p["sent"] == 0 and p["replies"] == 3:
                    break
                done = p["delivered"] + p["failed"] + p["replies"]
                if done != last:
                    last, since = done, time.monotonic()
                assert time.monotonic() - since < 30, p
                await asyncio.sleep(0.2)
            elapsed = time.monotonic() - t_start
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        on_air = _on_air(fake)
    print(f"campaign of {N}: {elapsed:.1f} s from start to completed (test {time.monotonic() - t0:.1f} s); "
          f"paused at {at_pause}, settled {settled}, killed at {at_kill}; final {p}")
    assert max(on_air.values()) == 1, [n for n, c in on_air.items() if c > 1][:5]  # nothing twice
    assert set(on_air) <= set(numbers)
    # Everything went out once, except what the kill left mid-send (unknown: never resent).
    assert p["opted_out"] == p["cancelled"] == p["pending"] == p["queued"] == 0
    assert p["delivered"] + p["failed"] == N and p["failed"] <= N_MODEMS, p
    assert len(on_air) >= p["delivered"]
