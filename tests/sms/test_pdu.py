"""TPDU encode/decode: fields, published examples, DCS groups, time stamps, status reports."""

from __future__ import annotations

import datetime as dt

import pytest

from gsmgw.domain import Encoding
from gsmgw.errors import CodecError
from gsmgw.sms import (
    Deliver,
    StatusCategory,
    StatusReport,
    Submit,
    decode_dcs,
    decode_pdu,
    encode_deliver,
    encode_status_report,
    encode_submit,
    status_meaning,
    submit_to_deliver,
)
from gsmgw.sms.pdu import (
    decode_relative_validity,
    decode_timestamp,
    encode_relative_validity,
    encode_timestamp,
)

TO = "+447700900123"
UTC = dt.UTC
SCTS = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30)))

# Widely published SMS-DELIVER example ("SMS and the PDU format", dreamfabric.com; also in
# countless modem manuals): from +31641600986 via SMSC +31624000000, "How are you?".
DREAMFABRIC_DELIVER = "07911326040000F0040B911346610089F60000208062917314480CC8F71D14969741F977FD07"
# Its SMS-SUBMIT companion: to +46708251358, "hellohello", relative validity 0xAA (4 days).
DREAMFABRIC_SUBMIT = "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"


def test_dreamfabric_deliver_example() -> None:
    d = decode_pdu(DREAMFABRIC_DELIVER)
    assert isinstance(d, Deliver)
    assert d.smsc == "+31624000000"
    assert d.originator == "+31641600986"
    assert d.text == "How are you?"
    assert d.encoding is Encoding.GSM7 and d.message_class is None
    assert d.scts == dt.datetime(2002, 8, 26, 19, 37, 41, tzinfo=dt.timezone(dt.timedelta(hours=-1)))


def test_dreamfabric_submit_example() -> None:
    s = decode_pdu(DREAMFABRIC_SUBMIT)
    assert isinstance(s, Submit)
    assert s.destination == "+46708251358"
    assert s.text == "hellohello"
    assert s.validity == dt.timedelta(days=4) and s.validity_format == "relative"
    assert s.smsc is None
    ours = encode_submit("+46708251358", "hellohello", validity=dt.timedelta(days=4))
    assert ours.parts[0].pdu == DREAMFABRIC_SUBMIT


def test_submit_field_layout() -> None:
    m = encode_submit(TO, "Hello", smsc="+447785016005", tp_mr=0x42, status_report=True,
                      reject_duplicates=True)
    (p,) = m.parts
    assert p.pdu == "07914477581006" + "50" + "25" + "42" + "0C91447700091032" + "00" + "00" + "05" + "C8329BFD06"
    assert p.tpdu_length == len(bytes.fromhex(p.pdu)) - 8
    s = decode_pdu(p.pdu)
    assert isinstance(s, Submit)
    assert (s.tp_mr, s.status_report_requested, s.reject_duplicates, s.smsc) == (0x42, True, True, "+447785016005")


def test_national_number_and_no_smsc() -> None:
    m = encode_submit("07700900123", "x")
    assert m.parts[0].pdu.startswith("0001000B817007900021F3")
    s = decode_pdu(m.parts[0].pdu)
    assert s.address == "07700900123" and s.destination_toa == 0x81


def test_alphanumeric_destination_only_by_opt_in() -> None:
    with pytest.raises(CodecError, match="invalid phone number"):
        encode_submit("Info", "x")
    m = encode_submit("Info", "x", allow_alphanumeric=True)
    s = decode_pdu(m.parts[0].pdu)
    assert s.address == "Info" and s.destination_toa == 0xD0


@pytest.mark.parametrize("bad", ["", "+", "+44 7700", "44-77", "+44\n77", "abc", "+1234567890123456789012", "０１２"])
def test_bad_numbers_rejected(bad: str) -> None:
    with pytest.raises(CodecError):
        encode_submit(bad, "x")


def test_flash_is_class_0() -> None:
    m = encode_submit(TO, "Alert", flash=True)
    s = decode_pdu(m.parts[0].pdu)
    assert s.tp_dcs == 0x10 and s.message_class == 0 and s.flash
    m = encode_submit(TO, "Алерт", flash=True)
    assert decode_pdu(m.parts[0].pdu).tp_dcs == 0x18


@pytest.mark.parametrize(
    ("period", "octet"),
    [(dt.timedelta(minutes=5), 0), (dt.timedelta(minutes=1), 0), (dt.timedelta(hours=12), 143),
     (dt.timedelta(hours=12, minutes=30), 144), (dt.timedelta(hours=24), 167), (dt.timedelta(days=2), 168),
     (dt.timedelta(days=30), 196), (dt.timedelta(days=31), 197), (dt.timedelta(weeks=63), 255)],
)
def test_relative_validity(period: dt.timedelta, octet: int) -> None:
    assert encode_relative_validity(period) == octet
    assert decode_relative_validity(octet) >= period


def test_validity_errors_and_absolute() -> None:
    with pytest.raises(CodecError, match="63 weeks"):
        encode_relative_validity(dt.timedelta(weeks=64))
    with pytest.raises(CodecError, match="positive"):
        encode_relative_validity(dt.timedelta(0))
    m = encode_submit(TO, "x", validity=SCTS)
    s = decode_pdu(m.parts[0].pdu)
    assert s.validity_format == "absolute" and s.validity == SCTS
    with pytest.raises(CodecError, match="timezone-aware"):
        encode_submit(TO, "x", validity=dt.datetime(2026, 1, 1))


@pytest.mark.parametrize("minutes", [0, 60, -60, -210, 345, -720, 840, -15])
def test_timestamp_time_zones(minutes: int) -> None:
    when = dt.datetime(2024, 2, 29, 23, 59, 58, tzinfo=dt.timezone(dt.timedelta(minutes=minutes)))
    assert decode_timestamp(encode_timestamp(when)) == when
    assert decode_timestamp(encode_timestamp(when)).utcoffset() == dt.timedelta(minutes=minutes)


def test_time_zone_out_of_range() -> None:
    with pytest.raises(CodecError, match="out of range"):
        encode_timestamp(dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=20))))


def test_negative_time_zone_wire_format() -> None:
    # -03:30 = 14 quarters: semi-octets "41" swapped, sign bit 3 -> octet 0x49.
    assert encode_timestamp(SCTS)[-1] == 0x49
    with pytest.raises(CodecError, match="invalid BCD"):
        decode_timestamp(bytes.fromhex("6230115000A000"))
    with pytest.raises(CodecError, match="month must be"):
        decode_timestamp(bytes.fromhex("62001150000000"))
    garbage_zone = decode_timestamp(bytes.fromhex("620111500000FF"))
    assert garbage_zone == dt.datetime(2026, 10, 11, 5, 0, 0, tzinfo=dt.UTC)
    with pytest.raises(CodecError, match="need 7 octets"):
        decode_timestamp(bytes.fromhex("620011500000"))


@pytest.mark.parametrize(
    ("dcs", "encoding", "cls", "extra"),
    [
        (0x00, Encoding.GSM7, None, {}),
        (0x04, Encoding.BINARY, None, {}),
        (0x08, Encoding.UCS2, None, {}),
        (0x0C, Encoding.GSM7, None, {}),  # reserved alphabet -> default
        (0x10, Encoding.GSM7, 0, {}),
        (0x11, Encoding.GSM7, 1, {}),
        (0x16, Encoding.BINARY, 2, {}),
        (0x19, Encoding.UCS2, 1, {}),
        (0x20, Encoding.GSM7, None, {"compressed": True}),
        (0x48, Encoding.UCS2, None, {"auto_delete": True}),
        (0x40, Encoding.GSM7, None, {"auto_delete": True}),
        (0x54, Encoding.BINARY, 0, {"auto_delete": True}),
        (0x80, Encoding.GSM7, None, {}),  # reserved group
        (0xC0, Encoding.GSM7, None, {"mwi_discard": True, "mwi_active": False, "mwi_type": "voicemail"}),
        (0xD8, Encoding.GSM7, None, {"mwi_active": True, "mwi_type": "voicemail"}),
        (0xDA, Encoding.GSM7, None, {"mwi_active": True, "mwi_type": "email"}),
        (0xE9, Encoding.UCS2, None, {"mwi_active": True, "mwi_type": "fax"}),
        (0xF0, Encoding.GSM7, 0, {}),
        (0xF1, Encoding.GSM7, 1, {}),
        (0xF2, Encoding.GSM7, 2, {}),
        (0xF3, Encoding.GSM7, 3, {}),
        (0xF4, Encoding.BINARY, 0, {}),
        (0xF5, Encoding.BINARY, 1, {}),
        (0xF6, Encoding.BINARY, 2, {}),
        (0xF7, Encoding.BINARY, 3, {}),
    ],
)
def test_every_dcs_group(dcs: int, encoding: Encoding, cls: int | None, extra: dict) -> None:
    info = decode_dcs(dcs)
    assert (info.encoding, info.message_class) == (encoding, cls)
    for k, v in extra.items():
        assert getattr(info, k) == v


@pytest.mark.parametrize("dcs", [0xF0, 0xF1, 0x10, 0xC0, 0xD0, 0x40])
def test_deliver_in_gsm7_dcs_groups_decodes_text(dcs: int) -> None:
    (pdu,) = [encode_deliver("+15551234567", "Voicemail waiting", scts=SCTS, tp_dcs=dcs)]
    d = decode_pdu(pdu[0])
    assert d.text == "Voicemail waiting" and d.tp_dcs == dcs


def test_compressed_user_data_is_marked_not_decoded() -> None:
    pdu = encode_deliver("+15551234567", user_data=b"\x01\x02\x03", tp_dcs=0x20, scts=SCTS)
    d = decode_pdu(pdu)
    assert d.compressed and d.text == "" and d.user_data == b"\x01\x02\x03"


def test_binary_with_ports() -> None:
    udh = bytes.fromhex("060504238400F0")  # 16-bit ports: dst 9092, src 240
    pdu = encode_deliver("+15551234567", user_data=b"\xde\xad", udh=udh, scts=SCTS, tp_dcs=0xF5)
    d = decode_pdu(pdu)
    assert d.ports == (0x2384, 0x00F0) and d.user_data == b"\xde\xad" and d.message_class == 1
    assert d.encoding is Encoding.BINARY


def test_unknown_udh_elements_kept() -> None:
    udh = bytes.fromhex("0A" "7003AABBCC" "000301 02 01".replace(" ", ""))
    pdu = encode_deliver("+15551234567", user_data=b"\x00\x41", udh=udh, scts=SCTS, tp_dcs=0x08)
    d = decode_pdu(pdu)
    assert [e.iei for e in d.udh] == [0x70, 0x00]
    assert d.udh[0].data == b"\xaa\xbb\xcc"
    assert d.concat is not None and (d.concat.reference, d.concat.total, d.concat.sequence) == (1, 2, 1)
    assert d.text == "A"


def test_invalid_concat_ie_ignored() -> None:
    udh = bytes.fromhex("050003010003")  # sequence 3 of 0
    d = decode_pdu(encode_deliver("+1555", user_data=b"\x00\x41", udh=udh, scts=SCTS, tp_dcs=8))
    assert d.concat is None and d.udh[0].iei == 0


def test_gsm7_udh_fill_bits_deliver() -> None:
    pdus = encode_deliver("+15551234567", "x" * 200, scts=SCTS, concat_ref=0x1234, concat_16bit=True)
    assert isinstance(pdus, list) and len(pdus) == 2
    parts = [decode_pdu(p) for p in pdus]
    assert [p.concat.bits for p in parts] == [16, 16]  # type: ignore[union-attr]
    assert "".join(p.text for p in parts) == "x" * 200
    assert parts[0].concat.reference == 0x1234  # type: ignore[union-attr]


def test_alphanumeric_originator_deliver() -> None:
    (pdu,) = encode_deliver("MyBank", "Code 1234", scts=SCTS)
    d = decode_pdu(pdu)
    assert d.originator == "MyBank" and d.originator_toa == 0xD0


def test_tpdu_length_infers_smsc_field() -> None:
    (pdu,) = encode_deliver("+15551234567", "hi", scts=SCTS, smsc="+447785016005")
    raw = bytes.fromhex(pdu)
    d = decode_pdu(pdu, tpdu_length=len(raw) - 8)
    assert d.smsc == "+447785016005" and d.text == "hi"
    tpdu_only = raw[8:].hex()
    assert decode_pdu(tpdu_only, tpdu_length=len(raw) - 8).text == "hi"
    assert decode_pdu(tpdu_only, smsc_included=False).text == "hi"
    with pytest.raises(CodecError, match="SMSC field"):
        decode_pdu(pdu, tpdu_length=len(raw) - 5)
    with pytest.raises(CodecError, match="does not fit"):
        decode_pdu(pdu, tpdu_length=len(raw) + 1)


def test_more_messages_and_sri_flags() -> None:
    (pdu,) = encode_deliver("+1555", "x", scts=SCTS, more_messages=True, status_report_indication=True)
    d = decode_pdu(pdu)
    assert d.more_messages and d.status_report_indication


# --- status reports -------------------------------------------------------------------

# A status report as a modem prints it after "+CDS: 25" (empty SMSC field "00" first).
CDS_EXAMPLE = "0006D60B911326880736F4111011719551401110117195714000"


def test_status_report_cds_example() -> None:
    r = decode_pdu(CDS_EXAMPLE, tpdu_length=25)
    assert isinstance(r, StatusReport)
    assert (r.tp_mr, r.recipient, r.status) == (0xD6, "+31628870634", 0)
    assert r.delivered and r.final and r.category is StatusCategory.DELIVERED
    assert r.scts == dt.datetime(2011, 1, 11, 17, 59, 15, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert r.discharge_time == dt.datetime(2011, 1, 11, 17, 59, 17, tzinfo=dt.timezone(dt.timedelta(hours=1)))


@pytest.mark.parametrize(
    ("status", "category", "final", "words"),
    [
        (0x00, StatusCategory.DELIVERED, True, "received by the SME"),
        (0x01, StatusCategory.DELIVERED, True, "unable to confirm"),
        (0x02, StatusCategory.DELIVERED, True, "replaced"),
        (0x21, StatusCategory.PENDING, False, "SME busy (SC still trying)"),
        (0x30, StatusCategory.PENDING, False, "SC specific"),
        (0x41, StatusCategory.FAILED, True, "incompatible destination"),
        (0x46, StatusCategory.FAILED, True, "validity period expired"),
        (0x4A, StatusCategory.FAILED, True, "reserved"),
        (0x62, StatusCategory.FAILED_TEMPORARY, True, "no response from SME (SC stopped trying)"),
        (0x80, StatusCategory.FAILED, True, "service rejected"),
    ],
)
def test_status_values(status: int, category: StatusCategory, final: bool, words: str) -> None:
    pdu = encode_status_report(tp_mr=7, recipient=TO, scts=SCTS, discharge_time=SCTS, status=status)
    r = decode_pdu(pdu)
    assert isinstance(r, StatusReport)
    assert r.category is category and r.final is final and r.delivered is (category is StatusCategory.DELIVERED)
    assert words in r.status_meaning and words in status_meaning(status)
    assert r.scts.utcoffset() == dt.timedelta(hours=-3, minutes=-30)


def test_status_report_with_optional_fields_and_padding() -> None:
    base = encode_status_report(tp_mr=1, recipient=TO, scts=SCTS, discharge_time=SCTS, status=0)
    r = decode_pdu(base + "0700000548656C6C6F"[:0] + "FF")  # junk PI: status still decoded
    assert r.status == 0
    r = decode_pdu(base + "06" + "00" + "05" + "C8329BFD06")  # PI: DCS + UDL present
    assert isinstance(r, StatusReport) and r.text == "Hello"


# --- submit -> deliver relay -----------------------------------------------------------


@pytest.mark.parametrize("text", ["plain", "€uro " * 50, "Привет 😀 " * 20, "çok güzel ışık " * 20])
def test_submit_to_deliver_keeps_dcs_udh_ud(text: str) -> None:
    m = encode_submit(TO, text, flash=True, concat_ref=77, status_report=True)
    got = []
    for part in m.parts:
        s = decode_pdu(part.pdu)
        assert isinstance(s, Submit)
        d = decode_pdu(submit_to_deliver(s, originator="+15551234567", scts=SCTS))
        assert isinstance(d, Deliver)
        assert (d.tp_dcs, d.udh, d.ud_raw, d.concat) == (s.tp_dcs, s.udh, s.ud_raw, s.concat)
        assert d.originator == "+15551234567" and d.message_class == 0 and d.status_report_indication
        got.append(d.text)
    assert "".join(got) == text


# --- malformed input --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pdu", "message"),
    [
        ("", "empty"),
        ("0", "odd number"),
        ("zz", "hexadecimal"),
        ("00", "no TPDU"),
        ("0003", "reserved"),
        ("0C91447700", "SMSC field length"),
        ("0004", "truncated"),
        ("00040B91", "truncated"),
        ("0004039100", "truncated"),
        ("00010000", "truncated"),
        ("0001001F91", "exceeds the maximum 20"),
        (DREAMFABRIC_DELIVER[:-4], "truncated"),
        ("0011000B916407281553F80000AAA1E8329BFD4697D9EC37", "exceeds 160"),
        ("0051000B916407281553F80008AA0210" + "00", "UDH length"),
        ("0051000B916407281553F80008AA04" + "03000301", "UDH truncated|claims"),
    ],
)
def test_malformed_inputs(pdu: str, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        decode_pdu(pdu)


def test_encode_argument_errors() -> None:
    with pytest.raises(CodecError, match="tp_mr"):
        encode_submit(TO, "x", tp_mr=256)
    with pytest.raises(CodecError, match="concat_ref"):
        encode_submit(TO, "x" * 200, concat_ref=256)
    with pytest.raises(CodecError, match="lone surrogate"):
        encode_submit(TO, "a\ud800b")
    with pytest.raises(CodecError, match="exactly one"):
        encode_deliver(TO, scts=SCTS)
    with pytest.raises(CodecError, match="udl"):
        encode_deliver(TO, user_data=b"\x00", tp_dcs=0x00, scts=SCTS)
    with pytest.raises(CodecError, match="multiple of 15"):
        encode_deliver(TO, "x", scts=dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(minutes=10))))


def test_8bit_data_submit() -> None:
    m = encode_submit(TO, data=bytes(range(200)), concat_ref=5, concat_16bit=True)
    assert m.encoding is Encoding.BINARY and len(m.parts) == 2
    parts = [decode_pdu(p.pdu) for p in m.parts]
    assert b"".join(p.user_data for p in parts) == bytes(range(200))
    assert parts[1].concat.bits == 16 and parts[1].concat.reference == 5  # type: ignore[union-attr]


def test_ports_and_extra_udh_elements_composed() -> None:
    from gsmgw.sms import UdhElement

    m = encode_submit(TO, "p" * 300, ports=(2948, 9200), udh_elements=(UdhElement(0x70, b"\x01"),),
                      concat_ref=4)
    parts = [decode_pdu(p.pdu) for p in m.parts]
    # concat (5) + ports (6) + 0x70 (3) + UDHL = 15 octets -> 125 octets = 142 septets of text
    assert [len(p.text) for p in parts] == [142, 142, 16]
    for p in parts:
        assert p.ports == (2948, 9200) and [e.iei for e in p.udh] == [0x00, 0x05, 0x70]
    assert "".join(p.text for p in parts) == "p" * 300
    d = encode_submit(TO, data=b"\xff" * 200, ports=(1, 2), concat_ref=1)
    assert [len(decode_pdu(p.pdu).user_data) for p in d.parts] == [128, 72]
    with pytest.raises(CodecError, match="set by the codec"):
        encode_submit(TO, "x", udh_elements=(UdhElement(0x00, b"\x01\x01\x01"),))
    with pytest.raises(CodecError, match="ports"):
        encode_submit(TO, "x", ports=(70000, 1))
