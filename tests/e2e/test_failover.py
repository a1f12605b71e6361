"""Failover: one modem hangs or vanishes mid-batch; one message is bad; the rest flows."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import pytest

from gsmgw.emulator import Behaviour, FakeModemPool
from tests.helpers import make_config, running_gateway

# Long end-to-end runs: `make test-fast` leaves them out.
pytestmark = pytest.mark.slow

FINAL = {"sent", "delivered", "failed", "unknown", "expired", "cancelled"}


async def _post_batch(c, n: int, prefix: str = "+1555300") -> list[str]:
    ids = []
    for i in range(n):
        status, body = await c.request("POST", "/api/v1/messages", json={"to": f"{prefix}{i:04d}", "text": f"m{i}"})
        assert status == 202
        ids.append(body["id"])
    return ids


@pytest.mark.parametrize("fault", ["hang", "vanish"])
async def test_batch_fails_over_when_a_modem_hangs_or_vanishes(tmp_path: Path, fault: str) -> None:
    async with FakeModemPool(count=3, directory=tmp_path / "ports",
                             behaviours=[Behaviour(send_latency_s=0.03) for _ in range(3)]) as fake:
        # The broken modem is rested for longer than the test runs: each time a rest
        # ends it is tried again, and a modem that still hangs then yields another unknown.
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems], retry_backoff_initial_s=60.0)
        async with running_gateway(cfg) as (gw, c):
            for i in range(3):
                await gw.pool.slots[f"sim{i + 1}"].driver.wait_ready(10)
            ids = await _post_batch(c, 30)
            # Let the batch start, then break sim1 in the middle of it.
            while len(fake.modems[0].modem.sent) < 2:
                await asyncio.sleep(0.005)
            if fault == "hang":
                fake.modems[0].modem.behaviour.hang_on_submit = True
            else:
                fake.modems[0].modem.behaviour.drop_port_on_submit = True
            results = [await c.wait_state(mid, FINAL, timeout_s=30) for mid in ids]
            states = collections.Counter(r["state"] for r in results)
            assert states["unknown"] <= 1, states  # only the one in flight on the broken modem
            assert states["sent"] + states["delivered"] == 30 - states["unknown"], states
            on_air = collections.Counter(r.destination for m in fake.modems for r in m.modem.sent)
            assert max(on_air.values()) == 1
            # Everything reported sent went on the air exactly once; the unknown one may or may not have.
            assert 30 - states["unknown"] <= sum(on_air.values()) <= 30
            broken_after = len(fake.modems[0].modem.sent)
            await asyncio.sleep(0.2)
            assert len(fake.modems[0].modem.sent) == broken_after  # the broken modem is not fed more


async def test_one_bad_message_does_not_delay_the_rest(tmp_path: Path) -> None:
    async with FakeModemPool(count=1, directory=tmp_path / "ports",
                             behaviours=Behaviour(send_latency_s=0.02)) as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems], retry_backoff_initial_s=30.0)
        async with running_gateway(cfg) as (gw, c):
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            # The first message meets a transient network error: it waits 30 s for its
            # retry, and must not hold the nine behind it.
            fake.modems[0].modem.behaviour.cms_error_on_submit = 42
            fake.modems[0].modem.behaviour.cms_error_first_n = 1
            ids = await _post_batch(c, 10)
            results = [await c.wait_state(mid, FINAL, timeout_s=10) for mid in ids[1:]]
            assert all(r["state"] in ("sent", "delivered") for r in results)
            first = await c.request("GET", f"/api/v1/messages/{ids[0]}")
            assert first[1]["state"] == "queued" and first[1]["error"]["code"] == "cms:42"


async def test_unexpected_error_on_one_modem_leaves_the_others_sends_alone(tmp_path: Path) -> None:
    from gsmgw.daemon import Gateway
    from gsmgw.pool import default_driver_factory
    from tests.helpers import Client

    def factory(cfg):  # sim1's driver has a bug: send_pdus raises
        driver = default_driver_factory(cfg)
        if cfg.id == "sim1":
            async def broken(parts):
                raise RuntimeError("driver bug")
            driver.send_pdus = broken  # type: ignore[method-assign]
        return driver

    async with FakeModemPool(count=2, directory=tmp_path / "ports",
                             behaviours=[Behaviour(), Behaviour(send_latency_s=0.5)]) as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems], retry_backoff_initial_s=60.0)
        gw = Gateway(cfg, host="test-host", driver_factory=factory)
        await gw.start()
        try:
            _, key = await gw.store.call(gw.store.keys.create_api_key, "t", ["send", "read", "admin"])
            import aiohttp

            async with aiohttp.ClientSession() as session:
                c = Client(gw.base_url, key, session)
                for sid in ("sim1", "sim2"):
                    await gw.pool.slots[sid].driver.wait_ready(10)
                gw.pool.set_enabled("sim1", False)
                _, slow = await c.request("POST", "/api/v1/messages", json={"to": "+15551230001", "text": "slow"})
                while not fake.modems[1].modem.sent and gw.pool.slots["sim2"].busy is False:
                    await asyncio.sleep(0.01)
                gw.pool.set_enabled("sim1", True)
                gw.pool.set_enabled("sim2", False)  # so the next one goes to the broken sim1
                _, bad = await c.request("POST", "/api/v1/messages", json={"to": "+15551230002", "text": "bad"})
                bad_msg = await c.wait_state(bad["id"], {"unknown", "failed", "sent", "queued"} - {"queued"})
                slow_msg = await c.wait_state(slow["id"], {"sent", "delivered", "unknown", "failed"})
        finally:
            await gw.stop()
    assert bad_msg["state"] == "unknown"
    assert slow_msg["state"] in ("sent", "delivered"), slow_msg  # not swept up by sim1's error
