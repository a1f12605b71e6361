"""Config reload (SIGHUP): modems added, removed and changed, limits changed; the queue survives."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gsmgw.config import load
from gsmgw.daemon import Gateway
from gsmgw.emulator import Behaviour, FakeModemPool
from tests.helpers import Client, running_gateway
from tests.service.conftest import toml_config


async def _post(c: Client, n: int, prefix: str) -> list[str]:
    ids = []
    for i in range(n):
        status, body = await c.request("POST", "/api/v1/messages", json={"to": f"+1555{prefix}{i:04d}", "text": f"r{i}"})
        assert status == 202, body
        ids.append(body["id"])
    return ids


async def _states(gw: Gateway, ids: list[str]) -> dict[str, str]:
    return {mid: (await gw.store.call(gw.store.messages.get_message, mid))["state"] for mid in ids}


async def test_reload_adds_a_modem_lifts_a_limit_then_removes_a_modem(tmp_path: Path) -> None:
    async with FakeModemPool(count=2, directory=tmp_path / "ports",
                             behaviours=Behaviour(send_latency_s=0.02)) as fake:
        p1, p2 = (str(m.path) for m in fake.modems)
        path = tmp_path / "gsmgw.toml"
        path.write_text(toml_config(tmp_path, [{"id": "sim1", "port": p1, "max_per_minute": 1}]))
        async with running_gateway(load(path)) as (gw, c):
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            ids = await _post(c, 4, "100")
            # sim1 may send one part a minute: one goes, three wait in the queue.
            await c.wait_state(ids[0], {"sent", "delivered"})
            await asyncio.sleep(0.5)
            states = await _states(gw, ids)
            assert sorted(states.values()).count("queued") == 3, states

            path.write_text(toml_config(tmp_path, [{"id": "sim1", "port": p1, "max_per_minute": 0},
                                                   {"id": "sim2", "port": p2}]))
            assert await gw.reload_from(path)
            assert gw.pool.slots["sim1"].limiter.limits.per_minute == 0
            assert set(gw.pool.slots) == {"sim1", "sim2"}
            for mid in ids:
                await c.wait_state(mid, {"sent", "delivered"})
            assert fake.modems[0].modem.sent, "sim1 stopped sending after the reload"
            sim1_driver = gw.pool.slots["sim1"].driver  # only limits changed: same driver, not restarted

            # Remove sim1 in the middle of a batch: nothing is lost or left sending.
            ids2 = await _post(c, 6, "200")
            path.write_text(toml_config(tmp_path, [{"id": "sim2", "port": p2}]))
            assert await gw.reload_from(path)
            assert set(gw.pool.slots) == {"sim2"}
            assert gw.pool.slots["sim2"].driver is not sim1_driver
            for mid in ids2:
                msg = await c.wait_state(mid, {"sent", "delivered", "unknown", "failed"})
                assert msg["state"] in ("sent", "delivered"), msg
            _, modems = await c.request("GET", "/api/v1/modems")
            assert [m["id"] for m in modems["items"]] == ["sim2"]
            assert sum(len(m.modem.sent) for m in fake.modems) == 10  # each message exactly once


async def test_changed_port_restarts_the_driver_and_bad_config_is_refused(tmp_path: Path) -> None:
    async with FakeModemPool(count=2, directory=tmp_path / "ports") as fake:
        p1, p2 = (str(m.path) for m in fake.modems)
        path = tmp_path / "gsmgw.toml"
        path.write_text(toml_config(tmp_path, [{"id": "sim1", "port": p1}]))
        async with running_gateway(load(path)) as (gw, c):
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            old_driver = gw.pool.slots["sim1"].driver
            good = gw.cfg

            for bad in ('[[modem]]\nid = "sim1"\nport = "x"\nmax_per_minute = "ten"\n',  # wrong type
                        "[[modem]\n",  # not TOML
                        toml_config(tmp_path, [{"id": "sim1", "port": p1}, {"id": "sim1", "port": p2}])):
                path.write_text(bad)
                assert not await gw.reload_from(path)
                assert gw.cfg is good and gw.pool.slots["sim1"].driver is old_driver

            path.write_text(toml_config(tmp_path, [{"id": "sim1", "port": p2, "enabled": True}],
                                        listen="127.0.0.1:1"))
            assert await gw.reload_from(path)
            new_driver = gw.pool.slots["sim1"].driver
            assert new_driver is not old_driver
            assert gw.cfg.api.listen == good.api.listen  # [api] waits for a restart
            await new_driver.wait_ready(10)
            [mid] = await _post(c, 1, "300")
            await c.wait_state(mid, {"sent", "delivered"})
            assert len(fake.modems[1].modem.sent) == 1 and not fake.modems[0].modem.sent

            path.write_text(toml_config(tmp_path, [{"id": "sim1", "port": p2, "enabled": False}]))
            assert await gw.reload_from(path)
            assert gw.pool.slots["sim1"].driver is new_driver  # enabled is applied in place
            assert gw.pool.snapshot()[0]["enabled"] is False


async def test_removing_a_modem_waits_for_its_send_on_the_air(tmp_path: Path) -> None:
    slow = Behaviour(send_latency_s=0.6)
    async with FakeModemPool(count=2, directory=tmp_path / "ports", behaviours=[slow, Behaviour()]) as fake:
        p1, p2 = (str(m.path) for m in fake.modems)
        path = tmp_path / "gsmgw.toml"
        path.write_text(toml_config(tmp_path, [{"id": "sim1", "port": p1}]))
        async with running_gateway(load(path)) as (gw, c):
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            [mid] = await _post(c, 1, "400")
            async with asyncio.timeout(10):
                while not gw.pool.slots["sim1"].busy:
                    await asyncio.sleep(0.01)
            path.write_text(toml_config(tmp_path, [{"id": "sim2", "port": p2}]))
            changes = await gw.pool.apply_config(load(path))
            assert changes["removed"] == ["sim1"] and changes["added"] == ["sim2"]
            # apply_config returned only after the send on the air was recorded.
            msg = await gw.store.call(gw.store.messages.get_message, mid)
            assert msg["state"] in ("sent", "delivered") and msg["parts"][0]["modem_id"] == "sim1"
            assert len(fake.modems[0].modem.sent) == 1
            [mid2] = await _post(c, 1, "401")
            await c.wait_state(mid2, {"sent", "delivered"})
            assert len(fake.modems[1].modem.sent) == 1
