"""Address fields (TS 23.040 §9.1.2.5): TP-DA/TP-OA/TP-RA and the SMSC (RP) address."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gsmgw.errors import CodecError
from gsmgw.sms import gsm7

TOA_INTERNATIONAL = 0x91  # TON 001 international, NPI 0001 ISDN/E.164
TOA_UNKNOWN = 0x81  # TON 000 unknown, NPI 0001
TOA_ALPHANUMERIC = 0xD0  # TON 101 alphanumeric, NPI 0000

_INTERNATIONAL_RE = re.compile(r"\+[0-9]{1,20}")
_DIGITS_RE = re.compile(r"[0-9*#]{1,20}")
_BCD_DIGITS = "0123456789*#abc"  # 0xA '*', 0xB '#', 0xC-0xE 'a'-'c' (TS 23.040 §9.1.2.3)


@dataclass(frozen=True, slots=True)
class Address:
    number: str  # "+447700900123", "07700900123", or alphanumeric text
    toa: int  # type-of-address octet

    @property
    def ton(self) -> int:
        return (self.toa >> 4) & 0x07

    @property
    def npi(self) -> int:
        return self.toa & 0x0F

    @property
    def alphanumeric(self) -> bool:
        return self.ton == 5


def _bcd(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    out = bytearray()
    for i in range(0, len(digits), 2):
        lo, hi = digits[i], digits[i + 1]
        out.append((_nibble(hi) << 4) | _nibble(lo))
    return bytes(out)


def _nibble(d: str) -> int:
    if d == "F":
        return 0xF
    return _BCD_DIGITS.index(d)


def parse_number(number: str, *, allow_alphanumeric: bool = False) -> Address:
    """Validate caller input: ``+`` and 1-20 digits -> international; digits (and * #)
    only -> unknown TON (national/short code); alphanumeric only when allowed (≤ 11
    GSM characters). Anything else (spaces, dashes, control characters) -> CodecError."""
    if not isinstance(number, str):
        raise CodecError(f"address must be a string, got {type(number).__name__}")
    if _INTERNATIONAL_RE.fullmatch(number):
        return Address(number, TOA_INTERNATIONAL)
    if _DIGITS_RE.fullmatch(number):
        return Address(number, TOA_UNKNOWN)
    if allow_alphanumeric:
        if not 1 <= len(number) <= 11:
            raise CodecError(f"alphanumeric address must be 1-11 characters, got {len(number)}")
        if not gsm7.is_gsm7(number) or any(ord(c) < 0x20 for c in number):
            raise CodecError(f"alphanumeric address {number!r} has characters outside GSM 7-bit")
        return Address(number, TOA_ALPHANUMERIC)
    raise CodecError(
        f"invalid phone number {number!r}: expected '+' and 1-20 digits (E.164) or digits only, "
        "without spaces or other characters"
    )


def encode_address(addr: Address) -> bytes:
    """TP address field: length in semi-octets (useful digits), TOA, BCD or packed GSM."""
    if addr.alphanumeric:
        packed = gsm7.pack_septets(gsm7.encode_septets(addr.number))
        semi = (len(addr.number) * 7 + 3) // 4
        return bytes([semi, addr.toa]) + packed
    digits = addr.number.lstrip("+")
    return bytes([len(digits), addr.toa]) + _bcd(digits)


def encode_smsc(smsc: str | None) -> bytes:
    """RP SMSC address field as prefixed to a PDU: length in octets (TOA + BCD); ``00`` = none."""
    if smsc is None or smsc == "":
        return b"\x00"
    addr = parse_number(smsc)
    digits = addr.number.lstrip("+")
    body = bytes([addr.toa]) + _bcd(digits)
    return bytes([len(body)]) + body


def _decode_bcd(data: bytes, ndigits: int | None) -> str:
    out = []
    for b in data:
        for nib in (b & 0x0F, b >> 4):
            if nib == 0xF:
                continue
            out.append(_BCD_DIGITS[nib])
    s = "".join(out)
    return s if ndigits is None else s[:ndigits]


def _with_plus(digits: str, toa: int) -> str:
    if (toa >> 4) & 0x07 == 1 and digits and not digits.startswith("+"):
        return "+" + digits
    return digits


def decode_address(buf: bytes, pos: int, what: str) -> tuple[Address, int]:
    """Decode a TP address at ``pos``; returns (address, next position)."""
    if pos + 2 > len(buf):
        raise CodecError(f"PDU truncated in {what} address header at octet {pos}")
    semi = buf[pos]
    toa = buf[pos + 1]
    if semi > 20:
        raise CodecError(f"{what} address length {semi} semi-octets exceeds the maximum 20")
    nbytes = (semi + 1) // 2
    end = pos + 2 + nbytes
    if end > len(buf):
        raise CodecError(f"PDU truncated in {what} address (needs {nbytes} octets)")
    body = buf[pos + 2:end]
    if (toa >> 4) & 0x07 == 5:
        nsept = (semi * 4) // 7
        text = gsm7.decode_septets(gsm7.unpack_septets(body, nsept))
        return Address(text, toa), end
    return Address(_with_plus(_decode_bcd(body, semi), toa), toa), end


def decode_smsc(buf: bytes) -> tuple[str | None, int]:
    """Decode the leading SMSC field; returns (number or None, TPDU start)."""
    if not buf:
        raise CodecError("empty PDU")
    n = buf[0]
    if n == 0:
        return None, 1
    if n > 11 or 1 + n > len(buf):
        raise CodecError(f"SMSC field length {n} is invalid for a {len(buf)}-octet PDU")
    toa = buf[1]
    digits = _decode_bcd(buf[2:1 + n], None)
    return (_with_plus(digits, toa) or None), 1 + n
