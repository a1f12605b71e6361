"""SMS TPDUs of 3GPP TS 23.040: SMS-SUBMIT encode/decode, SMS-DELIVER decode/encode,
SMS-STATUS-REPORT decode/encode. Hex strings carry the SMSC field in front, as used by
``AT+CMGS``/``+CMGL``/``+CMT``/``+CDS`` in PDU mode (TS 27.005).

Every malformed input raises :class:`gsmgw.errors.CodecError` and nothing else.
"""

from __future__ import annotations

import datetime as dt
import enum
import random
import re
from dataclasses import dataclass, field

from gsmgw.domain import Encoding
from gsmgw.errors import CodecError
from gsmgw.sms import gsm7
from gsmgw.sms.address import (
    Address,
    decode_address,
    decode_smsc,
    encode_address,
    encode_smsc,
    parse_number,
)
from gsmgw.sms.dcs import DataCoding, decode_dcs, encode_dcs
from gsmgw.sms.segment import (
    DEFAULT_MAX_PARTS,
    MAX_PARTS_LIMIT,
    Plan,
    capacity,
    plan_data,
    plan_text,
)
from gsmgw.sms.smart import smart_replace
from gsmgw.sms.ucs2 import decode_ucs2, encode_ucs2

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

# --- information elements (TS 23.040 §9.2.3.24) ---------------------------------

IEI_CONCAT_8 = 0x00
IEI_PORTS_8 = 0x04
IEI_PORTS_16 = 0x05
IEI_CONCAT_16 = 0x08
IEI_SINGLE_SHIFT = 0x24
IEI_LOCKING_SHIFT = 0x25


@dataclass(frozen=True, slots=True)
class UdhElement:
    iei: int
    data: bytes

    def to_bytes(self) -> bytes:
        return bytes([self.iei, len(self.data)]) + self.data


@dataclass(frozen=True, slots=True)
class Concat:
    reference: int
    total: int
    sequence: int
    bits: int = 8  # 8 or 16 (IEI 0x00 / 0x08)


@dataclass(frozen=True, slots=True)
class _Udh:
    elements: tuple[UdhElement, ...] = ()
    concat: Concat | None = None
    ports: tuple[int, int] | None = None  # (destination, originator)
    locking: int = 0
    single: int = 0


def parse_udh(udh: bytes) -> _Udh:
    """Parse the IEs of a UDH (without its UDHL octet). Unknown IEs are kept."""
    elements: list[UdhElement] = []
    concat: Concat | None = None
    ports: tuple[int, int] | None = None
    locking = single = 0
    i = 0
    while i < len(udh):
        if i + 2 > len(udh):
            raise CodecError(f"UDH truncated: information element header at offset {i}")
        iei, ln = udh[i], udh[i + 1]
        data = udh[i + 2:i + 2 + ln]
        if len(data) != ln:
            raise CodecError(f"UDH information element 0x{iei:02X} claims {ln} octets, {len(data)} present")
        elements.append(UdhElement(iei, bytes(data)))
        if iei == IEI_CONCAT_8 and ln == 3 and concat is None:
            concat = Concat(data[0], data[1], data[2], 8)
        elif iei == IEI_CONCAT_16 and ln == 4 and concat is None:
            concat = Concat((data[0] << 8) | data[1], data[2], data[3], 16)
        elif iei == IEI_PORTS_8 and ln == 2:
            ports = (data[0], data[1])
        elif iei == IEI_PORTS_16 and ln == 4:
            ports = ((data[0] << 8) | data[1], (data[2] << 8) | data[3])
        elif iei == IEI_LOCKING_SHIFT and ln == 1:
            locking = data[0]
        elif iei == IEI_SINGLE_SHIFT and ln == 1:
            single = data[0]
        i += 2 + ln
    if concat is not None and (concat.total == 0 or concat.sequence == 0 or concat.sequence > concat.total):
        concat = None  # TS 23.040: such an IE shall be ignored; the element stays in `udh`
    return _Udh(tuple(elements), concat, ports, locking, single)


def build_udh(elements: list[UdhElement]) -> bytes:
    """Complete UDH including its UDHL octet (empty when there are no elements)."""
    body = b"".join(e.to_bytes() for e in elements)
    return bytes([len(body)]) + body if body else b""


# --- timestamps and validity -------------------------------------------------------


def _swap(b: int, what: str) -> int:
    lo, hi = b & 0x0F, b >> 4
    if lo > 9 or hi > 9:
        raise CodecError(f"{what}: invalid BCD octet 0x{b:02X}")
    return lo * 10 + hi


def decode_timestamp(data: bytes, what: str = "timestamp") -> dt.datetime:
    """TS 23.040 §9.2.3.11: 7 semi-octet-swapped octets, the last one the time zone in
    quarter hours with the sign in bit 3 of its first semi-octet. Invalid date digits
    raise CodecError; an invalid zone octet reads as UTC."""
    if len(data) != 7:
        raise CodecError(f"{what}: need 7 octets, got {len(data)}")
    y, mo, d, h, mi, s = (_swap(b, what) for b in data[:6])
    tzb = data[6]
    lo, hi = tzb & 0x0F, tzb >> 4
    quarters = (lo & 0x07) * 10 + hi
    if hi > 9 or quarters > 79:
        # Some SMSCs put garbage (0xFF) in the zone octet; the local time is still
        # worth more than a lost message, so read it as UTC rather than fail.
        offset = dt.timedelta(0)
    else:
        offset = dt.timedelta(minutes=15 * quarters)
        if lo & 0x08:
            offset = -offset
    try:
        return dt.datetime(2000 + y, mo, d, h, mi, s, tzinfo=dt.timezone(offset))
    except ValueError as exc:
        raise CodecError(f"{what}: {exc}") from None


def encode_timestamp(when: dt.datetime, what: str = "timestamp") -> bytes:
    if when.tzinfo is None or when.utcoffset() is None:
        raise CodecError(f"{what} must be timezone-aware")
    off = when.utcoffset()
    assert off is not None
    minutes = int(off.total_seconds()) // 60
    if minutes * 60 != int(off.total_seconds()) or minutes % 15:
        raise CodecError(f"{what}: time zone offset {off} is not a multiple of 15 minutes")
    if not 2000 <= when.year <= 2099:
        raise CodecError(f"{what}: year {when.year} cannot be encoded (2000-2099)")
    quarters = abs(minutes) // 15
    if quarters > 79:  # the tens digit shares its semi-octet with the sign bit
        raise CodecError(f"{what}: time zone offset {off} is out of range")

    def sw(v: int) -> int:
        return ((v % 10) << 4) | (v // 10)

    tz = sw(quarters) | (0x08 if minutes < 0 else 0)
    return bytes([sw(when.year - 2000), sw(when.month), sw(when.day), sw(when.hour),
                  sw(when.minute), sw(when.second), tz])


def encode_relative_validity(period: dt.timedelta) -> int:
    """TP-VP relative format (TS 23.040 §9.2.3.12.1), rounded up to the next step."""
    minutes = -(-int(period.total_seconds()) // 60)
    if minutes <= 0:
        raise CodecError(f"validity period must be positive, got {period}")
    if minutes <= 12 * 60:
        return max(0, -(-minutes // 5) - 1)
    if minutes <= 24 * 60:
        return 143 + -(-(minutes - 720) // 30)
    days = -(-minutes // 1440)
    if days <= 30:
        return 166 + max(days, 2)
    weeks = -(-days // 7)
    if weeks <= 63:
        return 192 + max(weeks, 5)
    raise CodecError(f"validity period {period} exceeds the maximum of 63 weeks")


def decode_relative_validity(vp: int) -> dt.timedelta:
    if vp <= 143:
        return dt.timedelta(minutes=(vp + 1) * 5)
    if vp <= 167:
        return dt.timedelta(hours=12, minutes=(vp - 143) * 30)
    if vp <= 196:
        return dt.timedelta(days=vp - 166)
    return dt.timedelta(weeks=vp - 192)


# --- status (TS 23.040 §9.2.3.15) ----------------------------------------------------


class StatusCategory(enum.StrEnum):
    DELIVERED = "delivered"  # 0x00-0x1F: transaction completed
    PENDING = "pending"  # 0x20-0x3F: temporary error, SC still trying
    FAILED = "failed"  # 0x40-0x5F (and reserved 0x80+): permanent error, SC not trying
    FAILED_TEMPORARY = "failed-temporary"  # 0x60-0x7F: temporary error, SC stopped trying


_STATUS_TEXT = {
    0x00: "short message received by the SME",
    0x01: "short message forwarded by the SC to the SME but the SC is unable to confirm delivery",
    0x02: "short message replaced by the SC",
    0x20: "congestion (SC still trying)",
    0x21: "SME busy (SC still trying)",
    0x22: "no response from SME (SC still trying)",
    0x23: "service rejected (SC still trying)",
    0x24: "quality of service not available (SC still trying)",
    0x25: "error in SME (SC still trying)",
    0x40: "remote procedure error",
    0x41: "incompatible destination",
    0x42: "connection rejected by SME",
    0x43: "not obtainable",
    0x44: "quality of service not available",
    0x45: "no interworking available",
    0x46: "SM validity period expired",
    0x47: "SM deleted by originating SME",
    0x48: "SM deleted by SC administration",
    0x49: "SM does not exist",
    0x60: "congestion (SC stopped trying)",
    0x61: "SME busy (SC stopped trying)",
    0x62: "no response from SME (SC stopped trying)",
    0x63: "service rejected (SC stopped trying)",
    0x64: "quality of service not available (SC stopped trying)",
    0x65: "error in SME (SC stopped trying)",
}


def status_category(status: int) -> StatusCategory:
    if not 0 <= status <= 0xFF:
        raise CodecError(f"TP-ST {status} out of range 0-255")
    if status <= 0x1F:
        return StatusCategory.DELIVERED
    if status <= 0x3F:
        return StatusCategory.PENDING
    if 0x60 <= status <= 0x7F:
        return StatusCategory.FAILED_TEMPORARY
    return StatusCategory.FAILED  # 0x40-0x5F, and reserved values are "service rejected"


def status_meaning(status: int) -> str:
    """Human text for a TP-ST value (TS 23.040 §9.2.3.15)."""
    cat = status_category(status)
    text = _STATUS_TEXT.get(status)
    if text is not None:
        return text
    if status >= 0x80:
        return "reserved value (treated as service rejected)"
    sc_specific = status & 0x10
    kind = {
        StatusCategory.DELIVERED: "transaction completed",
        StatusCategory.PENDING: "temporary error, SC still trying",
        StatusCategory.FAILED: "permanent error, SC is not making any more transfer attempts",
        StatusCategory.FAILED_TEMPORARY: "temporary error, SC is not making any more transfer attempts",
    }[cat]
    return f"{kind} ({'SC specific' if sc_specific else 'reserved'} value 0x{status:02X})"


# --- decoded messages ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _UserData:
    text: str
    user_data: bytes  # payload after the UDH (packed septets for GSM 7-bit)
    udh: tuple[UdhElement, ...]
    concat: Concat | None
    ports: tuple[int, int] | None
    locking_shift: int
    single_shift: int
    tp_udl: int
    ud_raw: bytes  # TP-UD exactly as on the wire (UDH included)


@dataclass(frozen=True, slots=True)
class Deliver:
    """SMS-DELIVER (MT), as read with +CMGL/+CMGR/+CMT."""

    originator: str
    originator_toa: int
    text: str
    encoding: Encoding
    tp_dcs: int
    message_class: int | None
    scts: dt.datetime
    concat: Concat | None
    udh: tuple[UdhElement, ...]
    ports: tuple[int, int] | None
    user_data: bytes
    smsc: str | None
    tp_pid: int
    tp_udl: int
    ud_raw: bytes
    udhi: bool
    more_messages: bool
    status_report_indication: bool
    reply_path: bool
    data_coding: DataCoding
    locking_shift: int = 0
    single_shift: int = 0
    type: str = field(default="deliver", init=False)

    @property
    def address(self) -> str:
        return self.originator

    @property
    def compressed(self) -> bool:
        return self.data_coding.compressed

    @property
    def flash(self) -> bool:
        return self.message_class == 0


@dataclass(frozen=True, slots=True)
class Submit:
    """SMS-SUBMIT (MO), e.g. as stored in a SIM's sent box."""

    destination: str
    destination_toa: int
    tp_mr: int
    text: str
    encoding: Encoding
    tp_dcs: int
    message_class: int | None
    concat: Concat | None
    udh: tuple[UdhElement, ...]
    ports: tuple[int, int] | None
    user_data: bytes
    smsc: str | None
    tp_pid: int
    tp_udl: int
    ud_raw: bytes
    udhi: bool
    status_report_requested: bool
    reject_duplicates: bool
    reply_path: bool
    validity: dt.timedelta | dt.datetime | None
    validity_format: str  # "none" | "relative" | "absolute" | "enhanced"
    validity_raw: bytes
    data_coding: DataCoding
    locking_shift: int = 0
    single_shift: int = 0
    type: str = field(default="submit", init=False)

    @property
    def address(self) -> str:
        return self.destination

    @property
    def compressed(self) -> bool:
        return self.data_coding.compressed

    @property
    def flash(self) -> bool:
        return self.message_class == 0


@dataclass(frozen=True, slots=True)
class StatusReport:
    """SMS-STATUS-REPORT, as received with +CDS or read with +CMGR."""

    tp_mr: int
    recipient: str
    recipient_toa: int
    scts: dt.datetime
    discharge_time: dt.datetime
    status: int
    smsc: str | None
    more_messages: bool
    status_report_qualifier: bool  # True: result of an SMS-COMMAND
    text: str = ""
    type: str = field(default="status-report", init=False)

    @property
    def address(self) -> str:
        return self.recipient

    @property
    def category(self) -> StatusCategory:
        return status_category(self.status)

    @property
    def status_meaning(self) -> str:
        return status_meaning(self.status)

    @property
    def delivered(self) -> bool:
        return self.category is StatusCategory.DELIVERED

    @property
    def final(self) -> bool:
        """No further report will come for this message (the SC stopped trying)."""
        return self.category is not StatusCategory.PENDING

    @property
    def encoding(self) -> Encoding:
        return Encoding.GSM7

    @property
    def concat(self) -> None:
        return None

    @property
    def message_class(self) -> None:
        return None


# --- user data decode ---------------------------------------------------------------


def _decode_ud(buf: bytes, pos: int, dcs: DataCoding, udhi: bool) -> _UserData:
    if pos >= len(buf):
        raise CodecError("PDU truncated: TP-UDL missing")
    udl = buf[pos]
    pos += 1
    septets = dcs.encoding is Encoding.GSM7 and not dcs.compressed
    if septets:
        if udl > 160:
            raise CodecError(f"TP-UDL {udl} septets exceeds 160")
        nbytes = (udl * 7 + 7) // 8
    else:
        if udl > 140:
            raise CodecError(f"TP-UDL {udl} octets exceeds 140")
        nbytes = udl
    ud = bytes(buf[pos:pos + nbytes])
    if len(ud) < nbytes:
        raise CodecError(f"PDU truncated: TP-UDL {udl} needs {nbytes} octets of user data, {len(ud)} present")
    udh = _Udh()
    hdr_len = 0
    if udhi:
        if not ud:
            raise CodecError("TP-UDHI set but the user data is empty")
        hdr_len = 1 + ud[0]
        if hdr_len > len(ud):
            raise CodecError(f"UDH length {ud[0]} exceeds the user data ({len(ud)} octets)")
        udh = parse_udh(ud[1:hdr_len])
    if septets:
        hdr_septets = (hdr_len * 8 + 6) // 7
        if hdr_septets > udl:
            raise CodecError(f"UDH ({hdr_len} octets) longer than TP-UDL {udl} septets")
        all_septets = gsm7.unpack_septets(ud, udl)[hdr_septets:]
        t = gsm7.tables(udh.locking, udh.single)
        text = gsm7.decode_septets(all_septets, t)
        payload = ud[hdr_len:]
    else:
        payload = ud[hdr_len:]
        if dcs.compressed:
            text = ""  # TS 23.042 compression is not supported: kept as user_data, marked compressed
        elif dcs.encoding is Encoding.UCS2:
            text = decode_ucs2(payload)
        else:
            text = ""
    return _UserData(text, payload, udh.elements, udh.concat, udh.ports, udh.locking, udh.single,
                     udl, ud)


# --- decode ---------------------------------------------------------------------------


def _split_smsc(raw: bytes, tpdu_length: int | None, smsc_included: bool) -> tuple[str | None, bytes]:
    if tpdu_length is not None:
        extra = len(raw) - tpdu_length
        if tpdu_length <= 0 or extra < 0:
            raise CodecError(f"<length> {tpdu_length} does not fit a {len(raw)}-octet PDU")
        if extra == 0:
            return None, raw
        if raw[0] + 1 != extra:
            raise CodecError(
                f"SMSC field: length octet says {raw[0] + 1} octets but <length> {tpdu_length} "
                f"leaves {extra}"
            )
        smsc, start = decode_smsc(raw[:extra])
        return smsc, raw[start:]
    if not smsc_included:
        return None, raw
    smsc, start = decode_smsc(raw)
    return smsc, raw[start:]


def _need(buf: bytes, pos: int, n: int, what: str) -> bytes:
    chunk = buf[pos:pos + n]
    if len(chunk) != n:
        raise CodecError(f"PDU truncated: {what} at octet {pos} needs {n} octet(s)")
    return chunk


def hex_to_bytes(pdu_hex: str) -> bytes:
    if not isinstance(pdu_hex, str):
        raise CodecError(f"PDU must be a hex string, got {type(pdu_hex).__name__}")
    s = pdu_hex.strip()
    if len(s) % 2:
        raise CodecError(f"PDU hex has an odd number of digits ({len(s)})")
    try:
        return bytes.fromhex(s)
    except ValueError:
        raise CodecError("PDU is not valid hexadecimal") from None


def decode_pdu(pdu_hex: str, *, tpdu_length: int | None = None,
               smsc_included: bool = True) -> Deliver | Submit | StatusReport:
    """Decode a PDU as printed by a modem. With ``tpdu_length`` (the ``<length>`` of
    +CMGL/+CMGR/+CMT/+CDS) the SMSC field is whatever precedes the TPDU."""
    raw = hex_to_bytes(pdu_hex)
    if not raw:
        raise CodecError("empty PDU")
    try:
        return _decode(raw, tpdu_length, smsc_included)
    except CodecError:
        raise
    except (IndexError, ValueError, KeyError, OverflowError) as exc:  # defensive net
        raise CodecError(f"malformed PDU: {exc}") from None


def _decode(raw: bytes, tpdu_length: int | None, smsc_included: bool) -> Deliver | Submit | StatusReport:
    smsc, tpdu = _split_smsc(raw, tpdu_length, smsc_included)
    if not tpdu:
        raise CodecError("PDU has no TPDU after the SMSC field")
    first = tpdu[0]
    mti = first & 0x03
    if mti == 0x00:
        return _decode_deliver(tpdu, smsc)
    if mti == 0x01:
        return _decode_submit(tpdu, smsc)
    if mti == 0x02:
        return _decode_status_report(tpdu, smsc)
    raise CodecError("TP-MTI 11 (reserved) is not a message type gsmgw can decode")


def _decode_deliver(tpdu: bytes, smsc: str | None) -> Deliver:
    first = tpdu[0]
    oa, pos = decode_address(tpdu, 1, "originator")
    pid, dcs_b = _need(tpdu, pos, 2, "TP-PID/TP-DCS")
    pos += 2
    scts = decode_timestamp(_need(tpdu, pos, 7, "TP-SCTS"), "TP-SCTS")
    pos += 7
    dcs = decode_dcs(dcs_b)
    udhi = bool(first & 0x40)
    ud = _decode_ud(tpdu, pos, dcs, udhi)
    return Deliver(
        originator=oa.number, originator_toa=oa.toa, text=ud.text, encoding=dcs.encoding,
        tp_dcs=dcs_b, message_class=dcs.message_class, scts=scts, concat=ud.concat, udh=ud.udh,
        ports=ud.ports, user_data=ud.user_data, smsc=smsc, tp_pid=pid, tp_udl=ud.tp_udl,
        ud_raw=ud.ud_raw, udhi=udhi, more_messages=not first & 0x04,
        status_report_indication=bool(first & 0x20), reply_path=bool(first & 0x80),
        data_coding=dcs, locking_shift=ud.locking_shift, single_shift=ud.single_shift,
    )


def _decode_submit(tpdu: bytes, smsc: str | None) -> Submit:
    first = tpdu[0]
    mr = _need(tpdu, 1, 1, "TP-MR")[0]
    da, pos = decode_address(tpdu, 2, "destination")
    pid, dcs_b = _need(tpdu, pos, 2, "TP-PID/TP-DCS")
    pos += 2
    vpf = (first >> 3) & 0x03
    validity: dt.timedelta | dt.datetime | None = None
    vraw = b""
    if vpf == 0b10:
        vraw = _need(tpdu, pos, 1, "TP-VP")
        validity = decode_relative_validity(vraw[0])
        fmt = "relative"
    elif vpf == 0b11:
        vraw = _need(tpdu, pos, 7, "TP-VP")
        validity = decode_timestamp(vraw, "TP-VP")
        fmt = "absolute"
    elif vpf == 0b01:
        vraw = _need(tpdu, pos, 7, "TP-VP")
        fmt = "enhanced"
    else:
        fmt = "none"
    pos += len(vraw)
    dcs = decode_dcs(dcs_b)
    udhi = bool(first & 0x40)
    ud = _decode_ud(tpdu, pos, dcs, udhi)
    return Submit(
        destination=da.number, destination_toa=da.toa, tp_mr=mr, text=ud.text, encoding=dcs.encoding,
        tp_dcs=dcs_b, message_class=dcs.message_class, concat=ud.concat, udh=ud.udh, ports=ud.ports,
        user_data=ud.user_data, smsc=smsc, tp_pid=pid, tp_udl=ud.tp_udl, ud_raw=ud.ud_raw, udhi=udhi,
        status_report_requested=bool(first & 0x20), reject_duplicates=bool(first & 0x04),
        reply_path=bool(first & 0x80), validity=validity, validity_format=fmt, validity_raw=vraw,
        data_coding=dcs, locking_shift=ud.locking_shift, single_shift=ud.single_shift,
    )


def _decode_status_report(tpdu: bytes, smsc: str | None) -> StatusReport:
    first = tpdu[0]
    mr = _need(tpdu, 1, 1, "TP-MR")[0]
    ra, pos = decode_address(tpdu, 2, "recipient")
    scts = decode_timestamp(_need(tpdu, pos, 7, "TP-SCTS"), "TP-SCTS")
    pos += 7
    dt_ = decode_timestamp(_need(tpdu, pos, 7, "TP-DT"), "TP-DT")
    pos += 7
    st = _need(tpdu, pos, 1, "TP-ST")[0]
    pos += 1
    text = ""
    # Optional TP-PI/PID/DCS/UD (TS 23.040 §9.2.2.3). Many modems pad here; a broken
    # optional part must not lose the status, so it is ignored when it does not parse.
    if pos < len(tpdu):
        pi = tpdu[pos]
        p = pos + 1
        try:
            if pi & 0x01:
                p += 1
            dcs = decode_dcs(tpdu[p]) if pi & 0x02 else decode_dcs(0)
            if pi & 0x02:
                p += 1
            if pi & 0x04:
                text = _decode_ud(tpdu, p, dcs, bool(first & 0x40)).text
        except (CodecError, IndexError):
            text = ""
    return StatusReport(
        tp_mr=mr, recipient=ra.number, recipient_toa=ra.toa, scts=scts, discharge_time=dt_, status=st,
        smsc=smsc, more_messages=not first & 0x04, status_report_qualifier=bool(first & 0x20), text=text,
    )


# --- encode ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EncodedPart:
    pdu: str  # uppercase hex, SMSC field first ("00" = use the SIM's SMSC)
    tpdu_length: int  # <length> for AT+CMGS (octets after the SMSC field)
    sequence: int = 1
    text: str = ""
    units: int = 0


@dataclass(frozen=True, slots=True)
class EncodedMessage:
    encoding: Encoding
    parts: tuple[EncodedPart, ...]
    text: str = ""  # the text actually sent (after smart encoding)
    concat_ref: int | None = None
    concat_16bit: bool = False
    locking_shift: str | None = None  # national language name, None = default
    single_shift: str | None = None
    units_per_part: int = 0


@dataclass(frozen=True, slots=True)
class Preview:
    encoding: Encoding
    parts: int
    units_used: int
    units_left: int  # in the last part
    units_per_part: int
    characters: int  # code points of the text that would be sent
    locking_shift: str | None = None
    single_shift: str | None = None
    text: str = ""
    smart_replaced: bool = False


def _check_max_parts(n: int, max_parts: int) -> None:
    if not 1 <= max_parts <= MAX_PARTS_LIMIT:
        raise CodecError(f"max_parts must be 1-{MAX_PARTS_LIMIT}, got {max_parts}")
    if n > max_parts:
        raise CodecError(f"message needs {n} parts, more than the maximum of {max_parts}")


def _choose_plan(text: str, *, smart_encoding: bool, encoding: Encoding | None,
                 concat_16bit: bool, user_ie_octets: int = 0) -> tuple[Plan, str, bool]:
    if not isinstance(text, str):
        raise CodecError(f"text must be a string, got {type(text).__name__}")
    if _LONE_SURROGATE.search(text):
        raise CodecError("text contains a lone surrogate (invalid Unicode)")
    plan = plan_text(text, encoding=encoding, concat_16bit=concat_16bit, user_ie_octets=user_ie_octets)
    if smart_encoding and not (plan.encoding is Encoding.GSM7 and plan.locking == 0 and plan.single == 0):
        replaced = smart_replace(text)
        if replaced != text:
            alt = plan_text(replaced, encoding=encoding, concat_16bit=concat_16bit,
                            user_ie_octets=user_ie_octets)
            if alt.encoding is Encoding.GSM7 and alt.parts <= plan.parts:
                return alt, replaced, True
    return plan, text, False


def preview(text: str, *, smart_encoding: bool = False, max_parts: int = DEFAULT_MAX_PARTS,
            encoding: Encoding | None = None, concat_16bit: bool = False) -> Preview:
    """What sending ``text`` would cost. CodecError if it needs more than ``max_parts``."""
    plan, sent, replaced = _choose_plan(text, smart_encoding=smart_encoding, encoding=encoding,
                                        concat_16bit=concat_16bit)
    _check_max_parts(plan.parts, max_parts)
    return Preview(
        encoding=plan.encoding, parts=plan.parts, units_used=plan.units_used,
        units_left=plan.units_left, units_per_part=plan.units_per_part, characters=len(sent),
        locking_shift=gsm7.language_name(plan.locking) if plan.locking else None,
        single_shift=gsm7.language_name(plan.single) if plan.single else None,
        text=sent, smart_replaced=replaced,
    )


def _shift_ies(locking: int, single: int) -> list[UdhElement]:
    out = []
    if locking:
        out.append(UdhElement(IEI_LOCKING_SHIFT, bytes([locking])))
    if single:
        out.append(UdhElement(IEI_SINGLE_SHIFT, bytes([single])))
    return out


def _concat_ie(ref: int, total: int, seq: int, bits16: bool) -> UdhElement:
    if bits16:
        return UdhElement(IEI_CONCAT_16, bytes([ref >> 8, ref & 0xFF, total, seq]))
    return UdhElement(IEI_CONCAT_8, bytes([ref, total, seq]))


def _user_ies(ports: tuple[int, int] | None, extra: tuple[UdhElement, ...]) -> tuple[UdhElement, ...]:
    out = []
    if ports is not None:
        dst, src = ports
        if not (0 <= dst <= 0xFFFF and 0 <= src <= 0xFFFF):
            raise CodecError(f"ports must be 0-65535, got {ports}")
        out.append(UdhElement(IEI_PORTS_16, bytes([dst >> 8, dst & 0xFF, src >> 8, src & 0xFF])))
    for e in extra:
        if e.iei in (IEI_CONCAT_8, IEI_CONCAT_16, IEI_SINGLE_SHIFT, IEI_LOCKING_SHIFT):
            raise CodecError(f"IE 0x{e.iei:02X} is set by the codec itself")
        if not 0 <= e.iei <= 255 or len(e.data) > 32:
            raise CodecError(f"invalid UDH element 0x{e.iei:02X} ({len(e.data)} octets)")
        out.append(e)
    if sum(2 + len(e.data) for e in out) > 40:
        raise CodecError("caller UDH elements are too long (max 40 octets)")
    return tuple(out)


def _gsm7_ud(udh: bytes, septets: list[int]) -> tuple[int, bytes]:
    """(TP-UDL in septets, TP-UD) with the text aligned on a septet boundary after the UDH."""
    hdr_septets = (len(udh) * 8 + 6) // 7
    fill = hdr_septets * 7 - len(udh) * 8
    return hdr_septets + len(septets), udh + gsm7.pack_septets(septets, fill)


def _resolve_ref(concat_ref: int | None, concat_16bit: bool) -> int:
    limit = 0xFFFF if concat_16bit else 0xFF
    if concat_ref is None:
        return random.randint(0, limit)  # a reference only needs to differ between messages
    if not isinstance(concat_ref, int) or not 0 <= concat_ref <= limit:
        raise CodecError(f"concat_ref must be 0-{limit}, got {concat_ref!r}")
    return concat_ref


def _ud_parts(plan_encoding: Encoding, chunks: list[str] | list[bytes], locking: int, single: int,
              ref: int, concat_16bit: bool, user_ies: tuple[UdhElement, ...] = ()) -> list[tuple[int, bytes, bool]]:
    """[(TP-UDL, TP-UD, UDHI)] for each part."""
    total = len(chunks)
    t = gsm7.tables(locking, single)
    out = []
    for i, chunk in enumerate(chunks, start=1):
        elements = []
        if total > 1:
            elements.append(_concat_ie(ref, total, i, concat_16bit))
        elements.extend(_shift_ies(locking, single))
        elements.extend(user_ies)
        udh = build_udh(elements)
        if plan_encoding is Encoding.GSM7:
            assert isinstance(chunk, str)
            udl, ud = _gsm7_ud(udh, gsm7.encode_septets(chunk, t))
        elif plan_encoding is Encoding.UCS2:
            assert isinstance(chunk, str)
            ud = udh + encode_ucs2(chunk)
            udl = len(ud)
        else:
            assert isinstance(chunk, bytes)
            ud = udh + chunk
            udl = len(ud)
        out.append((udl, ud, bool(udh)))
    return out


def encode_submit(
    to: str,
    text: str = "",
    *,
    smsc: str | None = None,
    tp_mr: int = 0,
    status_report: bool = False,
    flash: bool = False,
    validity: dt.timedelta | dt.datetime | None = None,
    reject_duplicates: bool = False,
    concat_ref: int | None = None,
    concat_16bit: bool = False,
    max_parts: int = DEFAULT_MAX_PARTS,
    smart_encoding: bool = False,
    encoding: Encoding | None = None,
    data: bytes | None = None,
    message_class: int | None = None,
    allow_alphanumeric: bool = False,
    tp_pid: int = 0,
    ports: tuple[int, int] | None = None,
    udh_elements: tuple[UdhElement, ...] = (),
) -> EncodedMessage:
    """Encode SMS-SUBMIT PDU(s) for ``AT+CMGS``. ``flash`` = message class 0.
    ``concat_ref`` defaults to a random reference when the text needs several parts.
    ``ports`` = (destination, originator) adds a 16-bit application port IE (IEI 0x05);
    ``udh_elements`` are further IEs put in every part (segmentation accounts for them)."""
    dest = parse_number(to, allow_alphanumeric=allow_alphanumeric)
    smsc_field = encode_smsc(smsc)
    if not isinstance(tp_mr, int) or not 0 <= tp_mr <= 255:
        raise CodecError(f"tp_mr must be 0-255, got {tp_mr!r}")
    if not 0 <= tp_pid <= 255:
        raise CodecError(f"tp_pid must be 0-255, got {tp_pid!r}")
    if flash:
        if message_class not in (None, 0):
            raise CodecError("flash SMS is message class 0; do not combine with another class")
        message_class = 0
    user_ies = _user_ies(ports, udh_elements)
    user_ie_octets = sum(2 + len(e.data) for e in user_ies)
    if data is not None:
        if not isinstance(data, bytes | bytearray):
            raise CodecError("data must be bytes")
        if encoding not in (None, Encoding.BINARY):
            raise CodecError("data= is sent as 8-bit; encoding must be BINARY or None")
        chunks_b = plan_data(bytes(data), concat_16bit=concat_16bit, user_ie_octets=user_ie_octets)
        _check_max_parts(len(chunks_b), max_parts)
        enc, locking, single, sent_text = Encoding.BINARY, 0, 0, ""
        chunks: list[str] | list[bytes] = chunks_b
        per_part = capacity(Encoding.BINARY, multipart=len(chunks_b) > 1, concat_16bit=concat_16bit,
                            extra_ie_octets=user_ie_octets)
        units = [len(c) for c in chunks_b]
    else:
        plan, sent_text, _ = _choose_plan(text, smart_encoding=smart_encoding, encoding=encoding,
                                          concat_16bit=concat_16bit, user_ie_octets=user_ie_octets)
        _check_max_parts(plan.parts, max_parts)
        enc, locking, single = plan.encoding, plan.locking, plan.single
        chunks = list(plan.chunks)
        per_part = plan.units_per_part
        units = list(plan.units)
    ref = _resolve_ref(concat_ref, concat_16bit) if len(chunks) > 1 else None
    dcs = encode_dcs(enc, message_class)
    first_base = 0x01 | (0x04 if reject_duplicates else 0) | (0x20 if status_report else 0)
    if validity is None:
        vp = b""
    elif isinstance(validity, dt.datetime):
        vp = encode_timestamp(validity, "validity")
        first_base |= 0x18
    elif isinstance(validity, dt.timedelta):
        vp = bytes([encode_relative_validity(validity)])
        first_base |= 0x10
    else:
        raise CodecError(f"validity must be a timedelta, a datetime or None, got {type(validity).__name__}")
    da = encode_address(dest)
    parts = []
    for i, (udl, ud, udhi) in enumerate(_ud_parts(enc, chunks, locking, single, ref or 0, concat_16bit,
                                                  user_ies)):
        first = first_base | (0x40 if udhi else 0)
        tpdu = bytes([first, tp_mr]) + da + bytes([tp_pid, dcs]) + vp + bytes([udl]) + ud
        chunk = chunks[i]
        parts.append(EncodedPart(
            pdu=(smsc_field + tpdu).hex().upper(), tpdu_length=len(tpdu), sequence=i + 1,
            text=chunk if isinstance(chunk, str) else "", units=units[i],
        ))
    return EncodedMessage(
        encoding=enc, parts=tuple(parts), text=sent_text, concat_ref=ref,
        concat_16bit=concat_16bit and ref is not None,
        locking_shift=gsm7.language_name(locking) if locking else None,
        single_shift=gsm7.language_name(single) if single else None, units_per_part=per_part,
    )


def _deliver_tpdu(oa: Address, *, pid: int, dcs: int, scts: dt.datetime, udl: int, ud: bytes,
                  udhi: bool, more_messages: bool, sri: bool, reply_path: bool = False) -> bytes:
    first = 0x00 | (0 if more_messages else 0x04) | (0x20 if sri else 0) | (0x40 if udhi else 0)
    first |= 0x80 if reply_path else 0
    return (bytes([first]) + encode_address(oa) + bytes([pid, dcs]) + encode_timestamp(scts, "scts")
            + bytes([udl]) + ud)


def encode_deliver(
    originator: str,
    text: str | None = None,
    *,
    scts: dt.datetime,
    smsc: str | None = None,
    tp_dcs: int | None = None,
    user_data: bytes | None = None,
    udl: int | None = None,
    udh: bytes | None = None,
    message_class: int | None = None,
    more_messages: bool = False,
    status_report_indication: bool = False,
    concat_ref: int | None = None,
    concat_16bit: bool = False,
    tp_pid: int = 0,
    max_parts: int = MAX_PARTS_LIMIT,
) -> list[str] | str:
    """Encode SMS-DELIVER PDU(s) (hex, SMSC field first) as a network would send them.

    * With ``text``: returns a **list** of PDUs, one per part (encoding chosen as for
      SMS-SUBMIT, concatenated when needed).
    * With ``user_data``: returns **one** PDU string. ``udh`` is the complete UDH
      including its UDHL octet (sets TP-UDHI); ``user_data`` follows it as is.
      ``udl`` defaults to the octet count, and is required for a GSM 7-bit ``tp_dcs``.

    The originator may be a number or an alphanumeric sender (≤ 11 GSM characters).
    """
    oa = parse_number(originator, allow_alphanumeric=True)
    smsc_field = encode_smsc(smsc)
    if (text is None) == (user_data is None):
        raise CodecError("give exactly one of text or user_data")
    if user_data is not None:
        dcs = tp_dcs if tp_dcs is not None else encode_dcs(Encoding.BINARY, message_class)
        if not 0 <= dcs <= 255:
            raise CodecError(f"tp_dcs must be 0-255, got {dcs}")
        ud = (udh or b"") + bytes(user_data)
        info = decode_dcs(dcs)
        if udl is None:
            if info.encoding is Encoding.GSM7 and not info.compressed:
                raise CodecError("udl (in septets) is required with a GSM 7-bit tp_dcs")
            udl = len(ud)
        if not 0 <= udl <= 255 or len(ud) > 140:
            raise CodecError(f"user data too long ({len(ud)} octets, udl {udl})")
        tpdu = _deliver_tpdu(oa, pid=tp_pid, dcs=dcs, scts=scts, udl=udl, ud=ud, udhi=bool(udh),
                             more_messages=more_messages, sri=status_report_indication)
        return (smsc_field + tpdu).hex().upper()
    plan, _, _ = _choose_plan(text or "", smart_encoding=False, encoding=None, concat_16bit=concat_16bit)
    _check_max_parts(plan.parts, max_parts)
    ref = _resolve_ref(concat_ref, concat_16bit) if plan.parts > 1 else 0
    dcs = tp_dcs if tp_dcs is not None else encode_dcs(plan.encoding, message_class)
    out = []
    for part_udl, ud, udhi in _ud_parts(plan.encoding, list(plan.chunks), plan.locking, plan.single,
                                        ref, concat_16bit):
        tpdu = _deliver_tpdu(oa, pid=tp_pid, dcs=dcs, scts=scts, udl=part_udl, ud=ud, udhi=udhi,
                             more_messages=more_messages, sri=status_report_indication)
        out.append((smsc_field + tpdu).hex().upper())
    return out


def encode_status_report(*, tp_mr: int, recipient: str, scts: dt.datetime, discharge_time: dt.datetime,
                         status: int, smsc: str | None = None, more_messages: bool = False) -> str:
    """Encode an SMS-STATUS-REPORT PDU (hex, SMSC field first), without optional fields."""
    if not 0 <= tp_mr <= 255:
        raise CodecError(f"tp_mr must be 0-255, got {tp_mr}")
    status_category(status)
    ra = parse_number(recipient, allow_alphanumeric=True)
    first = 0x02 | (0 if more_messages else 0x04)
    tpdu = (bytes([first, tp_mr]) + encode_address(ra) + encode_timestamp(scts, "scts")
            + encode_timestamp(discharge_time, "discharge_time") + bytes([status]))
    return (encode_smsc(smsc) + tpdu).hex().upper()


def submit_to_deliver(submit: Submit, *, originator: str, scts: dt.datetime, smsc: str | None = None) -> str:
    """Relay an SMS-SUBMIT as the SMS-DELIVER the recipient gets: TP-PID, TP-DCS, UDH and
    UD are copied unchanged (hex, SMSC field first)."""
    oa = parse_number(originator, allow_alphanumeric=True)
    tpdu = _deliver_tpdu(oa, pid=submit.tp_pid, dcs=submit.tp_dcs, scts=scts, udl=submit.tp_udl,
                         ud=submit.ud_raw, udhi=submit.udhi, more_messages=False,
                         sri=submit.status_report_requested, reply_path=submit.reply_path)
    return (encode_smsc(smsc) + tpdu).hex().upper()
