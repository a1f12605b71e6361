"""FakeModemPool, the transcript log (and replay), and the fake-modem command line."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from gsmgw.emulator import (
    Behaviour,
    EmulatedModem,
    FakeModemPool,
    Network,
    PtyModem,
    client_input,
    load_transcript,
    modem_output,
)
from tests.emulator.emu_client import PtyClient, lines_of

pytestmark = pytest.mark.timeout(20)


async def test_pool_symlinks_numbers_and_identities(tmp_path: Path) -> None:
    async with FakeModemPool(count=3, directory=tmp_path, report_delay_s=0.01,
                             personalities=["simcom_sim800", "quectel_ec25", "huawei_e3372"]) as pool:
        assert [pm.path for pm in pool.modems] == [tmp_path / f"ttyGSM{i}" for i in range(3)]
        assert all(pm.path.is_symlink() and os.readlink(pm.path).startswith("/dev/pts/") for pm in pool.modems)
        assert [pm.modem.number for pm in pool.modems] == ["+15550000001", "+15550000002", "+15550000003"]
        for attr in ("imei", "iccid", "imsi"):
            assert len({getattr(pm.modem, attr) for pm in pool.modems}) == 3
        assert pool.by_number("+15550000002").modem.personality.key == "quectel_ec25"
        assert set(pool.network.subscribers) == {"+15550000001", "+15550000002", "+15550000003"}
        links = [pm.path for pm in pool.modems]
    assert not any(p.exists() or p.is_symlink() for p in links)


def test_pool_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="count"):
        FakeModemPool(count=0)
    with pytest.raises(ValueError, match="need 2 entries"):
        FakeModemPool(count=2, behaviours=[Behaviour()])
    with pytest.raises(ValueError, match="unknown personality"):
        FakeModemPool(count=1, personalities="nokia_3310")


async def test_transcript_records_both_directions_and_replays(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    net = Network()
    modem = EmulatedModem(network=net, number="+15550000001", transcript_path=path, seed=1)
    async with PtyModem(modem) as pm:
        client = PtyClient(pm.path)
        await asyncio.sleep(0.02)
        for line in ("ATE0", "AT+CGMI;+CSQ", "AT+CMEE=2;+CPMS?", "AT+NOPE"):
            await client.cmd(line)
        client.close()
    await modem.aclose()
    await net.aclose()
    entries = load_transcript(path)
    assert {e.direction for e in entries} == {"in", "out", "event"}
    assert [e.data for e in entries if e.direction == "event"] == [b"power on", b"power off"]
    assert entries == sorted(entries, key=lambda e: e.t_s)
    assert b"".join(d for _, d in client_input(entries)) == (
        b"ATE0\rAT+CGMI;+CSQ\rAT+CMEE=2;+CPMS?\rAT+NOPE\r")
    recorded = modem_output(entries)
    assert b"SIMCOM_Ltd" in recorded and recorded.endswith(b"\r\nERROR\r\n")

    # Replay the client's bytes into a fresh, identical modem: the answers are the same.
    net2 = Network()
    replay = EmulatedModem(network=net2, number="+15550000001", seed=1)
    out = bytearray()
    replay.attach(out.extend)
    await asyncio.sleep(0.02)
    for _, data in client_input(entries):
        replay.feed(data)
        await asyncio.sleep(0.01)
    await replay.aclose()
    await net2.aclose()
    assert bytes(out) == recorded


def test_show_transcript(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gsmgw.emulator import Transcript
    from gsmgw.emulator.__main__ import main

    path = tmp_path / "t.jsonl"
    t = Transcript(path)
    for direction, data in (("event", b"power on"), ("in", b"AT"), ("in", b"\r"),
                            ("out", b"AT\r"), ("out", b"\r\nOK\r\n")):
        t.record(direction, data)  # type: ignore[arg-type]
    t.close()
    assert main(["--show-transcript", str(path)]) == 0
    lines = [ln.split(None, 1)[1] for ln in capsys.readouterr().out.splitlines()]
    assert lines == ["* power on", "> AT\\r", "< AT\\r\\r\\nOK\\r\\n"]
    assert main(["--show-transcript", str(tmp_path / "missing.jsonl")]) == 2


def test_load_transcript_reports_bad_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": 0, "wall": "x", "dir": "in", "hex": "41"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        load_transcript(bad)


async def test_cli_runs_until_sigint_and_prints_ports(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gsmgw.emulator", "--count", "2", "--dir", str(tmp_path / "ports"),
        "--latency-s", "0", "--personality", "quectel_ec25,huawei_e3372", "--pin", "1234",
        "--transcript-dir", str(tmp_path / "tr"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(10):
            header = await proc.stdout.readline()
            lines = [(await proc.stdout.readline()).decode() for _ in range(3)]
        assert b"2 emulated modem(s)" in header
        assert str(tmp_path / "ports" / "ttyGSM0") in lines[0] and "+15550000001" in lines[0]
        assert "huawei_e3372" in lines[1] and "+15550000002" in lines[1]
        client = PtyClient(tmp_path / "ports" / "ttyGSM0")
        await asyncio.sleep(0.05)
        client.buf.clear()
        assert lines_of(await client.cmd("AT+CPIN?"))[-2:] == ["+CPIN: SIM PIN", "OK"]
        client.close()
    finally:
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            _, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert not (tmp_path / "ports" / "ttyGSM0").exists()
    assert (tmp_path / "tr" / "ttyGSM0.jsonl").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--quirk", "tired-modem"], "--quirk 'tired-modem' unknown"),
        (["--sms-ready-delay-s", "-1"], "--sms-ready-delay-s must be >= 0"),
        (["--transient-read-error", "9999"], "--transient-read-error must be"),
        (["--count", "0"], "--count"),
        (["--personality", "nokia"], "--personality"),
        (["--pin", "12"], "--pin"),
        (["--fail-rule", "(unclosed"], "bad regex"),
        (["--fail-rule", r"\+44.*=0x1FF"], "0..255"),
        (["--latency-s", "-1"], "--latency-s"),
    ],
)
def test_cli_rejects_bad_input(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from gsmgw.emulator.__main__ import main

    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_registers_with_the_gsmgw_parser() -> None:
    import argparse

    from gsmgw.commands import fake_modem

    parser = argparse.ArgumentParser()
    fake_modem.register(parser.add_subparsers())
    args = parser.parse_args(["fake-modem", "--count", "4", "--dir", "/tmp/x", "--fail-rule", r"\+44.*",
                              "--hang-on-submit", "--cms-error", "500", "--trickle", "--no-echo"])
    assert args.func is fake_modem.run
    b = fake_modem.behaviour_from_args(args)
    assert (b.hang_on_submit, b.cms_error_on_submit, b.trickle_s, b.echo) == (True, 500, 0.002, False)


def test_cli_quirk_and_timing_options() -> None:
    import argparse

    from gsmgw.commands import fake_modem

    parser = argparse.ArgumentParser()
    fake_modem.register(parser.add_subparsers())
    args = parser.parse_args(["fake-modem", "--count", "2", "--personality", "wavecom_fastrack,huawei_e1550",
                              "--quirk", "crcrlf,lower-hex", "--quirk", "command-not-support",
                              "--sms-ready-delay-s", "2.5", "--urc-storm", "4", "--transient-read-error", "321"])
    assert fake_modem.validate(args) is None
    b = fake_modem.behaviour_from_args(args)
    assert (b.sms_ready_delay_s, b.urc_storm, b.transient_read_error) == (2.5, 4, 321)
    first, second = fake_modem.personalities_from_args(args)
    assert first.key == "wavecom_fastrack+crcrlf+lower-hex+command-not-support"
    assert first.info_without_final == ("+CPIN?",) and first.line_ending == "\r\r\n"
    assert second.unknown_command_reply == "COMMAND NOT SUPPORT" and second.lower_case_hex


async def test_one_behaviour_for_the_pool_is_copied_per_modem(tmp_path: Path) -> None:
    shared = Behaviour(send_latency_s=0.01)
    async with FakeModemPool(count=3, directory=tmp_path, behaviours=shared) as pool:
        behaviours = [pm.modem.behaviour for pm in pool.modems]
        assert len({id(b) for b in behaviours}) == 3
        assert all(b.send_latency_s == 0.01 for b in behaviours)
        pool.modems[0].modem.behaviour.hang_on_submit = True
        assert not pool.modems[1].modem.behaviour.hang_on_submit
    mine = Behaviour()
    async with FakeModemPool(count=2, directory=tmp_path, behaviours=[mine, Behaviour()]) as pool:
        assert pool.modems[0].modem.behaviour is mine  # distinct objects are used as given
