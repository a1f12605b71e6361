"""The framer on real wire bytes (sources in each case's comment)."""

from __future__ import annotations

import pytest

from gsmgw.at.lines import PROMPT, FinalKind, Line, LineFramer, parse_final


def frames(chunks: list[bytes], *, expect_prompt: bool = False) -> list[object]:
    f = LineFramer()
    f.expect_prompt = expect_prompt
    out: list[object] = []
    for c in chunks:
        out.extend(f.feed(c))
    return out


def lines(*texts: str) -> list[Line]:
    return [Line(t) for t in texts]


# (name, raw bytes, expected frames)
CASES = [
    # gammu issue #126, Huawei E1752 with echo on: the echo ends with a bare CR.
    (
        "cmgl_huawei_e1752_echo_on",
        b"AT+CMGL=4\r\r\n+CMGL: 0,0,,23\r\n07913366003051F5040B913366304381F900005180719120348004D4F29C0E\r\n\r\nOK\r\n",
        lines(
            "AT+CMGL=4",
            "+CMGL: 0,0,,23",
            "07913366003051F5040B913366304381F900005180719120348004D4F29C0E",
            "OK",
        ),
    ),
    # TinyGSM issue #654, SIM800C with echo on.
    ("creg_sim800c_echo_on", b"AT+CREG?\r\r\n+CREG: 0,5\r\n\r\nOK\r\n", lines("AT+CREG?", "+CREG: 0,5", "OK")),
    # TinyGSM issue #318, SIM808 R14.18 rebooting after AT+CFUN=1,1: ERROR, then boot URCs.
    (
        "boot_sim808",
        b"AT+CPIN?\r\r\nERROR\r\n\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: SIM PIN\r\n",
        lines("AT+CPIN?", "ERROR", "RDY", "+CFUN: 1", "+CPIN: SIM PIN"),
    ),
    # gammu issue #326: a late "+CME ERROR: 258" after the USSD request's OK.
    ("late_cme_gammu_326", b"\r\nOK\r\n+CME ERROR: 258\r\n", lines("OK", "+CME ERROR: 258")),
]


@pytest.mark.parametrize(("name", "raw", "expected"), CASES, ids=[c[0] for c in CASES])
def test_framer_whole(name: str, raw: bytes, expected: list[object]) -> None:
    assert frames([raw]) == expected


@pytest.mark.parametrize(("name", "raw", "expected"), CASES, ids=[c[0] for c in CASES])
def test_framer_trickled_one_byte_at_a_time(name: str, raw: bytes, expected: list[object]) -> None:
    # mbed-os issue #11192 shows an EC2x delivering responses 1-2 bytes per read.
    assert frames([bytes([b]) for b in raw]) == expected


def test_prompt_sim800_cmgs() -> None:
    # SIM800 manual §4.2.5 AT+CMGS: "<CR><LF>> " after the command line, no terminator.
    assert frames([b"AT+CMGS=18\r\r\n> "], expect_prompt=True) == [Line("AT+CMGS=18"), PROMPT]


def test_prompt_trickled() -> None:
    assert frames([b"\r\n", b">", b" "], expect_prompt=True) == [PROMPT]


def test_prompt_not_recognised_when_not_expected() -> None:
    f = LineFramer()
    assert f.feed(b"\r\n> ") == []
    assert f.pending() == b"> "


def test_urc_before_prompt() -> None:
    assert frames([b'\r\n+CMTI: "SM",3\r\n\r\n> '], expect_prompt=True) == [Line('+CMTI: "SM",3'), PROMPT]


def test_garbage_does_not_kill_the_framer() -> None:
    raw = b"\x00\x00\xff\xfe\x80garbage\x1b\r\n\x00OK\r\n"
    got = frames([raw])
    assert got[-1] == Line("OK")
    assert len(got) == 2
    assert "garbage" in got[0].text  # type: ignore[attr-defined]


def test_ctrl_z_echo_is_dropped() -> None:
    assert frames([b"0001000B915155000000F2000005E8329BFD06\x1a\r\n"]) == lines(
        "0001000B915155000000F2000005E8329BFD06"
    )


def test_overlong_line_is_flushed() -> None:
    f = LineFramer()
    out = f.feed(b"A" * 70000)
    assert len(out) == 1 and len(f.pending()) < 70000


@pytest.mark.parametrize(
    ("line", "kind", "code"),
    [
        ("OK", FinalKind.OK, None),
        ("ERROR", FinalKind.ERROR, None),
        ("+CME ERROR: 10", FinalKind.CME, 10),  # SIM not inserted (TS 27.007 §9.2.1)
        ("+CMS ERROR: 500", FinalKind.CMS, 500),
        ("+CME ERROR: SIM not inserted", FinalKind.CME, None),  # AT+CMEE=2 verbose
        ("COMMAND NOT SUPPORT", FinalKind.OTHER, None),  # gammu issue #385, Huawei
        ("NO CARRIER", FinalKind.OTHER, None),
    ],
)
def test_parse_final(line: str, kind: str, code: int | None) -> None:
    final = parse_final(line)
    assert final is not None and final.kind == kind and final.code == code


@pytest.mark.parametrize("line", ["+CSQ: 20,99", "0", "OKAY", "SMS Ready", "+CMGS: 5"])
def test_not_final(line: str) -> None:
    assert parse_final(line) is None


# The framer splits on CR/LF in C outside a submit; its byte-by-byte loop (used while
# a prompt is expected) is the reference: any bytes, cut anywhere, give the same frames.
import itertools  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import gsmgw.at.lines as lines_mod  # noqa: E402

_WIRE = st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"\x00", b"OK", b"+CMTI: \"SM\",3", b"> ", b"\xff\xfe",
                                  b"0791", b" ", b"\x1a", b"ERROR"]), max_size=40).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(data=_WIRE, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=6),
       limit=st.sampled_from([4, 7, 64 * 1024]))
def test_fast_framing_equals_the_bytewise_reference(data: bytes, cuts: list[int], limit: int) -> None:
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    fast, ref = LineFramer(), LineFramer()
    saved, lines_mod.MAX_LINE_BYTES = lines_mod.MAX_LINE_BYTES, limit
    try:
        got = [f for c in chunks for f in fast.feed(c)]
        want = [f for c in chunks for f in ref._feed_bytewise(c)]
    finally:
        lines_mod.MAX_LINE_BYTES = saved
    assert got == want
    assert fast.pending() == ref.pending()
