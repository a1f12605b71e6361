"""Independent clients against the emulator: gammu and gammu-smsd from Debian, unchanged.

The emulator runs in this test's event loop on real pseudo-terminals; gammu runs as a
subprocess whose gammurc points at the pty symlink (connection ``at115200``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gsmgw.emulator import Behaviour, FakeModemPool
from gsmgw.sms import encode_submit
from tests.emulator.emu_client import PtyClient, lines_of, submit

GAMMU = shutil.which("gammu")
GAMMU_SMSD = shutil.which("gammu-smsd")
GAMMU_SMSD_INJECT = shutil.which("gammu-smsd-inject")

pytestmark = [
    pytest.mark.gammu,
    pytest.mark.slow,
    pytest.mark.timeout(60),
    pytest.mark.skipif(GAMMU is None, reason="gammu binary not installed (Debian package 'gammu')"),
]


def gammurc(path: Path, device: Path, extra: str = "") -> Path:
    path.write_text(f"[gammu]\ndevice = {device}\nconnection = at115200\n{extra}")
    return path


async def run(*argv: str, timeout_s: float = 30.0, label: str = "") -> tuple[int, str]:
    """Run a client; one that hangs is killed and reported with what it printed so far
    (and ``label``: which modem it talked to)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(timeout_s):
            while data := await proc.stdout.read(4096):
                chunks.append(data)
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        so_far = b"".join(chunks).decode("utf-8", "replace")
        raise AssertionError(f"{label or argv[0]}: {' '.join(argv)} did not finish within {timeout_s:g} s; "
                             f"its output so far:\n{so_far}") from None
    assert proc.returncode is not None
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


async def poll(predicate: Callable[[], bool], interval_s: float = 0.1) -> None:
    """Wait (under the caller's timeout) until predicate() is true: gammu-smsd writes files."""
    for _ in iter(int, 1):
        if predicate():
            return
        await asyncio.sleep(interval_s)


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[FakeModemPool]:
    async with FakeModemPool(
        count=3, directory=tmp_path / "ports", report_delay_s=0.01,
        behaviours=[Behaviour(send_latency_s=0.01) for _ in range(3)],
        transcript_dir=tmp_path / "transcripts",
    ) as p:
        yield p


async def test_gammu_identify_every_personality(tmp_path: Path) -> None:
    """gammu --identify against one modem of each family, concurrently (gammu is slow to init)."""
    from gsmgw.emulator import PERSONALITIES

    names = list(PERSONALITIES)
    async with FakeModemPool(count=len(names), directory=tmp_path / "ports", personalities=names) as pool:
        modems = list(pool.modems)
        results = await asyncio.gather(*(
            run(GAMMU, "-c", str(gammurc(tmp_path / f"rc{i}", pm.path)), "--identify",  # type: ignore[arg-type]
                label=f"personality {pm.modem.personality.key}")
            for i, pm in enumerate(pool.modems)
        ))
    for pm, (rc, out) in zip(modems, results, strict=True):
        m, p = pm.modem, pm.modem.personality
        assert rc == 0, out
        # gammu names some vendors its own way ("WAVECOM MODEM" -> "Wavecom").
        assert re.search(rf"Manufacturer\s+: {re.escape(p.manufacturer.split()[0])}", out, re.I), out
        assert p.model in out, out
        assert re.search(rf"IMEI\s+:\s+{m.imei}", out), out  # Wavecom pads identification strings
        assert re.search(rf"SIM IMSI\s+: {m.imsi}", out), out


async def test_gammu_sendsms_then_read_on_the_recipient(pool: FakeModemPool, tmp_path: Path) -> None:
    a, b, c = pool.modems
    long_text = "".join(f"word{i} " for i in range(60)).strip()  # > 160 characters: 3 parts
    (rc1, out1), (rc2, out2) = await asyncio.gather(
        run(GAMMU, "-c", str(gammurc(tmp_path / "rca", a.path)),  # type: ignore[arg-type]
            "sendsms", "TEXT", b.modem.number, "-text", "Hello from gammu, 50% off!"),
        run(GAMMU, "-c", str(gammurc(tmp_path / "rcc", c.path)),  # type: ignore[arg-type]
            "sendsms", "TEXT", b.modem.number, "-len", str(len(long_text)), "-text", long_text),
    )
    assert rc1 == 0 and "message reference=0" in out1, out1
    assert rc2 == 0 and "message reference=2" in out2, out2  # one TP-MR per part, per SIM
    assert [s.destination for s in a.modem.sent] == [b.modem.number]
    assert [s.tp_mr for s in c.modem.sent] == [0, 1, 2]
    await pool.network.drain()
    b.modem.inject_sms("+447700900123", "Grüße – 你好")
    # geteachsms links the parts by their concatenation UDH, which the network preserved.
    rc, out = await run(GAMMU, "-c", str(gammurc(tmp_path / "rcb", b.path)), "geteachsms")  # type: ignore[arg-type]
    assert rc == 0, out
    assert "Hello from gammu, 50% off!" in out, out
    assert long_text in out, out
    assert "Grüße – 你好" in out, out
    assert f'"{a.modem.number}"' in out and f'"{c.modem.number}"' in out and '"+447700900123"' in out
    assert re.search(r"5 SMS parts in 3 SMS sequences", out), out


@pytest.mark.skipif(GAMMU_SMSD is None or GAMMU_SMSD_INJECT is None,
                    reason="gammu-smsd not installed (Debian package 'gammu-smsd')")
async def test_gammu_smsd_sends_a_batch_and_receives(pool: FakeModemPool, tmp_path: Path) -> None:
    a, b, c = pool.modems
    spool = tmp_path / "spool"
    dirs = {name: spool / name for name in ("inbox", "outbox", "sent", "error")}
    for d in dirs.values():
        d.mkdir(parents=True)
    rc_file = gammurc(
        tmp_path / "smsdrc", a.path,
        "[smsd]\nservice = files\n"
        f"logfile = {tmp_path / 'smsd.log'}\ndebuglevel = 1\n"
        f"inboxpath = {dirs['inbox']}/\noutboxpath = {dirs['outbox']}/\n"
        f"sentsmspath = {dirs['sent']}/\nerrorsmspath = {dirs['error']}/\n"
        "checksecurity = 0\ncheckbattery = 0\ncheckSignal = 0\nCheckNetwork = 0\n"
        "receivefrequency = 1\nstatusfrequency = 0\ncommtimeout = 1\nsendtimeout = 10\n"
        "loopsleep = 1\n",
    )
    batch = [(b.modem.number if i % 2 else c.modem.number, f"queued message {i}") for i in range(5)]
    for number, text in batch:
        rc, out = await run(GAMMU_SMSD_INJECT, "-c", str(rc_file), "TEXT", number, "-text", text)  # type: ignore[arg-type]
        assert rc == 0, out
    assert len(list(dirs["outbox"].iterdir())) == 5

    proc = await asyncio.create_subprocess_exec(
        GAMMU_SMSD, "-c", str(rc_file),  # type: ignore[arg-type]
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(40):
            await poll(lambda: len(list(dirs["sent"].iterdir())) >= 5)
            # Another emulated SIM texts the smsd modem through the simulated network.
            sender = PtyClient(b.path)
            try:
                await asyncio.sleep(0.02)
                await sender.cmd("ATE0")
                part = encode_submit(a.modem.number, "reply from modem B").parts[0]
                assert lines_of(await submit(sender, part.pdu, part.tpdu_length))[-1] == "OK"
            finally:
                sender.close()
            await poll(lambda: bool(list(dirs["inbox"].iterdir())))
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            await proc.wait()
    assert sorted((s.destination, s.submit.text) for s in a.modem.sent) == sorted(batch)
    assert list(dirs["error"].iterdir()) == []
    inbox = list(dirs["inbox"].iterdir())
    assert len(inbox) == 1 and b.modem.number in inbox[0].name
    assert "reply from modem B" in inbox[0].read_text(encoding="utf-8", errors="replace")
    # gammu-smsd deletes what it has stored (AT+CMGD).
    assert a.modem.storages["SM"].used == 0
