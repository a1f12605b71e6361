"""Every relevant parser against real modem traffic (issue 16 point 5).

The fixtures in tests/at/corpus/ are wire strings only, taken from gammu's tests/at-*
dumps and ModemManager's src/tests/ (see corpus/README.md); each case names its device
and its source file. The wire text goes through the real line framer first, so CR CR LF
endings and stray blanks are part of what is tested.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from gsmgw.at import parsers as P
from gsmgw.at.lines import Line, LineFramer, parse_final
from gsmgw.errors import CodecError
from gsmgw.modem.ussd import decode_response
from gsmgw.sms import decode_pdu

CORPUS = Path(__file__).parent / "corpus"


def load(name: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((CORPUS / name).read_text(encoding="utf-8"))["cases"]
    return cases


def case_id(case: dict[str, Any]) -> str:
    """``<device>@<repo>:<path>[:<test>]``, e.g. ``Huawei_E160G@ModemManager:.../test-modem-helpers.c:test_creg2_e160g_solicited``."""
    src = case["source"]
    device = re.sub(r"[^A-Za-z0-9.+-]+", "_", case["device"]).strip("_")
    where = f"{src['repo'].split('/')[-1]}:{src['path']}" + (f":{src['test']}" if src.get("test") else "")
    return f"{device}@{where}"


def params(name: str) -> Any:
    cases = load(name)
    return pytest.mark.parametrize("case", cases, ids=[case_id(c) for c in cases])


def frame(wire: str) -> list[str]:
    """The lines the channel would see (finals included); a trailing newline ends the last one."""
    return [f.text for f in LineFramer().feed(wire.encode("latin-1") + b"\r\n") if isinstance(f, Line)]


def body(wire: str) -> list[str]:
    return [line for line in frame(wire) if parse_final(line) is None]


def test_corpus_is_cited_and_sizeable() -> None:
    total = 0
    for path in CORPUS.glob("*.json"):
        for case in json.loads(path.read_text(encoding="utf-8"))["cases"]:
            src = case["source"]
            assert src["repo"] in ("gammu/gammu", "freedesktop/ModemManager"), case["id"]
            assert re.fullmatch(r"[0-9a-f]{40}", src["commit"]) and src["path"], case["id"]
            assert case["device"], case["id"]
            total += 1
    assert total >= 150
    assert len([c for c in load("sms_storage.json") if c["parser"] == "parse_cmgr"]) >= 36


def _check_sms(expect: dict[str, Any], got: P.ListedPdu | None) -> None:
    if expect.get("empty"):
        assert got is None
        return
    assert got is not None
    assert (got.stat, got.tpdu_length) == (expect["stat"], expect["tpdu_length"])
    assert got.pdu_hex == got.pdu_hex.upper()
    if "undecodable" in expect:
        with pytest.raises(CodecError, match=re.escape(expect["undecodable"])):
            decode_pdu(got.pdu_hex, tpdu_length=got.tpdu_length)
        return
    decoded = decode_pdu(got.pdu_hex, tpdu_length=got.tpdu_length)
    assert type(decoded).__name__ == expect["type"]
    address = getattr(decoded, "originator", None) or getattr(decoded, "destination", None) or getattr(
        decoded, "recipient", None) or ""
    assert address == expect["address"]
    if "text_starts" in expect:
        assert decoded.text.startswith(expect["text_starts"])  # type: ignore[union-attr]
    if "tp_status" in expect:
        assert decoded.status == expect["tp_status"]  # type: ignore[union-attr]


@params("sms_storage.json")
def test_sms_storage_answers(case: dict[str, Any]) -> None:
    lines = body(case["wire"])
    got = P.parse_cmgl(lines) if case["parser"] == "parse_cmgl" else [P.parse_cmgr(lines, 0)]
    assert len(got) == len(case["expect"])
    for expect, listed in zip(case["expect"], got, strict=True):
        _check_sms(expect, listed)
    for mm, listed in zip(case.get("mm_expect", []), got, strict=False):
        # ModemManager's own expectation for the same string: index, <stat> and the PDU.
        assert listed is not None and listed.stat == mm["stat"] and listed.pdu_hex == mm["pdu"].upper()
        if case["parser"] == "parse_cmgl":
            assert listed.index == mm["index"]


@params("registration.json")
def test_registration(case: dict[str, Any]) -> None:
    lines = body(case["wire"])
    if case["expect"] is None:
        assert lines == []  # an answer with no +CREG line at all
        return
    reg = P.parse_registration(lines[0], solicited=case["solicited"])
    got = {"stat": reg.stat, "lac": int(reg.lac, 16) if reg.lac else 0, "ci": int(reg.ci, 16) if reg.ci else 0,
           "act": reg.act}
    assert got == case["expect"]
    assert reg.registered == (case["expect"]["stat"] in (1, 5, 6, 7, 9, 10))


@params("answers.json")
def test_one_line_answers(case: dict[str, Any]) -> None:
    lines = body(case["wire"])
    parser, expect = case["parser"], case["expect"]
    if parser == "parse_cpms_test":
        assert P.parse_cpms_test(lines[0]) == expect
    elif parser == "parse_plain_value":
        assert P.parse_plain_value(lines, case["prefix"]) == expect
    elif parser == "parse_cusd":
        u = P.parse_cusd(lines[0])
        assert (u.status, u.dcs) == (expect["status"], expect["dcs"])
        assert decode_response(u.text, u.dcs, packed_hex=case["packed_hex"]) == expect["decoded"]
    elif parser == "parse_cnmi_test":
        assert [sorted(x) for x in P.parse_cnmi_test(lines[0])] == expect
    elif parser == "parse_cops":
        assert P.parse_cops(lines[0]) == expect
    elif parser == "parse_iccid":
        if expect is None:
            with pytest.raises(ValueError):
                P.parse_iccid(lines)
        else:
            assert P.parse_iccid(lines) == expect
    elif parser == "parse_csq":
        s = P.parse_csq(lines[0])
        assert [s.rssi, s.ber] == expect
    elif parser == "parse_imei":
        assert P.parse_imei(lines) == expect
    elif parser == "parse_imsi":
        assert P.parse_imsi(lines) == expect
    elif parser == "parse_cpin":
        assert P.parse_cpin(lines[0]) == expect
    else:
        pytest.fail(f"no check for parser {parser}")


@params("finals.json")
def test_final_result_codes(case: dict[str, Any]) -> None:
    first = frame(case["wire"])[0]
    final = parse_final(first)
    assert (final.kind if final else None) == case["expect"]
    if "note" not in case:
        assert (final is not None) == case["mm_expect"]["found"]
        if final is not None:
            assert (final.kind != "OK") == case["mm_expect"]["error"]
