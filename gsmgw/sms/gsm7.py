"""GSM 7-bit alphabets (3GPP TS 23.038 §6.2.1 and Annex A) and septet packing.

A message is written with one *locking shift* table (the base alphabet; 0 is the
default GSM 03.38 alphabet) and one *single shift* table (reached through the
escape 0x1B; 0 is the default extension table). National tables are announced in
the UDH (IEI 0x25 locking, 0x24 single shift, TS 23.040 §9.2.3.24.15/16).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gsmgw.errors import CodecError
from gsmgw.sms._tables import LANGUAGE_NAMES, NATIONAL_TABLES

ESC = 0x1B


class NationalLanguage(enum.IntEnum):
    """National language identifiers, TS 23.038 §6.2.1.2.4."""

    DEFAULT = 0
    TURKISH = 1
    SPANISH = 2
    PORTUGUESE = 3
    BENGALI = 4
    GUJARATI = 5
    HINDI = 6
    KANNADA = 7
    MALAYALAM = 8
    ORIYA = 9
    PUNJABI = 10
    TAMIL = 11
    TELUGU = 12
    URDU = 13


def language_name(nli: int) -> str:
    return LANGUAGE_NAMES.get(nli, f"reserved-{nli}")


@dataclass(frozen=True, slots=True)
class Gsm7Tables:
    """Encode/decode maps for one (locking, single shift) pair."""

    locking: int
    single: int
    decode_locking: tuple[str | None, ...]
    decode_single: tuple[str | None, ...]
    encode_map: dict[str, tuple[int, ...]]  # char -> septets (1 or 2, with ESC)

    def cost(self, ch: str) -> int | None:
        seq = self.encode_map.get(ch)
        return None if seq is None else len(seq)


def _build(locking: int, single: int) -> Gsm7Tables:
    lock_table = NATIONAL_TABLES[locking][0]
    if lock_table is None:
        raise CodecError(f"{language_name(locking)} has no locking shift table")
    single_table = NATIONAL_TABLES[single][1]
    enc: dict[str, tuple[int, ...]] = {}
    # Escaped characters first, so that a character present in both tables
    # takes the cheaper single septet below.
    for code, ch in enumerate(single_table):
        if ch is None or code in (ESC, 0x0A, 0x0D):  # ESC, page break, CR2 never encoded
            continue
        enc.setdefault(ch, (ESC, code))
    for code, ch in enumerate(lock_table):
        if ch is None or code == ESC:
            continue
        if ch not in enc or len(enc[ch]) == 2:
            enc[ch] = (code,)
    return Gsm7Tables(locking, single, lock_table, single_table, enc)


_CACHE: dict[tuple[int, int], Gsm7Tables] = {}


def tables(locking: int = 0, single: int = 0) -> Gsm7Tables:
    """The maps for a (locking, single shift) pair; unknown NLIs fall back to default."""
    if locking not in NATIONAL_TABLES or NATIONAL_TABLES[locking][0] is None:
        locking = 0
    if single not in NATIONAL_TABLES:
        single = 0
    key = (locking, single)
    found = _CACHE.get(key)
    if found is None:
        found = _CACHE[key] = _build(locking, single)
    return found


DEFAULT = tables(0, 0)
LOCKING_LANGUAGES: tuple[int, ...] = tuple(k for k, v in NATIONAL_TABLES.items() if v[0] is not None)
SINGLE_LANGUAGES: tuple[int, ...] = tuple(NATIONAL_TABLES)


def is_gsm7(text: str, t: Gsm7Tables = DEFAULT) -> bool:
    m = t.encode_map
    return all(ch in m for ch in text)


def encode_septets(text: str, t: Gsm7Tables = DEFAULT) -> list[int]:
    """Text -> septet values (escape sequences included). CodecError if a char is missing."""
    m = t.encode_map
    out: list[int] = []
    for ch in text:
        seq = m.get(ch)
        if seq is None:
            raise CodecError(
                f"character {ch!r} (U+{ord(ch):04X}) is not in the GSM 7-bit alphabet "
                f"(locking={language_name(t.locking)}, single shift={language_name(t.single)})"
            )
        out.extend(seq)
    return out


def septet_length(text: str, t: Gsm7Tables = DEFAULT) -> int:
    m = t.encode_map
    try:
        return sum(len(m[ch]) for ch in text)
    except KeyError as exc:
        raise CodecError(f"character {exc.args[0]!r} is not in the GSM 7-bit alphabet") from None


def decode_septets(septets: Iterable[int], t: Gsm7Tables = DEFAULT) -> str:
    """Septets -> text. Unknown escaped codes show the locking-table character
    (TS 23.038 §6.2.1.1); unassigned codes become U+FFFD; a trailing ESC is dropped."""
    lock, single = t.decode_locking, t.decode_single
    out: list[str] = []
    escaped = False
    for s in septets:
        if escaped:
            escaped = False
            if s == ESC:
                out.append(" ")  # reserved for a further extension table: show a space
                continue
            ch = single[s]
            if ch is None or s in (0x0D,):
                ch = lock[s]
            out.append(ch if ch is not None else "\ufffd")
        elif s == ESC:
            escaped = True
        else:
            ch = lock[s]
            out.append(ch if ch is not None else "\ufffd")
    return "".join(out)


def pack_septets(septets: Sequence[int], fill_bits: int = 0) -> bytes:
    """Pack septets LSB first (TS 23.038 §6.1.2.1.1), after ``fill_bits`` zero bits."""
    value = 0
    shift = fill_bits
    for s in septets:
        value |= (s & 0x7F) << shift
        shift += 7
    return value.to_bytes((shift + 7) // 8, "little")


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> list[int]:
    """Unpack exactly ``count`` septets that start after ``fill_bits`` bits of ``data``."""
    needed_bits = fill_bits + 7 * count
    if needed_bits > 8 * len(data):
        raise CodecError(
            f"user data too short: {count} septets need {(needed_bits + 7) // 8} octets, got {len(data)}"
        )
    value = int.from_bytes(data, "little")
    value >>= fill_bits
    return [(value >> (7 * i)) & 0x7F for i in range(count)]
