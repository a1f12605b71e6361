"""Encoding choice, segmentation and preview."""

from __future__ import annotations

import pytest

from gsmgw.domain import Encoding
from gsmgw.errors import CodecError
from gsmgw.sms import decode_pdu, encode_submit, grapheme_clusters, preview
from gsmgw.sms.segment import capacity, plan_data, plan_text

TO = "+447700900123"


@pytest.mark.parametrize(
    ("encoding", "single", "concat8", "concat16"),
    [(Encoding.GSM7, 160, 153, 152), (Encoding.UCS2, 70, 67, 66), (Encoding.BINARY, 140, 134, 133)],
)
def test_capacities(encoding: Encoding, single: int, concat8: int, concat16: int) -> None:
    assert capacity(encoding, multipart=False) == single
    assert capacity(encoding, multipart=True) == concat8
    assert capacity(encoding, multipart=True, concat_16bit=True) == concat16


def test_shift_ies_reduce_capacity() -> None:
    assert capacity(Encoding.GSM7, multipart=False, extra_ie_octets=3) == 155
    assert capacity(Encoding.GSM7, multipart=True, extra_ie_octets=3) == 149
    assert capacity(Encoding.GSM7, multipart=True, extra_ie_octets=6) == 146


@pytest.mark.parametrize(
    ("text", "encoding", "parts"),
    [
        ("a" * 160, Encoding.GSM7, 1),
        ("a" * 161, Encoding.GSM7, 2),
        ("a" * 306, Encoding.GSM7, 2),
        ("a" * 307, Encoding.GSM7, 3),
        ("€" * 80, Encoding.GSM7, 1),
        ("€" * 81, Encoding.GSM7, 2),
        ("ж" * 70, Encoding.UCS2, 1),
        ("ж" * 71, Encoding.UCS2, 2),
        ("ж" * 134, Encoding.UCS2, 2),
        ("ж" * 135, Encoding.UCS2, 3),
        ("😀" * 35, Encoding.UCS2, 1),  # 70 UTF-16 units
        ("😀" * 36, Encoding.UCS2, 2),
        ("", Encoding.GSM7, 1),
    ],
)
def test_fewest_parts(text: str, encoding: Encoding, parts: int) -> None:
    p = preview(text, max_parts=255)
    assert (p.encoding, p.parts) == (encoding, parts)


def test_escape_sequence_never_split() -> None:
    # 152 'a' then '€' (2 septets): the escape must move whole into part 2.
    m = encode_submit(TO, "a" * 152 + "€" + "b" * 10, concat_ref=1)
    texts = [decode_pdu(p.pdu).text for p in m.parts]
    assert texts == ["a" * 152, "€" + "b" * 10]
    assert [p.units for p in m.parts] == [152, 12]


def test_surrogate_pair_never_split() -> None:
    m = encode_submit(TO, "ж" * 66 + "😀" + "ж" * 5, concat_ref=1)
    texts = [decode_pdu(p.pdu).text for p in m.parts]
    assert texts == ["ж" * 66, "😀" + "ж" * 5]


def test_grapheme_cluster_not_split() -> None:
    wave = "👋🏽"  # 4 UTF-16 units, one user-perceived character
    assert grapheme_clusters("a" + wave + "b") == ["a", wave, "b"]
    m = encode_submit(TO, "ж" * 64 + wave + "ж" * 5, concat_ref=1)
    texts = [decode_pdu(p.pdu).text for p in m.parts]
    assert texts == ["ж" * 64, wave + "ж" * 5]


def test_grapheme_clusters_flags_zwj_combining() -> None:
    family = "👨\u200d👩\u200d👧"
    assert grapheme_clusters("🇬🇧🇫🇷") == ["🇬🇧", "🇫🇷"]
    assert grapheme_clusters(family + "x") == [family, "x"]
    assert grapheme_clusters("e\u0301a") == ["e\u0301", "a"]
    assert grapheme_clusters("\r\nx") == ["\r\n", "x"]


def test_giant_cluster_split_at_code_points() -> None:
    text = "a" + "\u0301" * 200  # one cluster bigger than a part: fall back
    plan = plan_text(text)
    assert "".join(plan.chunks) == text
    assert all(u <= plan.units_per_part for u in plan.units)


def test_national_table_chosen_when_it_saves_parts() -> None:
    turkish = "Şişli'de güzel bir gün, ığdır çok uzak. " * 5  # 200 chars
    p = preview(turkish)
    assert p.encoding is Encoding.GSM7
    assert p.locking_shift == "turkish"
    assert p.parts == 2  # UCS-2 would need 3
    assert preview(turkish, encoding=Encoding.UCS2).parts == 3


def test_national_table_not_used_when_ucs2_is_as_short() -> None:
    p = preview("Şişli")  # 1 part either way: plain UCS-2, understood by every phone
    assert p.encoding is Encoding.UCS2


def test_spanish_single_shift() -> None:
    text = "Mañana iré a la reunión con José, ¿vale? Á é í ó ú " * 4
    p = preview(text)
    assert p.encoding is Encoding.GSM7 and p.single_shift == "spanish" and p.locking_shift is None
    m = encode_submit(TO, text, concat_ref=3)
    assert "".join(decode_pdu(x.pdu).text for x in m.parts) == text


@pytest.mark.parametrize(
    ("text", "language"),
    [("नमस्ते दुनिया, आप कैसे हैं? " * 6, "hindi"), ("வணக்கம் உலகம் " * 10, "tamil"),
     ("ہیلو دنیا آپ کیسے ہیں " * 8, "urdu"), ("Olá, você está bem? Ótimo! Ção " * 6, "portuguese")],
)
def test_other_national_languages(text: str, language: str) -> None:
    p = preview(text)
    assert p.encoding is Encoding.GSM7
    assert language in (p.locking_shift, p.single_shift)
    m = encode_submit(TO, text, concat_ref=9)
    assert "".join(decode_pdu(x.pdu).text for x in m.parts) == text


def test_default_gsm7_preferred_over_national() -> None:
    # 81 euro signs: 2 parts in default GSM 7-bit, 1 with the Turkish locking table, but a
    # phone without national tables would misread it; default-encodable text stays default.
    p = preview("€" * 81)
    assert (p.parts, p.locking_shift, p.single_shift) == (2, None, None)


def test_max_parts() -> None:
    with pytest.raises(CodecError, match="needs 2 parts, more than the maximum of 1"):
        preview("a" * 161, max_parts=1)
    with pytest.raises(CodecError, match="11 parts"):
        encode_submit(TO, "a" * 153 * 10 + "b")
    assert len(encode_submit(TO, "a" * 153 * 10, concat_ref=1).parts) == 10
    with pytest.raises(CodecError, match="max_parts"):
        preview("x", max_parts=0)


def test_preview_units() -> None:
    p = preview("a" * 200)
    assert (p.parts, p.units_used, p.units_per_part, p.units_left, p.characters) == (2, 200, 153, 106, 200)
    p = preview("Hi 😀")
    assert (p.encoding, p.units_used, p.units_left, p.units_per_part) == (Encoding.UCS2, 5, 65, 70)
    p = preview("€")
    assert (p.units_used, p.units_left) == (2, 158)


def test_smart_encoding_is_opt_in() -> None:
    text = "“Hello” – it’s…\u00a0done"
    assert preview(text).encoding is Encoding.UCS2
    p = preview(text, smart_encoding=True)
    assert p.encoding is Encoding.GSM7 and p.smart_replaced
    assert p.text == '"Hello" - it\'s... done'
    m = encode_submit(TO, text, smart_encoding=True)
    assert decode_pdu(m.parts[0].pdu).text == p.text


def test_smart_encoding_keeps_text_that_needs_ucs2_anyway() -> None:
    text = "“Привет”"
    p = preview(text, smart_encoding=True)
    assert p.encoding is Encoding.UCS2 and p.text == text and not p.smart_replaced


def test_forced_encodings() -> None:
    assert encode_submit(TO, "abc", encoding=Encoding.UCS2).encoding is Encoding.UCS2
    with pytest.raises(CodecError, match="GSM 7-bit"):
        encode_submit(TO, "ж", encoding=Encoding.GSM7)


def test_plan_data_chunks() -> None:
    assert [len(c) for c in plan_data(b"x" * 140)] == [140]
    assert [len(c) for c in plan_data(b"x" * 141)] == [134, 7]
    assert [len(c) for c in plan_data(b"x" * 141, concat_16bit=True)] == [133, 8]
