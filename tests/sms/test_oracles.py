"""Cross-checks against independent codecs: python-gammu (libgammu) and python-gsmmodem-new.

PDUs gsmgw encodes must decode identically there, and PDUs they encode must decode
identically in gsmgw. (The emulator shares gsmgw.sms, so these outside oracles are what
keeps a bug mirrored in both directions from hiding.)
"""

from __future__ import annotations

import datetime as dt

import gammu
import gsmmodem.pdu as gsmmodem_pdu
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gsmgw.domain import Encoding
from gsmgw.sms import (
    Deliver,
    StatusReport,
    Submit,
    decode_pdu,
    encode_deliver,
    encode_status_report,
    encode_submit,
)
from gsmgw.sms.gsm7 import DEFAULT

TO = "+447700900123"
SMSC = "+447785016005"
GSM_CHARS = "".join(sorted(ch for ch in DEFAULT.encode_map if ch not in "\x1b"))


def _gammu_text(g: dict, ours: str) -> str:
    """libgammu pads its decoded default-alphabet text with one junk character per escape
    sequence (its 'Length' counts septets); compare only the real characters."""
    text: str = g["Text"]
    if g["Coding"].startswith("Default"):
        extra = len(text) - len(ours)
        assert 0 <= extra <= sum(1 for ch in ours if len(DEFAULT.encode_map.get(ch, ())) == 2)
        return text[: len(ours)]
    return text


def _gammu_encode(text: str, *, unicode: bool, cls: int = -1, layout: str = "Submit",
                  id16: bool = False) -> list[bytes]:
    info = {"Class": cls, "Unicode": unicode,
            "Entries": [{"ID": "ConcatenatedTextLong16bit" if id16 else "ConcatenatedTextLong", "Buffer": text}]}
    out = []
    for sms in gammu.EncodeSMS(info):
        sms["Number"] = TO
        sms["SMSC"] = {"Location": 0, "Number": SMSC, "Validity": "NA", "Format": "Text"}
        if layout == "Deliver":
            sms["Type"] = "Deliver"
            sms["DateTime"] = dt.datetime(2026, 1, 2, 3, 4, 5)
        out.append(gammu.EncodePDU(sms, layout))
    return out


# --- gsmgw -> gammu -----------------------------------------------------------------------

TEXTS = [
    ("Hello world", Encoding.GSM7),
    ("Escapes €{}[]~\\^| and @£$¥", Encoding.GSM7),
    ("Hi 😀 there", Encoding.UCS2),
    ("👋🏽 Привет, мир! 你好", Encoding.UCS2),
    ("a" * 400, Encoding.GSM7),
    ("€" * 100, Encoding.GSM7),
    ("Ж😀" * 60, Encoding.UCS2),
]


@pytest.mark.parametrize(("text", "encoding"), TEXTS)
@pytest.mark.parametrize("concat_16bit", [False, True])
def test_gsmgw_submit_decodes_identically_in_gammu(text: str, encoding: Encoding, concat_16bit: bool) -> None:
    m = encode_submit(TO, text, smsc=SMSC, concat_ref=0x2A, concat_16bit=concat_16bit)
    assert m.encoding is encoding
    pieces = []
    for i, part in enumerate(m.parts, start=1):
        g = gammu.DecodePDU(bytes.fromhex(part.pdu), True)
        assert g["Type"] == "Submit"
        assert g["Number"] == TO and g["SMSC"]["Number"] == SMSC
        assert g["Coding"] == ("Unicode_No_Compression" if encoding is Encoding.UCS2 else "Default_No_Compression")
        if len(m.parts) > 1:
            udh = g["UDH"]
            assert udh["Type"] == ("ConcatenatedMessages16bit" if concat_16bit else "ConcatenatedMessages")
            assert (udh["PartNumber"], udh["AllParts"]) == (i, len(m.parts))
            assert (udh["ID16bit"] if concat_16bit else udh["ID8bit"]) == 0x2A
        pieces.append(_gammu_text(g, part.text))
    assert "".join(pieces) == text


def test_gsmgw_flags_decode_identically_in_gammu() -> None:
    m = encode_submit(TO, "Flash", flash=True, status_report=True, reject_duplicates=True, tp_mr=0x33)
    g = gammu.DecodePDU(bytes.fromhex(m.parts[0].pdu), True)
    # (libgammu does not decode TP-RD on SMS-SUBMIT: it always reports RejectDuplicates 0)
    assert g["Class"] == 0 and g["MessageReference"] == 0x33 and g["Text"] == "Flash"


@pytest.mark.parametrize("tz_hours", [-5, 0, 5.75, -3.5])
def test_gsmgw_deliver_decodes_identically_in_gammu(tz_hours: float) -> None:
    scts = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=tz_hours)))
    pdus = encode_deliver(TO, "Deliver " * 30, scts=scts, smsc=SMSC, concat_ref=7)
    assert isinstance(pdus, list) and len(pdus) == 2
    texts = []
    for p in pdus:
        g = gammu.DecodePDU(bytes.fromhex(p), True)
        assert g["Type"] == "Deliver" and g["Number"] == TO and g["DateTime"] == scts
        texts.append(g["Text"])
    assert "".join(texts) == "Deliver " * 30


@pytest.mark.parametrize("status", [0x00, 0x21, 0x46, 0x62])
def test_gsmgw_status_report_decodes_identically_in_gammu(status: int) -> None:
    scts = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=-4)))
    done = scts + dt.timedelta(seconds=4)
    pdu = encode_status_report(tp_mr=9, recipient=TO, scts=scts, discharge_time=done, status=status)
    g = gammu.DecodePDU(bytes.fromhex(pdu), True)
    assert g["Type"] == "Status_Report"
    assert (g["MessageReference"], g["Number"], g["DeliveryStatus"]) == (9, TO, status)
    # libgammu names the TP-SCTS 'DateTime' and the TP-DT 'SMSCDateTime'
    assert (g["DateTime"], g["SMSCDateTime"]) == (scts, done)


# --- gammu -> gsmgw -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "encoding"), TEXTS)
@pytest.mark.parametrize("id16", [False, True])
def test_gammu_submit_decodes_identically_in_gsmgw(text: str, encoding: Encoding, id16: bool) -> None:
    pdus = _gammu_encode(text, unicode=encoding is Encoding.UCS2, id16=id16)
    decoded = [decode_pdu(p.hex()) for p in pdus]
    assert all(isinstance(d, Submit) and d.destination == TO and d.smsc == SMSC for d in decoded)
    assert all(d.encoding is encoding for d in decoded)
    if len(decoded) > 1:
        refs = {d.concat.reference for d in decoded if d.concat}
        assert len(refs) == 1 and [d.concat.sequence for d in decoded if d.concat] == list(
            range(1, len(decoded) + 1))
        assert all(d.concat and d.concat.bits == (16 if id16 else 8) for d in decoded)
    assert "".join(d.text for d in decoded) == text


def test_gammu_deliver_and_flash_decode_in_gsmgw() -> None:
    (pdu,) = _gammu_encode("Deliver me €", unicode=False, layout="Deliver")
    d = decode_pdu(pdu.hex())
    assert isinstance(d, Deliver)
    assert (d.originator, d.text, d.smsc) == (TO, "Deliver me €", SMSC)
    assert d.scts == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    (pdu,) = _gammu_encode("Flash", unicode=False, cls=0)
    d2 = decode_pdu(pdu.hex())
    assert d2.tp_dcs == 0xF0 and d2.message_class == 0


def test_gammu_status_report_sample_decodes_in_gsmgw() -> None:
    raw = bytes.fromhex("0006D60B911326880736F4111011719551401110117195714000")
    g = gammu.DecodePDU(raw, True)
    r = decode_pdu(raw.hex())
    assert isinstance(r, StatusReport)
    assert (r.tp_mr, r.recipient, r.status) == (g["MessageReference"], g["Number"], g["DeliveryStatus"])
    assert (r.scts, r.discharge_time) == (g["DateTime"], g["SMSCDateTime"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=300))
def test_property_gsm7_agrees_with_gammu(text: str) -> None:
    m = encode_submit(TO, text, concat_ref=1, max_parts=5)
    for part in m.parts:
        g = gammu.DecodePDU(bytes.fromhex(part.pdu), True)
        assert _gammu_text(g, part.text) == part.text
    back = "".join(d.text for d in (decode_pdu(p.hex()) for p in _gammu_encode(text, unicode=False)))
    assert back == text


@settings(max_examples=60, deadline=None)
# '~' is excluded: libgammu's UCS-2 -> Python conversion turns "~x" into "~~" (its own bug).
@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="~"),
               min_size=1, max_size=150))
def test_property_ucs2_agrees_with_gammu(text: str) -> None:
    m = encode_submit(TO, text, encoding=Encoding.UCS2, concat_ref=1, max_parts=20)
    got = "".join(gammu.DecodePDU(bytes.fromhex(p.pdu), True)["Text"] for p in m.parts)
    assert got == text


# --- python-gsmmodem-new (where it is right) ------------------------------------------------


@pytest.mark.parametrize("text", ["Hello", "Привет мир", "x" * 200, "ñandú"])
def test_gsmgw_submit_decodes_identically_in_gsmmodem(text: str) -> None:
    m = encode_submit(TO, text, concat_ref=5)
    got = []
    for part in m.parts:
        d = gsmmodem_pdu.decodeSmsPdu(part.pdu)
        assert d["type"] == "SMS-SUBMIT" and d["number"] == TO
        assert d["tpdu_length"] == part.tpdu_length
        got.append(d["text"])
    assert "".join(got) == text


@pytest.mark.parametrize("text", ["Hello", "Привет мир", "y" * 200, "Mixed € text"])
def test_gsmmodem_submit_decodes_identically_in_gsmgw(text: str) -> None:
    pdus = gsmmodem_pdu.encodeSmsSubmitPdu(TO, text, reference=3, requestStatusReport=True)
    decoded = [decode_pdu(p.data.hex(), tpdu_length=p.tpduLength) for p in pdus]
    assert all(isinstance(d, Submit) and d.destination == TO and d.status_report_requested for d in decoded)
    assert "".join(d.text for d in decoded) == text


@pytest.mark.parametrize("sender", ["MyBank", "Info2Go", "ABCDEFGHIJK", "x"])
def test_alphanumeric_sender_agrees_with_gammu(sender: str) -> None:
    # (letters and digits only: libgammu reads alphanumeric addresses as raw septets, so '_'
    # or '@' would not survive on its side)
    (pdu,) = encode_deliver(sender, "hi", scts=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert gammu.DecodePDU(bytes.fromhex(pdu), True)["Number"] == sender
    assert decode_pdu(pdu).address == sender
