"""Pure helpers of inbound processing: opt-out keywords, dedup keys, part joining, balance.

No I/O here; everything is tested with tables of inputs.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from gsmgw.sms import Deliver
from gsmgw.sms.ucs2 import decode_ucs2

_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)


def normalise_keyword(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form: "  Arrêt ! " -> "arret"."""
    s = unicodedata.normalize("NFKD", text.casefold())
    s = "".join(c for c in s if not unicodedata.combining(c))
    s = _PUNCT.sub(" ", s)
    return " ".join(s.split())


class KeywordMatcher:
    """STOP/START keywords, matched on the whole message (``"Stop."``, ``"ARRÊT"``),
    never on a word inside a sentence ("please don't stop" is not an opt-out)."""

    def __init__(self, stop: Iterable[str], start: Iterable[str]) -> None:
        self.stop = frozenset(k for k in (normalise_keyword(s) for s in stop) if k)
        self.start = frozenset(k for k in (normalise_keyword(s) for s in start) if k) - self.stop

    def classify(self, text: str) -> tuple[str, str] | None:
        if len(text) > 64:
            return None
        key = normalise_keyword(text)
        if key in self.stop:
            return ("stop", key)
        if key in self.start:
            return ("start", key)
        return None


def part_dedup_key(receiver: str, d: Deliver) -> str:
    """sha256 over the receiving SIM, originator, SCTS, PID, DCS and TP-UD (UDH included).

    The same stored SMS read twice (+CMTI and sweep, or after a crash between
    commit and AT+CMGD) gives the same key; two different parts never do, since
    the SC stamps each with its own SCTS and the UDH carries reference/sequence.
    """
    h = hashlib.sha256()
    for field in (receiver, d.originator, d.scts.isoformat(), str(d.tp_pid), str(d.tp_dcs),
                  d.ud_raw.hex()):
        h.update(field.encode())
        h.update(b"\x00")
    return h.hexdigest()


def join_parts(parts: Sequence[Any]) -> str:
    """Text of parts in sequence order (rows with .encoding, .text, .user_data hex).

    UCS-2 parts are joined as octets before decoding, so a surrogate pair split
    across two parts by a foreign encoder still gives one character.
    """
    if parts and all(p.encoding == "ucs2" for p in parts):
        return decode_ucs2(b"".join(bytes.fromhex(p.user_data) for p in parts))
    return "".join(p.text for p in parts)


def parse_balance(text: str, pattern: str) -> float | None:
    """The balance in a USSD answer: group 1 of ``pattern`` (or the whole match);
    a decimal comma counts as a point. None if the pattern does not match."""
    m = re.search(pattern, text)
    if m is None:
        return None
    raw = m.group(1) if m.groups() else m.group(0)
    raw = raw.replace(" ", "").replace("\u00a0", "")
    if "," in raw and "." in raw:
        raw = raw.replace(",", "")  # 1,234.56
    raw = raw.replace(",", ".")
    try:
        return float(raw)
    except ValueError:
        return None
