"""Choosing an encoding and splitting text into the fewest parts.

Units: septets for GSM 7-bit, UTF-16 code units for UCS-2, octets for 8-bit data.
A part never ends inside an escape sequence or a surrogate pair, and, where the
part is big enough, never inside a grapheme cluster such as ``👋🏽`` or a flag.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass

from gsmgw.domain import Encoding
from gsmgw.errors import CodecError
from gsmgw.sms import gsm7
from gsmgw.sms.ucs2 import ucs2_units

TPDU_UD_OCTETS = 140  # maximum TP-UD length (TS 23.040 §9.2.3.24)
CONCAT8_IE_OCTETS = 5  # IEI 00, length 3, ref, total, seq
CONCAT16_IE_OCTETS = 6  # IEI 08, length 4, ref(2), total, seq
SHIFT_IE_OCTETS = 3  # IEI 24/25, length 1, NLI
DEFAULT_MAX_PARTS = 10
MAX_PARTS_LIMIT = 255  # TP-UD concatenation "total" is one octet


def shift_ie_octets(locking: int, single: int) -> int:
    return SHIFT_IE_OCTETS * ((locking != 0) + (single != 0))


def udh_octets(*, multipart: bool, concat_16bit: bool, extra_ie_octets: int) -> int:
    """Length of the whole UDH including its UDHL octet; 0 when there is none."""
    ies = extra_ie_octets + ((CONCAT16_IE_OCTETS if concat_16bit else CONCAT8_IE_OCTETS) if multipart else 0)
    return 0 if ies == 0 else 1 + ies


def capacity(encoding: Encoding, *, multipart: bool, concat_16bit: bool = False,
             extra_ie_octets: int = 0) -> int:
    """Units one part can carry: 160/153/152 septets, 70/67/66 UCS-2 units, 140/134/133 octets
    (fewer when shift-table IEs are present)."""
    udh = udh_octets(multipart=multipart, concat_16bit=concat_16bit, extra_ie_octets=extra_ie_octets)
    room = TPDU_UD_OCTETS - udh
    if encoding is Encoding.GSM7:
        return (room * 8) // 7
    if encoding is Encoding.UCS2:
        return room // 2
    return room


# --- grapheme clusters (a practical subset of UAX #29) ---------------------------

_RI_FIRST, _RI_LAST = 0x1F1E6, 0x1F1FF
_ZWJ = "\u200d"


def _is_extend(ch: str) -> bool:
    cp = ord(ch)
    if cp < 0x300:  # nothing below the combining diacritical marks block extends a cluster
        return False
    if ch == _ZWJ or 0xFE00 <= cp <= 0xFE0F or 0xE0100 <= cp <= 0xE01EF:
        return True
    if 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F or cp == 0x20E3:
        return True
    return unicodedata.category(ch) in ("Mn", "Me", "Mc")


def grapheme_clusters(text: str) -> list[str]:
    """Split text into user-perceived characters (approximation of UAX #29 extended
    grapheme clusters: CR LF, combining marks, ZWJ sequences, modifiers, flags, tags)."""
    out: list[str] = []
    if "\r\n" not in text and not any(
        _is_extend(ch) or _RI_FIRST <= ord(ch) <= _RI_LAST for ch in set(text)
    ):
        return list(text)  # fast path: no character here can join a cluster
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        if text[i] == "\r" and j < n and text[j] == "\n":
            out.append("\r\n")
            i = j + 1
            continue
        if _RI_FIRST <= ord(text[i]) <= _RI_LAST and j < n and _RI_FIRST <= ord(text[j]) <= _RI_LAST:
            j += 1
        while j < n:
            ch = text[j]
            if _is_extend(ch):
                j += 1
            elif text[j - 1] == _ZWJ and ord(ch) > 0x2000:
                j += 1  # emoji ZWJ sequence: the joined pictograph stays with the cluster
            else:
                break
        out.append(text[i:j])
        i = j
    return out


# --- splitting -------------------------------------------------------------------


def _split(atoms: list[tuple[str, int]], cap: int) -> list[tuple[str, int]]:
    """Greedy packing of (text, cost) atoms into parts of at most ``cap`` units.
    Greedy is optimal for in-order packing; an atom bigger than a part is broken
    at code point boundaries (which never splits escapes or surrogate pairs)."""
    parts: list[tuple[str, int]] = []
    cur: list[str] = []
    used = 0
    for text, cost in atoms:
        if used + cost > cap and cur:
            parts.append(("".join(cur), used))
            cur, used = [], 0
        if cost > cap:  # a giant cluster: fall back to code points
            for ch, c in text:
                if used + c > cap and cur:
                    parts.append(("".join(cur), used))
                    cur, used = [], 0
                cur.append(ch)
                used += c
            continue
        cur.append(text)
        used += cost
    if cur or not parts:
        parts.append(("".join(cur), used))
    return parts


@dataclass(frozen=True, slots=True)
class Plan:
    """How a text will be sent."""

    encoding: Encoding
    chunks: tuple[str, ...]  # text of each part
    units: tuple[int, ...]  # units used by each part
    units_per_part: int
    locking: int = 0
    single: int = 0
    concat_16bit: bool = False

    @property
    def parts(self) -> int:
        return len(self.chunks)

    @property
    def units_used(self) -> int:
        return sum(self.units)

    @property
    def units_left(self) -> int:
        return self.units_per_part - self.units[-1]


def _plan_gsm7(text: str, t: gsm7.Gsm7Tables, concat_16bit: bool, user_ie: int = 0) -> Plan:
    extra = shift_ie_octets(t.locking, t.single) + user_ie
    m = t.encode_map
    total = sum(map(len, map(m.__getitem__, text)))
    single_cap = capacity(Encoding.GSM7, multipart=False, extra_ie_octets=extra)
    if total <= single_cap:
        return Plan(Encoding.GSM7, (text,), (total,), single_cap, t.locking, t.single, concat_16bit)
    clusters = grapheme_clusters(text)
    costs = [len(m[c]) if len(c) == 1 else sum(len(m[ch]) for ch in c) for c in clusters]
    cap = capacity(Encoding.GSM7, multipart=True, concat_16bit=concat_16bit, extra_ie_octets=extra)
    atoms = []
    for c, cost in zip(clusters, costs, strict=True):
        if cost > cap:
            atoms.append(([(ch, len(m[ch])) for ch in c], cost))  # type: ignore[misc]
        else:
            atoms.append((c, cost))
    parts = _split(atoms, cap)  # type: ignore[arg-type]
    return Plan(Encoding.GSM7, tuple(p for p, _ in parts), tuple(u for _, u in parts), cap,
                t.locking, t.single, concat_16bit)


def _plan_ucs2(text: str, concat_16bit: bool, user_ie: int = 0) -> Plan:
    total = ucs2_units(text)
    single_cap = capacity(Encoding.UCS2, multipart=False, extra_ie_octets=user_ie)
    if total <= single_cap:
        return Plan(Encoding.UCS2, (text,), (total,), single_cap, concat_16bit=concat_16bit)
    clusters = grapheme_clusters(text)
    costs = [ucs2_units(c) for c in clusters]
    cap = capacity(Encoding.UCS2, multipart=True, concat_16bit=concat_16bit, extra_ie_octets=user_ie)
    atoms = []
    for c, cost in zip(clusters, costs, strict=True):
        if cost > cap:
            atoms.append(([(ch, ucs2_units(ch)) for ch in c], cost))
        else:
            atoms.append((c, cost))
    parts = _split(atoms, cap)  # type: ignore[arg-type]
    return Plan(Encoding.UCS2, tuple(p for p, _ in parts), tuple(u for _, u in parts), cap,
                concat_16bit=concat_16bit)


def _gsm7_candidates(text: str, user_ie: int = 0) -> list[gsm7.Gsm7Tables]:
    """Table pairs able to encode every character of the text, cheapest guess first."""
    chars = Counter(text)
    found: list[tuple[int, int, int, gsm7.Gsm7Tables]] = []
    for locking in gsm7.LOCKING_LANGUAGES:
        for single in gsm7.SINGLE_LANGUAGES:
            t = gsm7.tables(locking, single)
            m = t.encode_map
            if not all(ch in m for ch in chars):
                continue
            septets = sum(n * len(m[ch]) for ch, n in chars.items())
            extra = shift_ie_octets(locking, single) + user_ie
            cap1 = capacity(Encoding.GSM7, multipart=False, extra_ie_octets=extra)
            capn = capacity(Encoding.GSM7, multipart=True, extra_ie_octets=extra)
            estimate = 1 if septets <= cap1 else -(-septets // capn)
            found.append((estimate, extra, septets, t))
    found.sort(key=lambda x: (x[0], x[1], x[2], x[3].locking, x[3].single))
    return [x[3] for x in found]


def plan_text(text: str, *, encoding: Encoding | None = None, concat_16bit: bool = False,
              national_tables: bool = True, user_ie_octets: int = 0) -> Plan:
    """Pick the encoding (and national tables) giving the fewest parts, and split.

    Default GSM 7-bit is used whenever it can encode the text; otherwise national
    shift tables when they need strictly fewer parts than UCS-2; otherwise UCS-2.
    """
    if encoding is Encoding.BINARY:
        raise CodecError("8-bit encoding needs data=bytes, not text")
    if encoding is Encoding.UCS2:
        return _plan_ucs2(text, concat_16bit, user_ie_octets)
    if gsm7.is_gsm7(text):
        # Text the default alphabet can carry never uses national tables: a phone
        # without them would show the wrong characters, and UCS-2 is not in play.
        return _plan_gsm7(text, gsm7.DEFAULT, concat_16bit, user_ie_octets)
    best: Plan | None = None
    if national_tables:
        for t in _gsm7_candidates(text, user_ie_octets):
            if best is not None and best.parts == 1:
                break
            if best is not None:
                extra = shift_ie_octets(t.locking, t.single) + user_ie_octets
                capn = capacity(Encoding.GSM7, multipart=True, concat_16bit=concat_16bit,
                                extra_ie_octets=extra)
                if -(-gsm7.septet_length(text, t) // capn) >= best.parts:
                    continue  # cannot beat the best plan found so far
            plan = _plan_gsm7(text, t, concat_16bit, user_ie_octets)
            if best is None or plan.parts < best.parts:
                best = plan
    if encoding is Encoding.GSM7:
        if best is None:
            bad = next(ch for ch in text if ch not in gsm7.DEFAULT.encode_map)
            raise CodecError(f"character {bad!r} (U+{ord(bad):04X}) cannot be sent in GSM 7-bit")
        return best
    ucs2 = _plan_ucs2(text, concat_16bit, user_ie_octets)
    if best is not None and best.parts < ucs2.parts:
        return best
    return ucs2


def plan_data(data: bytes, *, concat_16bit: bool = False, user_ie_octets: int = 0) -> list[bytes]:
    """Split 8-bit data into 140-octet (single) or 134/133-octet (concatenated) chunks
    (fewer with caller IEs such as ports)."""
    single = capacity(Encoding.BINARY, multipart=False, extra_ie_octets=user_ie_octets)
    if len(data) <= single:
        return [data]
    cap = capacity(Encoding.BINARY, multipart=True, concat_16bit=concat_16bit, extra_ie_octets=user_ie_octets)
    return [data[i:i + cap] for i in range(0, len(data), cap)]
