"""Whether two renderings of a phone number are the same subscriber (pure; phonenumbers).

Numbers reach the gateway in several renderings: the API stores E.164
("+447700900123"); a status report or an inbound SMS carries the address as the
network wrote it, international ("+447700900123"), national ("07700900123") or
international without the plus ("447700900123", TON unknown). Two renderings are
the same number when they have the same E.164 form:

- a rendering with a "+" is read on its own;
- a national rendering is read in the configured default region (``region``);
- one that cannot be placed that way (no region, or not a possible number there)
  is compared with the other number as its international digits without the plus,
  or read in the other number's country: a network writes a national address in
  its own country's format, so "07700900123" in a report about "+447700900123"
  is that number even when the region is unset.

Matching by the last digits, as before, made an 8-digit number equal to the same
8 digits in any country; different country codes never match here.
"""

from __future__ import annotations

import phonenumbers

# Characters people put in numbers that carry no digits.
_PUNCTUATION = str.maketrans("", "", " -.()/\t")
# The opt-out table indexes numbers by their last digits (``number_key``).
KEY_DIGITS = 8
# The shortest national significant number of any region in phonenumbers' metadata
# (Tristan da Cunha's, 4 digits; tests/test_numbers.py checks it against the metadata).
SUFFIX_DIGITS = 4


def _digits(raw: str) -> str:
    if raw[1:].isdigit() and (raw[0] == "+" or raw[0].isdigit()):
        return raw[1:] if raw[0] == "+" else raw  # E.164 or bare digits: the common cases, fast
    return "".join(c for c in raw if c.isdigit())


def _parse(raw: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    """A possible number in a known country, else None."""
    try:
        num = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    # Possible, not "valid": test ranges (+44 7700 900xxx) and fresh number plans
    # are not in phonenumbers' validity tables, and the API accepts them too.
    if phonenumbers.region_code_for_country_code(num.country_code or 0) == "ZZ":
        return None
    if not phonenumbers.is_possible_number(num):
        return None
    return num


def _e164(num: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def to_e164(raw: str, region: str | None = None) -> str | None:
    """The E.164 form of ``raw``: international as written, national read in
    ``region``; None when it cannot be placed (short code, alphanumeric sender,
    national rendering without a region, impossible length)."""
    raw = raw.strip().translate(_PUNCTUATION)
    if not raw or not _digits(raw):
        return None
    if raw.startswith("+"):
        num = _parse(raw, None)
    elif region:
        num = _parse(raw, region.upper())
    else:
        return None
    return _e164(num) if num is not None else None


def _guesses(raw: str, known: str) -> set[str]:
    """E.164 forms ``raw`` may stand for, next to the placed number ``known``."""
    out: set[str] = set()
    digits = _digits(raw)
    if not digits:
        return out
    if digits.startswith("00"):
        out.add("+" + digits[2:])  # the international prefix of most countries
    elif not digits.startswith("0"):
        out.add("+" + digits)  # international without the plus
    known_num = _parse(known, None)
    if known_num is not None:
        country = phonenumbers.region_code_for_country_code(known_num.country_code)
        num = _parse(raw.strip().translate(_PUNCTUATION), country)
        if num is not None:
            out.add(_e164(num))
    return out


def _plain(raw: str) -> bool:
    """Digits only, or "+" and digits: how a PDU's address and a stored E.164 number read."""
    return raw[1:].isdigit() and (raw[0] == "+" or raw[0].isdigit())


def same_number(a: str, b: str, region: str | None = None) -> bool:
    """Whether ``a`` and ``b`` are renderings of the same number (see the module doc)."""
    if a == b:
        return True
    if a.startswith("+") and b.startswith("+") and _digits(a) == _digits(b):
        return True  # the same international digits, punctuated differently
    if _plain(a) and _plain(b):
        da, db = _digits(a), _digits(b)
        # Every rendering of a number ends in its national significant number (the
        # prefixes before it vary: "+", country code, "00", trunk "0"), and no
        # numbering plan has one shorter than SUFFIX_DIGITS. Different last digits
        # are different numbers, without parsing: a status report is checked against
        # every part sent with its TP-MR in the window (issue 17).
        k = min(SUFFIX_DIGITS, len(da), len(db))
        if da[-k:] != db[-k:]:
            return False
    ea, eb = to_e164(a, region), to_e164(b, region)
    if ea is not None and eb is not None:
        return ea == eb
    if ea is not None:
        return ea in _guesses(b, ea)
    if eb is not None:
        return eb in _guesses(a, eb)
    # Neither can be placed (two national renderings and no region, or short
    # codes): the same significant digits.
    da, db = _digits(a).lstrip("0"), _digits(b).lstrip("0")
    return bool(da) and da == db


def number_key(number: str) -> str:
    """The opt-out table's index value for this rendering: its last 8 digits.

    Renderings of a number whose national significant number has 8 or more digits
    all share it; ``lookup_keys`` also covers the shorter ones. It only narrows a
    search: equality is ``same_number``'s.
    """
    digits = _digits(number)
    return digits[-KEY_DIGITS:] if digits else number[-KEY_DIGITS:]


def lookup_keys(number: str, region: str | None = None) -> set[str]:
    """Every ``number_key`` another rendering of ``number`` may have been stored under."""
    digits = _digits(number)
    keys = {digits[-KEY_DIGITS:] if digits else number[-KEY_DIGITS:]}
    if len(digits) >= 11 and digits[0] != "0":
        # Country code (3 digits at most) + 8 or more: every rendering ends in these 8.
        return keys
    e164 = to_e164(number, region)
    if e164 is None:
        return keys
    num = phonenumbers.parse(e164, None)
    nsn = phonenumbers.national_significant_number(num)
    national = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)
    for rendering in (e164, nsn, national):
        keys.add(number_key(rendering))
    return keys


def number_parts(e164: str) -> tuple[str, str, str]:
    """(country code, national significant number, national digits as dialled at
    home) of an E.164 number: "+33612345678" -> ("33", "612345678", "0612345678").
    What an erasure looks for in free text (gsmgw.store.erasure)."""
    num = phonenumbers.parse(e164, None)
    nsn = phonenumbers.national_significant_number(num)
    national = _digits(phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL))
    return str(num.country_code), nsn, national


__all__ = ["KEY_DIGITS", "lookup_keys", "number_key", "number_parts", "same_number", "to_e164"]
