"""GSM 7-bit tables and septet packing (TS 23.038)."""

from __future__ import annotations

import unicodedata

import pytest

from gsmgw.errors import CodecError
from gsmgw.sms import gsm7
from gsmgw.sms._tables import NATIONAL_TABLES

# TS 23.038 §6.1.2.1.1 worked example: "hellohello" packs to these octets.
HELLOHELLO_PACKED = bytes.fromhex("E8329BFD4697D9EC37")


def test_ts23038_hellohello_packing_example() -> None:
    septets = gsm7.encode_septets("hellohello")
    assert gsm7.pack_septets(septets) == HELLOHELLO_PACKED
    assert gsm7.decode_septets(gsm7.unpack_septets(HELLOHELLO_PACKED, 10)) == "hellohello"


def test_default_alphabet_positions() -> None:
    t = gsm7.DEFAULT
    assert t.decode_locking[0x00] == "@"
    assert t.decode_locking[0x02] == "$"
    assert t.decode_locking[0x11] == "_"
    assert t.decode_locking[0x1B] == "\x1b"
    assert t.decode_locking[0x24] == "¤"
    assert t.decode_locking[0x40] == "¡"
    assert t.decode_locking[0x60] == "¿"
    assert t.decode_locking[0x7F] == "à"
    # every one of the 127 non-escape codes is assigned, and distinct
    chars = [c for i, c in enumerate(t.decode_locking) if i != 0x1B]
    assert None not in chars and len(set(chars)) == 127


@pytest.mark.parametrize(
    ("char", "code"),
    [("\f", 0x0A), ("^", 0x14), ("{", 0x28), ("}", 0x29), ("\\", 0x2F), ("[", 0x3C), ("~", 0x3D),
     ("]", 0x3E), ("|", 0x40), ("€", 0x65)],
)
def test_extension_table(char: str, code: int) -> None:
    assert gsm7.DEFAULT.decode_single[code] == char
    if char != "\f":  # the page break is decoded but never produced
        assert gsm7.encode_septets(char) == [0x1B, code]


def test_escape_costs_two_septets() -> None:
    assert gsm7.septet_length("€{}[]~\\^|") == 18
    assert gsm7.septet_length("abc") == 3


def test_unencodable_character_is_codec_error() -> None:
    with pytest.raises(CodecError, match="U\\+00E1"):
        gsm7.encode_septets("á")


def test_unknown_escape_shows_locking_character() -> None:
    # ESC + 'A' (0x41) is unassigned in the extension table: TS 23.038 says show 'A'.
    assert gsm7.decode_septets([0x1B, 0x41]) == "A"
    assert gsm7.decode_septets([0x41, 0x1B]) == "A"  # dangling escape dropped


@pytest.mark.parametrize("nli", sorted(NATIONAL_TABLES))
def test_national_tables_complete(nli: int) -> None:
    locking, single = NATIONAL_TABLES[nli]
    assert single[0x1B] == "\x1b"
    if locking is not None:
        assert locking[0x1B] == "\x1b"
        assert locking[0x0A] == "\n" and locking[0x0D] == "\r"
        assert locking[0x20] == " "
        assert [locking[0x30 + i] for i in range(10)] == list("0123456789")
        assert "".join(locking[0x61 + i] or "" for i in range(26)) == "abcdefghijklmnopqrstuvwxyz"


INDIC_DIGIT_ZERO = {4: 0x09E6, 5: 0x0AE6, 6: 0x0966, 7: 0x0CE6, 8: 0x0D66, 9: 0x0B66, 10: 0x0A66,
                    11: 0x0BE6, 12: 0x0C66, 13: 0x06F0}


@pytest.mark.parametrize("nli", sorted(INDIC_DIGIT_ZERO))
def test_indic_single_shift_digits_are_consecutive(nli: int) -> None:
    """Transcription check: TS 23.038 Annex A.2 puts each script's digits 0-3 at 0x1C..0x1F
    (0x19/0x1A hold the dandas) and 4-9 at 0x20..0x25."""
    single = NATIONAL_TABLES[nli][1]
    zero = INDIC_DIGIT_ZERO[nli]
    digit_codes = [0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25]
    if nli == 4:  # Bengali has no danda: its digits start at 0x19
        digit_codes = [0x19, 0x1A, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x21, 0x22, 0x23]
    if nli == 13:  # Urdu: 0x19/0x1A are Arabic number signs
        assert single[0x19] == "\u0600"
    got = [single[c] for c in digit_codes]
    assert got == [chr(zero + i) for i in range(10)]
    assert all(unicodedata.category(ch) == "Nd" for ch in got if ch)


@pytest.mark.parametrize("nli", [n for n in sorted(NATIONAL_TABLES) if NATIONAL_TABLES[n][0] is not None])
def test_national_locking_tables_round_trip(nli: int) -> None:
    t = gsm7.tables(nli, nli)
    text = "".join(ch for ch in t.decode_locking if ch and ch != "\x1b")
    septets = gsm7.encode_septets(text, t)
    assert gsm7.decode_septets(septets, t) == text


@pytest.mark.parametrize("fill", range(7))
def test_pack_unpack_with_fill_bits(fill: int) -> None:
    septets = list(range(0, 128, 3))
    packed = gsm7.pack_septets(septets, fill)
    assert len(packed) == (fill + 7 * len(septets) + 7) // 8
    assert gsm7.unpack_septets(packed, len(septets), fill) == septets


def test_unpack_too_short_is_codec_error() -> None:
    with pytest.raises(CodecError, match="too short"):
        gsm7.unpack_septets(b"\x00", 3)


@pytest.mark.parametrize(
    ("locking", "single", "text", "septets"),
    [
        # TS 23.038 A.3.1 Turkish locking shift: ı 0x07, ş 0x1D, ğ 0x0C, İ 0x40, ç 0x60, € 0x04
        (1, 0, "ışığİç€", [0x07, 0x1D, 0x07, 0x0C, 0x40, 0x60, 0x04]),
        # A.2.1 Turkish single shift: Ş ESC 0x53, ç ESC 0x63 (with the default locking table)
        (0, 1, "Şç", [0x1B, 0x53, 0x1B, 0x63]),
        # A.2.2 Spanish single shift: á ESC 0x61, Ó ESC 0x4F, ú ESC 0x75; ñ is in the default table
        (0, 2, "áÓúñ", [0x1B, 0x61, 0x1B, 0x4F, 0x1B, 0x75, 0x7D]),
        # A.3.3 Portuguese locking: ê 0x04, ã 0x7B, õ 0x7C, Ç 0x13, ` 0x7D
        (3, 0, "êãõÇ`", [0x04, 0x7B, 0x7C, 0x13, 0x7D]),
        # A.3.6 Hindi locking: क 0x15 (U+0915), ि 0x51 (U+093F), ० via single shift A.2.6 ESC 0x1C
        (6, 6, "कि०", [0x15, 0x51, 0x1B, 0x1C]),
    ],
)
def test_national_table_positions(locking: int, single: int, text: str, septets: list[int]) -> None:
    t = gsm7.tables(locking, single)
    assert gsm7.encode_septets(text, t) == septets
    assert gsm7.decode_septets(septets, t) == text
