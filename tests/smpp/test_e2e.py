"""smpplib as transmitter and receiver against a whole gateway on emulated modems (real ptys)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from gsmgw.config import Config, SmppConfig, SmppRoute
from gsmgw.daemon import Gateway
from gsmgw.emulator import FakeModemPool
from gsmgw.smpp.accounts import hash_password
from gsmgw.smpp.message import parse_receipt
from tests.helpers import make_config
from tests.smpp.esme import Receiver, transmit

PASSWORD = "pw123456"


def smpp_config(tmp_path: Path, ports: list[str], store_url: str | None = None) -> Config:
    cfg = make_config(tmp_path, ports, store_url=store_url)
    return dataclasses.replace(cfg, smpp=SmppConfig(
        listen="127.0.0.1:0", poll_interval_s=0.05, enquire_link_interval_s=0.0,
        route=(SmppRoute(system_id="esme", sim="sim1"),)))


async def test_smpplib_transmitter_and_receiver_end_to_end(tmp_path: Path, store_url: str) -> None:
    async with FakeModemPool(count=2, directory=tmp_path / "ports") as fake:
        cfg = smpp_config(tmp_path, [str(m.path) for m in fake.modems], store_url)
        gw = Gateway(cfg, host="test-host")
        await gw.start()
        rx = None
        try:
            await gw.store.call(gw.store.smpp.create_account, "esme", hash_password(PASSWORD), ["send", "read"])
            port = gw.smpp.port_number
            rx = Receiver("127.0.0.1", port, "esme", PASSWORD)
            await asyncio.to_thread(rx.start)
            long_text = "Long message, " + "0123456789" * 38  # 394 GSM characters: 3 parts
            ids = await asyncio.to_thread(transmit, "127.0.0.1", port, "esme", PASSWORD, [
                ("+447700900123", "Hello from smpplib {ok} €5"),
                ("+447700900124", "Привет из smpplib ✓"),
                ("+447700900125", long_text),
            ])
            assert [len(i) for i in ids] == [1, 1, 3]
            # What was queued is what was meant: one message each, the long one whole.
            rows = {r["to_number"]: r for r in await gw.store.call(gw.store.messages.list_messages, limit=10)}
            assert rows["+447700900123"]["text"] == "Hello from smpplib {ok} €5"
            assert rows["+447700900124"]["text"] == "Привет из smpplib ✓"
            assert rows["+447700900124"]["encoding"] == "ucs2"
            assert rows["+447700900125"]["text"] == long_text and rows["+447700900125"]["parts_total"] == 3
            assert ids[0][0] == rows["+447700900123"]["id"]  # submit_sm_resp carries gsmgw's id

            # An inbound SMS to sim1 goes to the account's receiver (route by SIM).
            fake.modems[0].modem.inject_sms("+447700900999", "Reply from a phone")
            receipts = await asyncio.to_thread(rx.wait_for, 5, kind="receipt")
            mos = await asyncio.to_thread(rx.wait_for, 1, kind="mo")
            assert not rx.errors, rx.errors
            by_id = {r.receipted_message_id: r for r in receipts}
            expected = {i for group in ids for i in group}
            if set(by_id) != expected:  # say why: the messages' states and the unmatched reports
                states = {r["id"]: (r["state"], r["parts_total"]) for r in
                          await gw.store.call(gw.store.messages.list_messages, limit=10)}
                unmatched = [(r["modem_id"], r["tp_mr"], r["recipient"]) for r in await gw.store.call(
                    gw.store.reports.list_status_reports, unmatched_only=True)]
                raise AssertionError(f"receipts missing for {sorted(expected - set(by_id))}; messages (state, "
                                     f"parts): {states}; unmatched status reports: {unmatched}")
            for r in receipts:
                fields = parse_receipt(r.short_message.decode())
                assert fields["id"] == r.receipted_message_id and fields["stat"] == "DELIVRD"
                assert r.message_state == 2 and r.destination_addr == "Shop"
            assert by_id[ids[0][0]].source_addr == "447700900123"
            (mo,) = mos
            assert (mo.source_addr, mo.text) == ("447700900999", "Reply from a phone")
            assert mo.destination_addr == "15550000001"  # sim1's own number
        finally:
            if rx is not None:
                await asyncio.to_thread(rx.stop)
            await gw.stop()


async def test_reload_applies_smpp_settings_but_not_the_socket(tmp_path: Path) -> None:
    cfg = smpp_config(tmp_path, [])
    gw = Gateway(cfg, host="test-host")
    await gw.start()
    try:
        port = gw.smpp.port_number
        new = dataclasses.replace(cfg, smpp=dataclasses.replace(cfg.smpp, listen="127.0.0.1:1", window=3, route=()))
        await gw.reload(new)
        assert gw.smpp.cfg.window == 3 and gw.smpp.cfg.route == ()
        assert gw.smpp.cfg.listen == "127.0.0.1:0" and gw.smpp.port_number == port
    finally:
        await gw.stop()
