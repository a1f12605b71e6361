"""``gsmgw probe --record`` writes a transcript; the replay plays it against the driver.

This is how a user's module that gsmgw has never met becomes a regression test: the
recording is all it takes (hw-notes.md, "Contributing a transcript").
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest

from gsmgw.config import ModemConfig
from gsmgw.domain import ModemState
from gsmgw.emulator import PERSONALITIES, EmulatedModem, Network, PtyModem, load_transcript
from gsmgw.emulator.replay import PDU_KEY, ReplayModem, ReplayScript, redact_command
from gsmgw.emulator.transcript import TranscriptEntry
from gsmgw.modem.probe import probe
from tests.emulator.emu_client import PtyClient, lines_of
from tests.modem.test_probe import run_probe

pytestmark = pytest.mark.timeout(30)

PIN = "7319"


def entry(t_s: float, direction: str, data: bytes) -> TranscriptEntry:
    return TranscriptEntry(t_s, "", direction, data)  # type: ignore[arg-type]


def test_script_answers_in_turn_repeats_the_last_and_masks_the_pin() -> None:
    script = ReplayScript.from_entries([
        entry(0.0, "out", b"\r\nRDY\r\n"),
        entry(0.1, "in", b"AT+CSQ\r"), entry(0.15, "out", b"\r\n+CSQ: 10,99\r\n\r\nOK\r\n"),
        entry(0.2, "in", b"AT+CSQ\r"), entry(0.2, "out", b"\r\n+CSQ: 12,99\r\n"), entry(0.3, "out", b"\r\nOK\r\n"),
        entry(0.4, "in", b'AT+CPIN="****"\r'), entry(0.5, "out", b"\r\nOK\r\n"),
        entry(0.6, "in", b"AT+CMGS=18\r"), entry(0.6, "out", b"\r\n> "),
        entry(0.7, "in", b"0011000B915155000000F20000AA05E8329BFD06\x1a"), entry(2.7, "out", b"\r\n+CMGS: 7\r\n\r\nOK\r\n"),
        entry(3.0, "event", b"power off"),
    ])
    assert script.preamble == b"\r\nRDY\r\n"
    assert [a for _, a in script.answers["AT+CSQ"]] == [b"\r\n+CSQ: 10,99\r\n\r\nOK\r\n", b"\r\n+CSQ: 12,99\r\n\r\nOK\r\n"]
    assert script.answers[PDU_KEY] == [(pytest.approx(2.0), b"\r\n+CMGS: 7\r\n\r\nOK\r\n")]
    assert redact_command('AT+CPIN="1234"') == 'AT+CPIN="****"' in script.answers


async def test_replay_modem_over_a_pty(tmp_path: Path) -> None:
    script = ReplayScript.from_entries([
        entry(0.0, "in", b"AT+CSQ\r"), entry(0.0, "out", b"\r\n+CSQ: 10,99\r\n\r\nOK\r\n"),
        entry(0.1, "in", b"AT+CSQ\r"), entry(0.1, "out", b"\r\n+CSQ: 12,99\r\n\r\nOK\r\n"),
        entry(0.2, "in", b'AT+CPIN="****"\r'), entry(0.2, "out", b"\r\nOK\r\n"),
    ])
    modem = ReplayModem(script)
    async with PtyModem(modem, tmp_path / "ttyGSM0") as pm:
        client = PtyClient(pm.path)
        try:
            assert lines_of(await client.cmd("AT+CSQ")) == ["+CSQ: 10,99", "OK"]
            assert lines_of(await client.cmd("AT+CSQ")) == ["+CSQ: 12,99", "OK"]
            assert lines_of(await client.cmd("AT+CSQ")) == ["+CSQ: 12,99", "OK"]  # the last one repeats
            assert lines_of(await client.cmd('AT+CPIN="1111"')) == ["OK"]  # any PIN: it was masked
            assert lines_of(await client.cmd("AT+CGMI")) == ["ERROR"]  # never recorded
        finally:
            client.close()
    assert modem.unknown == ["AT+CGMI"]


async def test_probe_record_then_replay_against_the_driver(tmp_path: Path) -> None:
    """Record a probe of a Wavecom-style module (AT+CPIN? without OK, SIM PIN), then bring
    the driver up against the recording alone."""
    network = Network(report_delay_s=0.01)
    em = EmulatedModem(network=network, number="+15550000001", personality=PERSONALITIES["wavecom_fastrack"],
                       pin=PIN)
    record = tmp_path / "wavecom.jsonl"
    try:
        rc, out = await run_probe(em, tmp_path, pin=PIN, record=str(record), json=True)
    finally:
        await em.aclose()
        await network.aclose()
    assert rc == 0, out
    assert json.loads(out)["identity"]["imei"] == em.imei
    entries = load_transcript(record)
    sent = b"".join(e.data for e in entries if e.direction == "in")
    assert b'AT+CPIN="****"' in sent and PIN.encode() not in b"".join(e.data for e in entries)
    events = [e.data.decode() for e in entries if e.direction == "event"]
    assert events[0].startswith("gsmgw ") and events[-1].startswith("probe report {")

    replay = ReplayModem.from_file(record)
    async with PtyModem(replay, tmp_path / "ttyREPLAY") as pm:
        settings = ModemConfig(id="replay", port=str(pm.path), pin=PIN, command_timeout_s=0.5,
                               prompt_timeout_s=0.5, registration_timeout_s=2.0, sim_ready_timeout_s=2.0)
        report = await probe(settings, timeout_s=10.0)
    assert report.state is ModemState.READY, (report.reason, replay.unknown)
    assert (report.identity.imei, report.identity.iccid) == (em.imei, em.iccid)
    assert report.quirks == "wavecom"
    assert "AT+CPIN?" in replay.asked


async def test_fake_modem_replay_command_line(tmp_path: Path) -> None:
    record = tmp_path / "tiny.jsonl"
    record.write_text(
        json.dumps({"t": 0.0, "wall": "", "dir": "in", "hex": b"AT+CGMM\r".hex(), "text": ""}) + "\n"
        + json.dumps({"t": 0.01, "wall": "", "dir": "out", "hex": b"\r\n MULTIBAND  900E  1800 \r\n\r\nOK\r\n".hex(),
                      "text": ""}) + "\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gsmgw.emulator", "--replay", str(record), "--dir", str(tmp_path / "ports"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(10):
            header = await proc.stdout.readline()
            await proc.stdout.readline()
        assert b"replaying" in header and b"1 commands" in header
        client = PtyClient(tmp_path / "ports" / "ttyGSM0")
        try:
            assert lines_of(await client.cmd("AT+CGMM")) == [" MULTIBAND  900E  1800 ", "OK"]
            assert lines_of(await client.cmd("AT+CSQ")) == ["ERROR"]
        finally:
            client.close()
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            out, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert b"did not answer (got ERROR): AT+CSQ" in out


def test_fake_modem_replay_rejects_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gsmgw.emulator.__main__ import main

    assert main(["--replay", str(tmp_path / "missing.jsonl")]) == 2
    assert "--replay" in capsys.readouterr().err
    (tmp_path / "empty.jsonl").write_text("")
    assert main(["--replay", str(tmp_path / "empty.jsonl")]) == 2
    assert "no command was recorded" in capsys.readouterr().err
