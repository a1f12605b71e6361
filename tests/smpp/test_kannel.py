"""Kannel's SMPP client (bearerbox + smsbox, Debian `kannel`) sending through gsmgw."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest

from gsmgw.config import SmppConfig, SmppRoute
from gsmgw.daemon import Gateway
from gsmgw.emulator import FakeModemPool
from gsmgw.smpp.accounts import hash_password
from tests.helpers import make_config
from tests.smpp import kannel

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not kannel.installed(), reason="Kannel is not installed (Debian: apt-get install kannel)"),
    pytest.mark.timeout(120),
]


async def _wait(predicate: object, timeout_s: float, what: str, k: kannel.Kannel) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen in {timeout_s} s\n{k.logs()}")
        await asyncio.sleep(0.1)


async def test_kannel_sends_through_gsmgw_and_gets_receipts(tmp_path: Path) -> None:
    async with FakeModemPool(count=2, directory=tmp_path / "ports") as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
        cfg = dataclasses.replace(cfg, smpp=SmppConfig(
            listen="127.0.0.1:0", poll_interval_s=0.05, route=(SmppRoute(system_id="kannel"),)))
        gw = Gateway(cfg, host="test-host")
        await gw.start()
        try:
            await gw.store.call(gw.store.smpp.create_account, "kannel", hash_password("kpw"), ["send", "read"])
            kdir = tmp_path / "kannel"
            kdir.mkdir()
            async with kannel.running_kannel(kdir, smpp_port=gw.smpp.port_number, system_id="kannel",
                                             password="kpw") as k:
                long_text = "Kannel long " + "abcdefghij" * 35
                for tag, to, text, coding in (("gsm", "+447700900123", "Hello via Kannel", None),
                                              ("ucs2", "+447700900124", "Привет via Kannel", 2),
                                              ("long", "+447700900125", long_text, None)):
                    status, body = await asyncio.to_thread(k.sendsms, to, text, coding=coding, tag=tag)
                    assert status == 202, body

                async def queued() -> dict[str, dict[str, object]]:
                    rows = await gw.store.call(gw.store.messages.list_messages, limit=10)
                    return {str(r["to_number"]): r for r in rows}

                deadline = time.monotonic() + 20
                while len(rows := await queued()) < 3 or {r["state"] for r in rows.values()} != {"delivered"}:
                    assert time.monotonic() < deadline, (rows, k.logs())
                    await asyncio.sleep(0.1)
                assert rows["+447700900123"]["text"] == "Hello via Kannel"
                assert rows["+447700900124"]["text"] == "Привет via Kannel"
                assert rows["+447700900125"]["text"] == long_text  # Kannel's 3 parts, one message again

                # Kannel's delivery reports: type 1 = delivered to the phone, one per message.
                def delivered() -> set[str]:
                    return {d["tag"] for d in k.callbacks.dlrs if d.get("type") == "1"}

                await _wait(lambda: delivered() >= {"gsm", "ucs2", "long"}, 20, "receipts", k)
                final = [d for d in k.callbacks.dlrs if d.get("type") == "1"]
                assert all("stat:DELIVRD" in d["reply"] for d in final), final

                # An inbound SMS reaches Kannel's sms-service as an MO message.
                fake.modems[1].modem.inject_sms("+447700900999", "Hi Kannel")
                await _wait(lambda: k.callbacks.mos, 20, "the inbound SMS", k)
                mo = k.callbacks.mos[0]
                assert mo["text"] == "Hi Kannel" and mo["from"].endswith("447700900999"), mo
        finally:
            await gw.stop()
