"""A gateway killed between AT+CMGS and its PDU leaves the module in text entry, where
it takes every byte as PDU until ESC. The next gateway must get the modem back (found
by the SMPP kill -9 test: the SIM stayed unreachable, its receipts never came)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gsmgw.daemon import Gateway
from gsmgw.emulator import FakeModemPool
from tests.emulator.emu_client import PtyClient
from tests.helpers import make_config


async def test_modem_left_in_sms_text_entry_is_recovered(tmp_path: Path) -> None:
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        previous = PtyClient(fake.modems[0].path)
        try:
            previous.write(b"AT+CMGF=0\r")
            await previous.read_until(b"OK\r\n")
            previous.write(b"AT+CMGS=23\r")
            await previous.read_until(b"> ")
            previous.write(b"0011000B91")  # and then the previous owner died
        finally:
            previous.close()
        gw = Gateway(make_config(tmp_path, [str(fake.modems[0].path)]), host="test-host")
        await gw.start()
        try:
            deadline = time.monotonic() + 20
            while not any(m["state"] == "ready" for m in gw.pool.snapshot()):
                assert time.monotonic() < deadline, gw.pool.snapshot()
                await asyncio.sleep(0.05)
        finally:
            await gw.stop()
        assert fake.modems[0].modem.sent == []  # the half-written PDU was cancelled, not sent
