"""Modems known by IMEI/ICCID: found among the ports present, found again after a
replug under another name (the ttyUSB renumbering a real replug causes)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from gsmgw.config import DiscoveryConfig, ModemConfig
from gsmgw.domain import ModemState
from gsmgw.emulator import FakeModemPool
from gsmgw.modem.identify import PortIdentity, identify_port
from gsmgw.pool.discovery import candidate_ports, identity_matches
from tests.helpers import make_config, running_gateway


def test_candidate_ports_prefer_stable_names_and_skip_taken(tmp_path: Path) -> None:
    (tmp_path / "by-id").mkdir()
    dev = tmp_path / "ttyUSB3"
    dev.write_text("")
    other = tmp_path / "ttyUSB4"
    other.write_text("")
    (tmp_path / "by-id" / "usb-SIMCOM-if02").symlink_to(dev)
    ports = candidate_ports([str(tmp_path / "by-id" / "*"), str(tmp_path / "ttyUSB*")])
    assert ports == [str(tmp_path / "by-id" / "usb-SIMCOM-if02"), str(other)]
    assert candidate_ports([str(tmp_path / "ttyUSB*")], exclude=[str(tmp_path / "by-id" / "usb-SIMCOM-if02")]) == [
        str(other)
    ]


def test_identity_matching() -> None:
    got = PortIdentity("/dev/x", "861234567890123", "8944110000000000001")
    assert identity_matches("861234567890123", "", got)
    assert identity_matches("", "8944110000000000001F", got)
    assert not identity_matches("861234567890124", "", got)
    assert not identity_matches("", "", got)


async def test_identify_port_reads_imei_and_iccid(tmp_path: Path) -> None:
    async with FakeModemPool(count=1, directory=tmp_path) as fake:
        ident = await identify_port(str(fake.modems[0].path), timeout_s=2.0)
        assert ident is not None
        assert ident.imei == fake.modems[0].modem.imei
        assert ident.iccid == fake.modems[0].modem.iccid
        # The port is free again: the gateway can open it next.
        again = await identify_port(str(fake.modems[0].path), timeout_s=2.0)
        assert again == ident
    assert await identify_port(str(tmp_path / "absent"), timeout_s=0.5) is None


async def test_modem_matched_by_imei_is_found_and_found_again_after_renumbering(tmp_path: Path) -> None:
    ports = tmp_path / "ports"
    async with FakeModemPool(count=2, directory=ports) as fake:
        target = fake.modems[1]
        base = make_config(tmp_path, [])
        cfg = type(base)(
            api=base.api, store=base.store, dispatch=base.dispatch,
            discovery=DiscoveryConfig(port_globs=(str(ports / "ttyGSM*"),), rescan_interval_s=0.2,
                                      rediscover_after_s=0.3, identify_timeout_s=1.0),
            modem=(ModemConfig(id="byimei", imei=target.modem.imei, command_timeout_s=1.0,
                               registration_timeout_s=5.0),),
        )
        async with running_gateway(cfg) as (gw, c):
            slot = gw.pool.slots["byimei"]
            for _ in range(200):
                if slot.driver.state is ModemState.READY:
                    break
                await asyncio.sleep(0.02)
            assert slot.driver.state is ModemState.READY
            assert os.path.realpath(slot.port) == os.path.realpath(target.path)
            _, body = await c.request("POST", "/api/v1/messages", json={"to": "+15551234567", "text": "one"})
            await c.wait_state(body["id"], {"sent", "delivered"})
            assert len(target.modem.sent) == 1
            # Unplug; it comes back as ttyGSM9 (another name, another pty).
            await target.unplug()
            target.link_path = ports / "ttyGSM9"
            await asyncio.sleep(0.1)
            await target.replug()
            for _ in range(400):
                if slot.driver.state is ModemState.READY and slot.port.endswith("ttyGSM9"):
                    break
                await asyncio.sleep(0.02)
            assert slot.port.endswith("ttyGSM9"), slot.port
            assert slot.driver.state is ModemState.READY
            _, body = await c.request("POST", "/api/v1/messages", json={"to": "+15551234567", "text": "two"})
            await c.wait_state(body["id"], {"sent", "delivered"})
            assert len(target.modem.sent) == 2
            assert fake.modems[0].modem.sent == []  # never confused with the other modem
