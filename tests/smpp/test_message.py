"""What a submit means and what a deliver_sm says: text, concatenation, times, receipts."""

from __future__ import annotations

import datetime as dt

import pytest
import smpplib.gsm
from hypothesis import given, settings
from hypothesis import strategies as st

from gsmgw.errors import SmppError
from gsmgw.smpp.constants import MessageStateCode, Status, Tag
from gsmgw.smpp.message import (
    Concat,
    decode_text,
    encode_text,
    error_number,
    format_time,
    parse_receipt,
    parse_time,
    receipt_text,
    submitted_text,
)
from gsmgw.smpp.pdu import Pdu
from gsmgw.smpp.submit import parse_submit

NOW = dt.datetime(2026, 1, 31, 12, 0, 0, tzinfo=dt.UTC)


def test_gsm7_unpacked_as_smpplib_encodes_it() -> None:
    text = "Hello @ £5 {ok} €"
    parts, coding, _esm = smpplib.gsm.make_parts(text)
    assert coding == 0 and len(parts) == 1
    assert decode_text(parts[0], 0) == (text, False)
    assert encode_text(text) == (0, parts[0])


def test_ucs2_latin1_ascii_and_flash() -> None:
    assert decode_text("Привет 👋".encode("utf-16-be"), 8) == ("Привет 👋", False)
    assert decode_text("café".encode("latin-1"), 3) == ("café", False)
    assert decode_text(b"plain", 1) == ("plain", False)
    assert decode_text(b"flash", 0xF0) == ("flash", True)
    assert decode_text(b"caf\xe9", 0, default_alphabet="latin1") == ("café", False)
    assert encode_text("Привет") == (8, "Привет".encode("utf-16-be"))


@pytest.mark.parametrize(("data", "coding", "status"), [
    (b"\x80", 0, Status.RINVDCS),  # not a septet
    (b"abc", 4, Status.RINVDCS),  # binary
    (b"abc", 2, Status.RINVDCS),
    (b"\x00a\x00", 8, Status.RINVMSGLEN),  # odd UCS-2
    (b"\xd8\x00\x00a", 8, Status.RINVMSGLEN),  # lone surrogate
    (b"\xe9", 1, Status.RINVDCS),  # not ASCII
])
def test_text_refusals(data: bytes, coding: int, status: Status) -> None:
    with pytest.raises(SmppError) as err:
        decode_text(data, coding)
    assert err.value.status == status


def _submit(short: bytes = b"hi", esm: int = 0, coding: int = 0, tlvs: dict[int, bytes] | None = None,
            **over: object) -> Pdu:
    params: dict[str, object] = {
        "source_addr": "Shop", "source_addr_ton": 5, "dest_addr_ton": 1, "dest_addr_npi": 1,
        "destination_addr": "447700900123", "esm_class": esm, "data_coding": coding, "short_message": short,
        "schedule_delivery_time": "", "validity_period": "", "registered_delivery": 1, "priority_flag": 0}
    params.update(over)
    return Pdu(4, 1, 0, params, tlvs or {})


def test_udh_concatenation_8_and_16_bit() -> None:
    got = submitted_text(_submit(b"\x05\x00\x03\x2a\x03\x02part two", esm=0x40))
    assert got.text == "part two" and got.concat == Concat(0x2A, 3, 2)
    got = submitted_text(_submit(b"\x06\x08\x04\x12\x34\x02\x01" + "ü".encode("utf-16-be"), esm=0x40, coding=8))
    assert got.text == "ü" and got.concat == Concat(0x1234, 2, 1)


def test_smpplib_three_part_split_is_read_back_whole() -> None:
    text = "0123456789" * 40  # 400 GSM characters: three parts of 153
    parts, coding, esm = smpplib.gsm.make_parts(text)
    assert len(parts) == 3 and esm == 0x40
    pieces = [submitted_text(_submit(p, esm=esm, coding=coding)) for p in parts]
    assert [p.concat.seq for p in pieces if p.concat] == [1, 2, 3]
    assert "".join(p.text for p in pieces) == text


def test_sar_tlvs_and_message_payload() -> None:
    tlvs = {Tag.SAR_MSG_REF_NUM: b"\x00\x07", Tag.SAR_TOTAL_SEGMENTS: b"\x02", Tag.SAR_SEGMENT_SEQNUM: b"\x02"}
    assert submitted_text(_submit(b"tail", tlvs=tlvs)).concat == Concat(7, 2, 2)
    long_text = "x" * 500
    got = submitted_text(_submit(b"", tlvs={Tag.MESSAGE_PAYLOAD: long_text.encode()}))
    assert got.text == long_text and got.concat is None


@pytest.mark.parametrize(("pdu", "status"), [
    (_submit(b"\x05\x00\x03\x01\x02\x03x", esm=0x40), Status.RINVESMCLASS),  # part 3 of 2
    (_submit(b"\x04\x05\x02\x00\x00x", esm=0x40), Status.RINVESMCLASS),  # port addressing
    (_submit(b"\x09\x00\x03", esm=0x40), Status.RINVESMCLASS),  # UDH longer than the message
    (_submit(b"", esm=0x40), Status.RINVESMCLASS),
    (_submit(b"x", tlvs={Tag.MESSAGE_PAYLOAD: b"y"}), Status.RINVOPTPARAMVAL),
    (_submit(b"x", tlvs={Tag.SAR_MSG_REF_NUM: b"\x00\x01"}), Status.RMISSINGOPTPARAM),
])
def test_concatenation_refusals(pdu: Pdu, status: Status) -> None:
    with pytest.raises(SmppError) as err:
        submitted_text(pdu)
    assert err.value.status == status


# --- times -------------------------------------------------------------------------


def test_absolute_times_with_offsets() -> None:
    s = Status.RINVSCHED
    assert parse_time("260131130000000+", now=NOW, status=s) == dt.datetime(2026, 1, 31, 13, tzinfo=dt.UTC)
    # 14:00 local at UTC+1 (4 quarter hours) is 13:00 UTC.
    assert parse_time("260131140000004+", now=NOW, status=s) == dt.datetime(2026, 1, 31, 13, tzinfo=dt.UTC)
    assert parse_time("260131080000020-", now=NOW, status=s) == dt.datetime(2026, 1, 31, 13, tzinfo=dt.UTC)
    assert parse_time("", now=NOW, status=s) is None
    assert format_time(dt.datetime(2026, 1, 31, 13, 0, 5, 300_000, tzinfo=dt.UTC)) == "260131130005300+"


def test_relative_times() -> None:
    s = Status.RINVEXPIRY
    assert parse_time("000000010000000R", now=NOW, status=s) == NOW + dt.timedelta(hours=1)
    assert parse_time("000002000030000R", now=NOW, status=s) == NOW + dt.timedelta(days=2, seconds=30)
    # Jan 31 + 1 month is the last day of February.
    assert parse_time("000100000000000R", now=NOW, status=s) == dt.datetime(2026, 2, 28, 12, tzinfo=dt.UTC)
    assert parse_time("010000000000000R", now=NOW, status=s) == dt.datetime(2027, 1, 31, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize("value", ["2601311300", "260131130000000X", "261331130000000+", "260131130000049+",
                                   "000000250000000R", "26013113000000a+"])
def test_bad_times(value: str) -> None:
    with pytest.raises(SmppError) as err:
        parse_time(value, now=NOW, status=Status.RINVSCHED)
    assert err.value.status == Status.RINVSCHED


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20))
def test_fuzz_times(value: str) -> None:
    try:
        parse_time(value, now=NOW, status=Status.RINVEXPIRY)
    except SmppError:
        pass


# --- submit -> plain values -------------------------------------------------------------------


def test_parse_submit_reads_everything() -> None:
    pdu = _submit(b"hello", schedule_delivery_time="000000010000000R", validity_period="000001000000000R",
                  priority_flag=3, registered_delivery=0x11)
    p = parse_submit(pdu, system_id="acme", now=NOW)
    sub = p.submission
    assert sub.to == ("+447700900123",) and sub.text == "hello" and sub.priority == 9
    assert sub.send_at == NOW + dt.timedelta(hours=1) and sub.valid_until == NOW + dt.timedelta(days=1)
    assert sub.delivery_report is True
    assert sub.door_data == {"system_id": "acme", "rd": 0x11, "src": ["Shop", 5, 0],
                             "dst": ["447700900123", 1, 1]}


@pytest.mark.parametrize(("over", "status"), [
    ({"priority_flag": 4}, Status.RINVPRTFLG),
    ({"registered_delivery": 3}, Status.RINVREGDLVFLG),
    ({"registered_delivery": 0x80}, Status.RINVREGDLVFLG),
    ({"esm_class": 0x04}, Status.RINVESMCLASS),
    ({"destination_addr": ""}, Status.RINVDSTADR),
    ({"dest_addr_ton": 5, "destination_addr": "Shop"}, Status.RINVDSTADR),
    ({"validity_period": "000000000000000R"}, Status.RINVEXPIRY),
    ({"schedule_delivery_time": "000000020000000R", "validity_period": "000000010000000R"}, Status.RINVEXPIRY),
    ({"short_message": b""}, Status.RINVMSGLEN),
    ({"data_coding": 4}, Status.RINVDCS),
])
def test_parse_submit_refusals(over: dict[str, object], status: Status) -> None:
    with pytest.raises(SmppError) as err:
        parse_submit(_submit(**over), system_id="acme", now=NOW)  # type: ignore[arg-type]
    assert err.value.status == status


# --- receipts ---------------------------------------------------------------------------------


def test_receipt_text_appendix_b() -> None:
    text = receipt_text(message_id="0192f0a1b2c3d4e5f6a7b8c9", state=MessageStateCode.DELIVERED,
                        submitted_at=dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.UTC),
                        done_at=dt.datetime(2026, 1, 31, 12, 1, tzinfo=dt.UTC), err=0,
                        text="Your code is 123456, valid 5 minutes")
    assert text == ("id:0192f0a1b2c3d4e5f6a7b8c9 sub:001 dlvrd:001 submit date:2601311200 "
                    "done date:2601311201 stat:DELIVRD err:000 text:Your code is 123456,")
    fields = parse_receipt(text)
    assert fields["id"] == "0192f0a1b2c3d4e5f6a7b8c9" and fields["stat"] == "DELIVRD"
    assert fields["submit date"] == "2601311200" and fields["text"] == "Your code is 123456,"


def test_error_numbers() -> None:
    assert error_number("report:0x45") == 69
    assert error_number("cms:500") == 500
    assert error_number("expired") == 0
    assert error_number(None) == 0
