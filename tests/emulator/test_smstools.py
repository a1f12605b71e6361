"""smstools (smsd) from Debian against the emulator: a third independent client."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from gsmgw.emulator import Behaviour, FakeModemPool
from gsmgw.sms import encode_submit
from tests.emulator.emu_client import PtyClient, submit

SMSD = shutil.which("smsd") or ("/usr/sbin/smsd" if Path("/usr/sbin/smsd").exists() else None)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(60),
    pytest.mark.skipif(SMSD is None, reason="smstools not installed (Debian package 'smstools')"),
]


async def test_smsd_sends_and_receives(tmp_path: Path) -> None:
    spool = {name: tmp_path / name for name in ("outgoing", "checked", "incoming", "failed", "sent")}
    for d in spool.values():
        d.mkdir()
    async with FakeModemPool(count=2, directory=tmp_path / "ports", report_delay_s=0.01,
                             behaviours=Behaviour(send_latency_s=0.01)) as pool:
        a, b = pool.modems
        conf = tmp_path / "smsd.conf"
        conf.write_text(
            "devices = GSM1\n"
            + "".join(f"{name} = {path}\n" for name, path in spool.items())
            + f"logfile = {tmp_path / 'smsd.log'}\nloglevel = 7\n"
            f"infofile = {tmp_path / 'smsd.running'}\npidfile = {tmp_path / 'smsd.pid'}\n"
            "delaytime = 1\ndelaytime_mainprocess = 1\nreceive_before_send = no\n\n"
            f"[GSM1]\ndevice = {a.path}\nincoming = yes\nbaudrate = 115200\n"
        )
        (spool["outgoing"] / "msg1").write_text(f"To: {b.modem.number.lstrip('+')}\n\nhello from smstools\n")
        proc = await asyncio.create_subprocess_exec(
            SMSD, "-c", str(conf), "-t",  # type: ignore[arg-type]
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            stdin=asyncio.subprocess.DEVNULL,
        )
        try:
            async with asyncio.timeout(40):
                await poll(lambda: (spool["sent"] / "msg1").exists())
                # The second emulated SIM texts the smsd one through the simulated network.
                sender = PtyClient(b.path)
                try:
                    await asyncio.sleep(0.02)
                    part = encode_submit(a.modem.number, "reply to smstools").parts[0]
                    assert "+CMGS: 0" in await submit(sender, part.pdu, part.tpdu_length)
                finally:
                    sender.close()
                await poll(lambda: bool(list(spool["incoming"].iterdir())))
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(10):
                await proc.wait()
        assert [s.submit.text for s in a.modem.sent] == ["hello from smstools"]
        received = next(spool["incoming"].iterdir()).read_text(errors="replace")
        assert f"From: {b.modem.number.lstrip('+')}" in received
        assert received.rstrip().endswith("reply to smstools")
        assert list(spool["failed"].iterdir()) == []


async def poll(predicate: Callable[[], bool], interval_s: float = 0.1) -> None:
    for _ in iter(int, 1):
        if predicate():
            return
        await asyncio.sleep(interval_s)
