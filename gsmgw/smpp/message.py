"""What a submit_sm means, and what a deliver_sm says: text, concatenation, times, receipts.

Pure code: no I/O. Errors are :class:`gsmgw.errors.SmppError` with the status to
answer with.

- **Text**: data_coding 0 is the "SMSC default alphabet"; here that is GSM 03.38
  unpacked (one septet per octet, 0x1B escapes; what Kannel and smpplib send), or
  Latin-1 / ASCII by config. 1 = IA5 (ASCII), 3 = Latin-1, 8 = UCS-2 (UTF-16BE,
  surrogate pairs allowed). 0x10 / 0xF0 (class 0) and 0x18 (UCS-2, class 0) are
  flash messages. Binary codings (2, 4, 0xF4, ...) are refused: the gateway sends text.
- **Concatenation**: a UDH (esm_class 0x40) with the 8- or 16-bit concatenation
  element, or the sar_* TLVs. Any other UDH element (ports, language shifts...)
  cannot be carried through the gateway and is refused.
- **Times**: ``YYMMDDhhmmsstnnp`` absolute (p = + or -, nn quarter hours from UTC)
  or relative (p = R), section 7.1.1.
- **Receipts**: the Appendix B text.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from gsmgw.errors import SmppError
from gsmgw.smpp.constants import ESM_UDHI, MessageStateCode, Status, Tag
from gsmgw.smpp.pdu import Pdu
from gsmgw.sms.gsm7 import DEFAULT as GSM7
from gsmgw.sms.gsm7 import decode_septets, encode_septets, is_gsm7

DEFAULT_ALPHABETS = ("gsm7", "latin1", "ascii")
RECEIPT_TEXT_CHARS = 20


@dataclass(frozen=True, slots=True)
class Concat:
    """Which part of which long message this submit is (from the UDH or sar_* TLVs)."""

    ref: int
    total: int
    seq: int


@dataclass(frozen=True, slots=True)
class SubmittedText:
    # For a part of a split message: the part's own decoding (a character split across
    # parts shows as U+FFFD); the whole is decoded from the joined ``data``.
    text: str
    flash: bool
    concat: Concat | None
    # The octets (UDH removed) and the codec they are in: "gsm7", "ucs2", "latin1", "ascii".
    data: bytes = b""
    codec: str = "gsm7"


# --- text -----------------------------------------------------------------------------


def _alphabet(data_coding: int, default_alphabet: str) -> tuple[str, bool]:
    """(codec, flash) for a data_coding."""
    if data_coding in (0x00, 0x10, 0xF0):
        return default_alphabet, data_coding != 0x00
    if data_coding == 0x01:
        return "ascii", False
    if data_coding == 0x03:
        return "latin1", False
    if data_coding in (0x08, 0x18):
        return "ucs2", data_coding == 0x18
    raise SmppError(f"data_coding 0x{data_coding:02x} is not supported (0, 1, 3, 8 are; the gateway "
                    "sends text, not binary)", status=Status.RINVDCS)


def decode_text(data: bytes, data_coding: int, *, default_alphabet: str = "gsm7") -> tuple[str, bool]:
    """Octets of short_message / message_payload (UDH removed) -> (text, flash)."""
    codec, flash = _alphabet(data_coding, default_alphabet)
    return decode_octets(data, codec), flash


def decode_octets(data: bytes, codec: str, *, part: bool = False) -> str:
    """Octets in one of the codecs -> text. ``part``: one piece of a split message, which
    may end inside a UTF-16 surrogate pair or right after a GSM escape."""
    if part and codec == "ucs2":
        if len(data) % 2:
            raise SmppError("UCS-2 text has an odd number of octets", status=Status.RINVMSGLEN)
        return data.decode("utf-16-be", errors="replace")
    if codec == "gsm7":
        bad = next((b for b in data if b > 0x7F), None)
        if bad is not None:
            raise SmppError(f"octet 0x{bad:02x} is not a GSM 7-bit septet (data_coding 0 is GSM 03.38 "
                            "unpacked here; use data_coding 3 for Latin-1)", status=Status.RINVDCS)
        return decode_septets(data, GSM7)
    if codec == "ucs2":
        if len(data) % 2:
            raise SmppError("UCS-2 text has an odd number of octets", status=Status.RINVMSGLEN)
        try:
            return data.decode("utf-16-be")
        except UnicodeDecodeError:
            raise SmppError("UCS-2 text has a broken surrogate pair", status=Status.RINVMSGLEN) from None
    if codec == "ascii":
        bad = next((b for b in data if b > 0x7F), None)
        if bad is not None:
            raise SmppError(f"octet 0x{bad:02x} is not IA5/ASCII", status=Status.RINVDCS)
        return data.decode("ascii")
    return data.decode("latin-1")


def encode_text(text: str, *, default_alphabet: str = "gsm7") -> tuple[int, bytes]:
    """Text for a deliver_sm -> (data_coding, octets): the default alphabet if it can
    carry the text, else UCS-2."""
    if default_alphabet == "gsm7" and is_gsm7(text, GSM7):
        return 0x00, bytes(encode_septets(text, GSM7))
    if default_alphabet in ("latin1", "ascii"):
        try:
            return 0x00, text.encode("latin-1" if default_alphabet == "latin1" else "ascii")
        except UnicodeEncodeError:
            pass
    return 0x08, text.encode("utf-16-be")


def receipt_safe(text: str, *, default_alphabet: str = "gsm7") -> str:
    """Text that the default alphabet can carry (a receipt is sent with data_coding 0)."""
    if default_alphabet == "gsm7":
        return "".join(c if is_gsm7(c, GSM7) else "?" for c in text)
    limit = 0xFF if default_alphabet == "latin1" else 0x7F
    return "".join(c if ord(c) <= limit else "?" for c in text)


# --- submit_sm -> text and concatenation ---------------------------------------------------


def _split_udh(data: bytes) -> tuple[Concat | None, bytes]:
    if not data:
        raise SmppError("esm_class says UDHI but the message is empty", status=Status.RINVESMCLASS)
    udhl = data[0]
    if 1 + udhl > len(data):
        raise SmppError(f"UDH length {udhl} runs past the message", status=Status.RINVESMCLASS)
    udh, rest = data[1:1 + udhl], data[1 + udhl:]
    concat = None
    pos = 0
    while pos < len(udh):
        if pos + 2 > len(udh):
            raise SmppError("a UDH element is cut short", status=Status.RINVESMCLASS)
        iei, iel = udh[pos], udh[pos + 1]
        value = udh[pos + 2:pos + 2 + iel]
        if len(value) != iel:
            raise SmppError("a UDH element runs past the UDH", status=Status.RINVESMCLASS)
        if iei == 0x00 and iel == 3:
            concat = Concat(value[0], value[1], value[2])
        elif iei == 0x08 and iel == 4:
            concat = Concat(int.from_bytes(value[:2], "big"), value[2], value[3])
        else:
            raise SmppError(f"UDH element 0x{iei:02x} cannot be passed on (only concatenation, "
                            "IEI 0x00 / 0x08, is)", status=Status.RINVESMCLASS)
        pos += 2 + iel
    return concat, rest


def _check_concat(c: Concat) -> Concat | None:
    if c.total == 0 or c.seq == 0 or c.seq > c.total:
        raise SmppError(f"concatenation part {c.seq} of {c.total} is impossible", status=Status.RINVESMCLASS)
    return None if c.total == 1 else c


def submitted_text(pdu: Pdu, *, default_alphabet: str = "gsm7") -> SubmittedText:
    """The text, flash flag and concatenation of a submit_sm / submit_multi."""
    short = pdu.get("short_message", b"")
    payload = pdu.tlvs.get(Tag.MESSAGE_PAYLOAD)
    if payload is not None and short:
        raise SmppError("give short_message or message_payload, not both", status=Status.RINVOPTPARAMVAL)
    data = payload if payload is not None else short
    esm = pdu.get("esm_class", 0)
    concat: Concat | None = None
    if esm & ESM_UDHI:
        concat, data = _split_udh(data)
    sar = [pdu.tlv_int(t) for t in (Tag.SAR_MSG_REF_NUM, Tag.SAR_TOTAL_SEGMENTS, Tag.SAR_SEGMENT_SEQNUM)]
    if any(v is not None for v in sar):
        if any(v is None for v in sar):
            raise SmppError("sar_msg_ref_num, sar_total_segments and sar_segment_seqnum go together",
                            status=Status.RMISSINGOPTPARAM)
        if concat is not None:
            raise SmppError("concatenation in both the UDH and sar_* TLVs", status=Status.RINVOPTPARAMVAL)
        ref, total, seq = (int(v or 0) for v in sar)
        concat = Concat(ref, total, seq)
    if concat is not None:
        concat = _check_concat(concat)
    codec, flash = _alphabet(pdu.get("data_coding", 0), default_alphabet)
    text = decode_octets(data, codec, part=concat is not None)
    return SubmittedText(text, flash, concat, bytes(data), codec)


def join_parts(parts: list[tuple[str, bytes]]) -> str:
    """The text of a split message from its parts' (codec, octets), in order: joined
    before decoding where the codec is the same, so that nothing split between two
    parts is lost."""
    out: list[str] = []
    run_codec, run = "", bytearray()
    for codec, data in parts:
        if codec != run_codec and run:
            out.append(decode_octets(bytes(run), run_codec))
            run = bytearray()
        run_codec = codec
        run += data
    if run:
        out.append(decode_octets(bytes(run), run_codec))
    return "".join(out)


# --- times ---------------------------------------------------------------------------------


def _add_months(when: dt.datetime, months: int) -> dt.datetime:
    y, m = divmod(when.month - 1 + months, 12)
    year, month = when.year + y, m + 1
    # The 31st plus a month is the last day of that month.
    for day in (when.day, 30, 29, 28):
        try:
            return when.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise ValueError("unreachable")  # pragma: no cover


def parse_time(value: str, *, now: dt.datetime, status: Status) -> dt.datetime | None:
    """schedule_delivery_time / validity_period -> an aware UTC time; "" -> None."""
    if value == "":
        return None
    if len(value) != 16 or not value[:15].isdigit() or value[15] not in "+-R":
        raise SmppError(f"time {value!r} is not YYMMDDhhmmsstnnp", status=status)
    yy, mo, dd, hh, mi, ss = (int(value[i:i + 2]) for i in range(0, 12, 2))
    tenths, quarters, p = int(value[12]), int(value[13:15]), value[15]
    if p == "R":
        if hh > 23 or mi > 59 or ss > 59:
            raise SmppError(f"relative time {value!r} has an impossible field", status=status)
        try:
            when = _add_months(now, 12 * yy + mo)
            return when + dt.timedelta(days=dd, hours=hh, minutes=mi, seconds=ss)
        except (ValueError, OverflowError):
            raise SmppError(f"relative time {value!r} is out of range", status=status) from None
    if quarters > 48:
        raise SmppError(f"time {value!r}: offset {quarters} quarter hours is more than 12 hours", status=status)
    offset = dt.timedelta(minutes=15 * quarters) * (1 if p == "+" else -1)
    try:
        local = dt.datetime(2000 + yy, mo, dd, hh, mi, ss, tenths * 100_000, tzinfo=dt.timezone(offset))
    except ValueError:
        raise SmppError(f"time {value!r} is not a date", status=status) from None
    return local.astimezone(dt.UTC)


def format_time(when: dt.datetime) -> str:
    """An absolute SMPP time in UTC (``...000+``)."""
    u = when.astimezone(dt.UTC)
    return u.strftime("%y%m%d%H%M%S") + f"{u.microsecond // 100_000}00+"


# --- receipts ---------------------------------------------------------------------------------


def receipt_state(state: str) -> MessageStateCode:
    """A gsmgw message state -> SMPP message_state."""
    return {
        "delivered": MessageStateCode.DELIVERED,
        "failed": MessageStateCode.UNDELIVERABLE,
        "expired": MessageStateCode.EXPIRED,
        "cancelled": MessageStateCode.DELETED,
        "unknown": MessageStateCode.UNKNOWN,
        "rejected": MessageStateCode.REJECTED,
        "sent": MessageStateCode.ENROUTE,
        "queued": MessageStateCode.ACCEPTED,
    }.get(state, MessageStateCode.UNKNOWN)


def error_number(error_code: str | None) -> int:
    """The numeric err: of a receipt: the status report's TP-ST or the +CMS ERROR code."""
    if not error_code:
        return 0
    kind, _, value = error_code.partition(":")
    try:
        n = int(value, 16) if value.lower().startswith("0x") else int(value)
    except ValueError:
        return 0
    return n if kind in ("report", "cms") and 0 <= n <= 999 else 0


def receipt_text(*, message_id: str, state: MessageStateCode, submitted_at: dt.datetime,
                 done_at: dt.datetime, err: int, text: str) -> str:
    """Appendix B: ``id:... sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm
    stat:DELIVRD err:000 text:first 20 chars``."""
    dlvrd = 1 if state is MessageStateCode.DELIVERED else 0
    return (f"id:{message_id} sub:001 dlvrd:{dlvrd:03d} "
            f"submit date:{submitted_at.astimezone(dt.UTC):%y%m%d%H%M} "
            f"done date:{done_at.astimezone(dt.UTC):%y%m%d%H%M} "
            f"stat:{state.stat} err:{err:03d} text:{text[:RECEIPT_TEXT_CHARS]}")


def parse_receipt(text: str) -> dict[str, str]:
    """The fields of an Appendix B receipt (for tests and diagnostics)."""
    out: dict[str, str] = {}
    keys = ("id", "sub", "dlvrd", "submit date", "done date", "stat", "err")
    rest = text
    low = text.lower()
    idx = low.find(" text:")
    if idx >= 0:
        out["text"] = text[idx + 6:]
        rest = text[:idx]
    for key in keys:
        start = rest.find(key + ":")
        if start < 0:
            continue
        start += len(key) + 1
        ends = [rest.find(" " + k + ":", start) for k in keys]
        ends = [e for e in ends if e >= 0]
        out[key] = rest[start:min(ends) if ends else len(rest)].strip()
    return out
