"""``gsmgw pdu encode|decode``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import gammu
import pytest

from gsmgw.commands import pdu as pdu_cmd

DELIVER = "07911326040000F0040B911346610089F60000208062917314480CC8F71D14969741F977FD07"


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gsmgw")
    sub = parser.add_subparsers(dest="command")
    pdu_cmd.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_encode(capsys: pytest.CaptureFixture[str]) -> None:
    rc = _run(["pdu", "encode", "--to", "+447700900123", "--text", "Hello", "--smsc", "+447785016005",
               "--status-report"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["encoding"] == "gsm7"
    (part,) = out["parts"]
    assert part["tpdu_length"] == 18
    g = gammu.DecodePDU(bytes.fromhex(part["pdu"]), True)
    assert (g["Number"], g["Text"], g["SMSC"]["Number"]) == ("+447700900123", "Hello", "+447785016005")


def test_encode_flash_multipart(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["pdu", "encode", "--to", "+447700900123", "--text", "Ж" * 100, "--flash"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["encoding"] == "ucs2" and len(out["parts"]) == 2
    assert all(p["pdu"].startswith("00") for p in out["parts"])


def test_decode_deliver(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["pdu", "decode", DELIVER]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["type"] == "deliver" and out["address"] == "+31641600986"
    assert out["text"] == "How are you?" and out["encoding"] == "gsm7"
    assert out["concat"] is None and out["tp_mr"] is None and out["status"] is None and out["class"] is None
    assert out["scts"] == "2002-08-26T19:37:41-01:00"


def test_decode_submit_and_status_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["pdu", "encode", "--to", "+447700900123", "--text", "x" * 200]) == 0
    first = json.loads(capsys.readouterr().out)["parts"][0]["pdu"]
    assert _run(["pdu", "decode", first]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["type"] == "submit" and out["tp_mr"] == 0
    assert set(out["concat"]) >= {"reference", "total", "sequence"} and out["concat"]["total"] == 2
    assert _run(["pdu", "decode", "0006D60B911326880736F4111011719551401110117195714000", "--length", "25"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["type"], out["tp_mr"], out["status"], out["address"]) == ("status-report", 0xD6, 0, "+31628870634")
    assert out["category"] == "delivered" and out["final"] is True


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pdu", "decode", "0004"], "truncated"),
        (["pdu", "decode", "XYZ"], "odd number"),
        (["pdu", "encode", "--to", "+44 7700 900123", "--text", "x"], "invalid phone number"),
    ],
)
def test_bad_input_exits_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err


@pytest.mark.skipif(not (Path(__file__).parents[2] / "gsmgw" / "__main__.py").exists(),
                    reason="gsmgw/__main__.py not there yet")
def test_python_m_gsmgw_subprocess() -> None:
    ok = subprocess.run([sys.executable, "-m", "gsmgw", "pdu", "decode", DELIVER],
                        capture_output=True, text=True, timeout=30, check=False)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["text"] == "How are you?"
    bad = subprocess.run([sys.executable, "-m", "gsmgw", "pdu", "decode", "00"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert bad.returncode == 2 and "no TPDU" in bad.stderr
