"""One named test per python-gsmmodem-new bug listed in issue #3: gsmgw gets each right."""

from __future__ import annotations

import json

import pytest

from gsmgw.domain import Encoding
from gsmgw.errors import CodecError
from gsmgw.sms import Deliver, decode_pdu, encode_deliver, encode_submit, preview
from gsmgw.sms.concat import Reassembler

TO = "+447700900123"


def _deliver_ucs2(body_hex: str) -> str:
    # SMS-DELIVER from +15551234567, DCS 0x08, SCTS 2026-01-02 03:04:05+00, UD = body.
    body = bytes.fromhex(body_hex)
    return ("00" + "04" + "0B915155214365F7" + "00" + "08" + "62102030405000"
            + f"{len(body):02X}" + body_hex)


def test_emoji_encodes_as_surrogate_pair() -> None:
    m = encode_submit(TO, "Hi 😀")
    assert m.encoding is Encoding.UCS2
    assert m.parts[0].pdu.endswith("0A004800690020D83DDE00")
    assert decode_pdu(m.parts[0].pdu).text == "Hi 😀"


def test_ucs2_surrogate_pair_decodes_to_one_character() -> None:
    d = decode_pdu(_deliver_ucs2("D83DDE00"))
    assert d.text == "😀"
    json.dumps(d.text)  # storable / sendable as JSON


def test_lone_surrogate_in_ucs2_becomes_replacement_character() -> None:
    d = decode_pdu(_deliver_ucs2("0041D83D0042"))
    assert d.text == "A\ufffdB"
    json.dumps(d.text).encode("utf-8")


def test_ucs2_length_counts_utf16_units() -> None:
    assert preview("😀" * 35).parts == 1  # 70 UTF-16 units
    p = preview("😀" * 36)
    assert (p.parts, p.units_used) == (2, 72)
    m = encode_submit(TO, "😀" * 100, concat_ref=1)
    assert len(m.parts) == 4  # 200 UTF-16 units / 67 per part (66 per part at most: pairs stay whole)
    for part in m.parts:
        d = decode_pdu(part.pdu)
        assert d.tp_udl <= 140 and len(d.user_data) <= 134 and part.units <= 67


def test_tpdu_length_with_smsc() -> None:
    m = encode_submit(TO, "Hello", smsc="+447785016005")
    (p,) = m.parts
    assert p.tpdu_length == 18  # not the whole PDU (26) nor a wrong sum
    assert len(bytes.fromhex(p.pdu)) == 1 + 7 + 18
    m = encode_submit(TO, "Hello")
    assert m.parts[0].tpdu_length == 18 and len(bytes.fromhex(m.parts[0].pdu)) == 19


@pytest.mark.parametrize("n", [8, 16, 24, 160])
def test_gsm7_len_multiple_of_8_ending_at_sign(n: int) -> None:
    text = "a" * (n - 1) + "@"
    m = encode_submit(TO, text)
    assert decode_pdu(m.parts[0].pdu).text == text
    assert decode_pdu(m.parts[0].pdu).text.endswith("@")
    text = "@" * n
    assert decode_pdu(encode_submit(TO, text).parts[0].pdu).text == text


def test_gsm7_padding_bits_are_not_text() -> None:
    # 7 septets leave 7 spare bits in the last octet: they must not become an extra '@'.
    d = decode_pdu(encode_submit(TO, "abcdefg").parts[0].pdu)
    assert d.text == "abcdefg"


def test_16bit_concat_ref_gsm7_first_char_kept() -> None:
    text = "Zebra " + "x" * 300
    m = encode_submit(TO, text, concat_ref=0xBEEF, concat_16bit=True)
    assert m.concat_16bit and m.concat_ref == 0xBEEF
    parts = [decode_pdu(p.pdu) for p in m.parts]
    assert all(p.concat is not None and p.concat.bits == 16 and p.concat.reference == 0xBEEF for p in parts)
    assert parts[0].text.startswith("Zebra")
    assert "".join(p.text for p in parts) == text
    assert len(parts[0].text) == 152


def test_dcs_0x48_ucs2_autodelete() -> None:
    pdu = _deliver_ucs2("00480069").replace("0008621020", "0048621020")
    d = decode_pdu(pdu)
    assert d.tp_dcs == 0x48 and d.encoding is Encoding.UCS2 and d.text == "Hi"
    assert d.data_coding.auto_delete


@pytest.mark.parametrize(("dcs", "cls"), [(0xF4, 0), (0xF5, 1)])
def test_dcs_f4_f5_8bit_class(dcs: int, cls: int) -> None:
    d = decode_pdu(encode_deliver("+15551234567", user_data=b"\x01\x02\xff", tp_dcs=dcs,
                                  scts=decode_pdu(_deliver_ucs2("0041")).scts))
    assert isinstance(d, Deliver)
    assert d.encoding is Encoding.BINARY and d.message_class == cls and d.user_data == b"\x01\x02\xff"
    assert d.flash is (cls == 0)


def test_flash_sms_recognised_on_decode() -> None:
    pdu = _deliver_ucs2("0041").replace("0008621020", "0018621020")
    d = decode_pdu(pdu)
    assert d.message_class == 0 and d.flash


@pytest.mark.parametrize(
    "pdu",
    ["0004", "00040B9151552143", "0011000B916407281553F80000AA0A", "07911326040000F004", "FF", "0001"],
)
def test_malformed_pdu_raises_codec_error(pdu: str) -> None:
    with pytest.raises(CodecError):
        decode_pdu(pdu)


@pytest.mark.parametrize("number", ["+44 7700 900123", "+44-7700-900123", "(0)7700 900123", "+44\t7700900123"])
def test_spaces_in_number_rejected(number: str) -> None:
    with pytest.raises(CodecError, match="invalid phone number"):
        encode_submit(number, "x")


def test_emoji_split_across_parts_by_foreign_encoder_rejoins() -> None:
    """A foreign sender may cut a surrogate pair between two parts; reassembly joins octets."""
    head = "0044" * 66 + "D83D"  # 134 octets: 66 'D' + high surrogate
    tail = "DE00"
    pdus = []
    for seq, body in ((1, head), (2, tail)):
        ud = "050003070200".replace("0200", f"02{seq:02X}") + body
        pdus.append("00" + "44" + "0B915155214365F7" + "00" + "08" + "62102030405000"
                    + f"{len(ud) // 2:02X}" + ud)
    r = Reassembler()
    assert r.add("+15551234567", decode_pdu(pdus[1]), now=0.0) is None  # type: ignore[arg-type]
    msg = r.add("+15551234567", decode_pdu(pdus[0]), now=1.0)  # type: ignore[arg-type]
    assert msg is not None and msg.text == "D" * 66 + "😀"
