"""USSD string encoding for AT+CUSD and decoding of the +CUSD answer.

Modules disagree on what ``<str>`` holds (TS 27.007 §7.15 says it depends on
``<dcs>`` and on AT+CSCS); seen in the wild:

* plain text in the TE character set (SIM800, EC25 with AT+CSCS="GSM"/"IRA");
* packed GSM 7-bit as hex, DCS 15 (Huawei E1550/E3372 sticks);
* UCS2 as hex, DCS 72 (0x48) (operators answering in Cyrillic/Arabic; any module).

Decoding uses the project codec (gsmgw.sms.gsm7 / ucs2).
"""

from __future__ import annotations

import re

from gsmgw.sms.gsm7 import decode_septets, encode_septets, pack_septets, unpack_septets

_HEXRE = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")


def dcs_alphabet(dcs: int | None) -> str:
    """'gsm7' / 'ucs2' / '8bit' for a CBS data coding scheme (TS 23.038 §5)."""
    if dcs is None:
        return "gsm7"
    group = dcs >> 4
    if group == 0x0 or group == 0x2 or group == 0x3:
        return "gsm7"
    if group == 0x1:
        return "ucs2" if dcs == 0x11 else "gsm7"
    if group in (0x4, 0x5, 0x6, 0x7, 0x9):  # general data coding
        return {0: "gsm7", 1: "8bit", 2: "ucs2", 3: "gsm7"}[(dcs >> 2) & 0x3]
    if group == 0xF:
        return "8bit" if dcs & 0x04 else "gsm7"
    return "gsm7"


def encode_request(code: str, *, packed_hex: bool) -> str:
    if not packed_hex:
        return code
    septets = encode_septets(code)
    return pack_septets(septets).hex().upper()


def _unpack_gsm7_hex(s: str) -> str:
    data = bytes.fromhex(s)
    count = len(data) * 8 // 7
    text = decode_septets(unpack_septets(data, count))
    # 7 spare bits at the end are filled with CR (TS 23.038 §6.1.2.3.1), not "@".
    if text.endswith("\r"):
        text = text[:-1]
    return text


def _ucs2_hex(s: str) -> str | None:
    try:
        # Some firmware ends the string with a NUL and leaves junk after it (Telit
        # HE910-D, gammu tests/at-ussd/issue377-HE910-D.dump).
        return bytes.fromhex(s).decode("utf-16-be").split("\x00", 1)[0]
    except (ValueError, UnicodeDecodeError):
        return None


def _looks_like_ucs2_hex(s: str) -> bool:
    """Hex that is really UCS2 text although <dcs> says GSM 7-bit: the module's TE
    character set (AT+CSCS="UCS2") applies (Quectel M35, gammu tests/at-ussd/
    Uissue358-Quectel_M35.dump). Latin/Cyrillic/Arabic text has a small high octet in
    most code units; short all-digit answers ("1234") are left alone."""
    if len(s) < 16 or len(s) % 4:
        return False
    units = [s[i : i + 4] for i in range(0, len(s), 4)]
    return sum(u[:2] in ("00", "04", "06") for u in units) * 4 >= len(units) * 3


def decode_response(text: str, dcs: int | None, *, packed_hex: bool) -> str:
    """Decode what the module put in ``+CUSD: <m>,"<str>",<dcs>``."""
    alphabet = dcs_alphabet(dcs)
    s = text.strip()
    if _HEXRE.match(s):
        if alphabet == "ucs2":
            if dcs == 0x11 and len(s) >= 4:
                # TS 23.038 §5 "UCS2; message preceded by language indication": two
                # packed 7-bit characters ("ar") padded to two octets come first.
                s = s[4:]
            decoded = _ucs2_hex(s)
            return text if decoded is None else decoded
        if alphabet == "gsm7" and packed_hex:
            try:
                return _unpack_gsm7_hex(s)
            except (ValueError, KeyError, IndexError):
                return text
        if alphabet == "gsm7" and _looks_like_ucs2_hex(s):
            decoded = _ucs2_hex(s)
            return text if decoded is None else decoded
    return text
