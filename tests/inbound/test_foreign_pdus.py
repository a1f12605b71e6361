"""Inbound PDUs that gsmgw did not produce: python-gammu's encoder and published
examples, put into the emulated SIM's storage (or delivered by its network) and read
by the gateway over a real pty."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import gammu
import pytest

from gsmgw.emulator import FakeModemPool, StoredSms
from tests.helpers import running_gateway
from tests.inbound.helpers import inbound_config, wait_until

SMSC = "+447785016005"

# Published SMS-DELIVER PDUs (SMSC field included), with what they say.
PUBLISHED = [
    # dreamfabric.com "SMS and the PDU format": national-format originator, 7-bit.
    ("07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37", "27838890001", "hellohello"),
    # Diafaan SMS Server documentation: alphanumeric originator.
    ("0791448720003023240DD0E474D81C0EBB010000111011315214000BE474D81C0EBB5DE3771B", "diafaan", "diafaan.com"),
    # Lars Pettersson's "SMS messages and the PDU format" (the GSM 03.40 walk-through).
    ("07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07", "+31641600986",
     "How are you?"),
]


def gammu_deliver(sender: str, text: str, *, unicode: bool = False, id16: bool = False,
                  when: dt.datetime | None = None) -> list[str]:
    """SMS-DELIVER PDUs (hex, SMSC included) from libgammu's encoder, one per part."""
    entry = "ConcatenatedTextLong16bit" if id16 else "ConcatenatedTextLong"
    info = {"Class": -1, "Unicode": unicode, "Entries": [{"ID": entry, "Buffer": text}]}
    out = []
    for sms in gammu.EncodeSMS(info):
        sms["Number"] = sender
        sms["SMSC"] = {"Location": 0, "Number": SMSC, "Validity": "NA", "Format": "Text"}
        sms["Type"] = "Deliver"
        sms["DateTime"] = when or dt.datetime(2026, 11, 21, 12, 0, 0)
        out.append(gammu.EncodePDU(sms, "Deliver").hex().upper())
    return out


def _fill(sim: Any, pdus: list[str]) -> None:
    for pdu in pdus:
        assert sim.storages["SM"].store(StoredSms(0, pdu)) is not None


async def test_gammu_and_published_pdus_in_a_full_sim_are_read_reassembled_and_drained(tmp_path: Path) -> None:
    long7 = "The quick brown fox jumps over the lazy dog. " * 8  # 3 parts
    long16 = "Ünicödé with a 16-bit reference € [] ~ " * 6  # GSM 7-bit with escapes
    emoji = "Привет 👋🏽, 你好! " * 7  # UCS-2, surrogate pairs across parts
    parts = (gammu_deliver("+447700900401", long7)
             + gammu_deliver("+447700900402", long16, id16=True)
             + gammu_deliver("+447700900403", emoji, unicode=True))
    assert len(parts) >= 7
    random.Random(7).shuffle(parts)  # out of order, interleaved
    pdus = parts + [p for p, _, _ in PUBLISHED]
    async with FakeModemPool(count=1, directory=tmp_path / "ports",
                             storage_capacity={"SM": len(pdus)}) as fake:
        sim = fake.modems[0].modem
        _fill(sim, pdus)  # the SIM is full before the gateway ever opens the port
        assert sim.storages["SM"].used == sim.storages["SM"].capacity
        cfg = inbound_config(tmp_path, [str(m.path) for m in fake.modems])
        async with running_gateway(cfg) as (gw, c):
            await wait_until(lambda: sim.storages["SM"].used == 0, what="storage drained")
            status, body = await c.request("GET", "/api/v1/inbox?limit=100")
            assert status == 200
            got = {m["from"]: m for m in body["items"]}
            assert len(body["items"]) == 6
            assert got["+447700900401"]["text"] == long7
            assert got["+447700900402"]["text"] == long16
            assert got["+447700900403"]["text"] == emoji and got["+447700900403"]["encoding"] == "ucs2"
            for _pdu, sender, text in PUBLISHED:
                assert got[sender]["text"] == text and got[sender]["complete"]
            assert all(m["complete"] and m["parts_received"] == m["parts_total"] for m in body["items"])
            full = await gw.store.call(gw.store.events.list_events, type_="sim:storage-full")
            assert [e["modem_id"] for e in full] == ["sim1"]
            # The drained SIM takes new SMS again.
            sim.inject_sms("+447700900404", "room again")
            await wait_until(lambda: len(gw.store.inbound.list_inbound()) == 7, what="new SMS after draining")


async def test_missing_part_is_delivered_incomplete_after_the_timeout(tmp_path: Path) -> None:
    text = "A message whose middle part is lost on the way to the phone. " * 6
    p1, p2, p3 = gammu_deliver("+447700900410", text)
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        sim = fake.modems[0].modem
        cfg = inbound_config(tmp_path, [str(m.path) for m in fake.modems], reassembly_timeout_s=0.3)
        async with running_gateway(cfg) as (gw, c):
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            sim.deliver_from_network(p3)  # +CMTI, out of order
            sim.deliver_from_network(p1)
            await wait_until(lambda: gw.store.inbound.pending_inbound_parts() == 2, what="parts waiting")
            # Committed parts leave the SIM at once: they do not wait for the rest.
            await wait_until(lambda: sim.storages["SM"].used == 0, what="parts deleted")
            assert gw.store.inbound.list_inbound() == []
            await wait_until(lambda: gw.store.inbound.list_inbound(), what="incomplete delivery")
            status, body = await c.request("GET", "/api/v1/inbox?complete=false")
            [msg] = body["items"]
            assert not msg["complete"] and msg["missing"] == [2] and msg["parts_received"] == 2
            assert msg["parts_total"] == 3
            decoded = [gammu.DecodePDU(bytes.fromhex(p), SMSC=True)["Text"] for p in (p1, p3)]
            assert msg["text"] == decoded[0] + decoded[1]
            status, detail = await c.request("GET", f"/api/v1/inbox/{msg['id']}")
            assert [p["seq"] for p in detail["parts"]] == [1, 3] and detail["parts"][0]["pdu"] == p1
            status, body = await c.request("GET", "/api/v1/inbox?complete=true")
            assert body["items"] == []


@pytest.mark.parametrize(("pdu", "sender", "text"), PUBLISHED, ids=["dreamfabric", "diafaan", "pettersson"])
async def test_published_pdu_through_the_processor(tmp_path: Path, pdu: str, sender: str, text: str) -> None:
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        cfg = inbound_config(tmp_path, [str(m.path) for m in fake.modems])
        async with running_gateway(cfg) as (gw, c):
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            fake.modems[0].modem.deliver_from_network(pdu)
            await wait_until(lambda: gw.store.inbound.list_inbound(), what="inbound")
            [row] = gw.store.inbound.list_inbound()
            assert (row["sender"], row["text"], row["complete"]) == (sender, text, True)
