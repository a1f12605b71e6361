"""The SMPP 3.4 PDU codec: bytes <-> :class:`Pdu`, for the PDUs this server speaks.

Pure code: no I/O, no asyncio. Anything malformed raises
:class:`gsmgw.errors.SmppError` (and nothing else), carrying the command_status a
server should answer with: a C-Octet String without its NUL in its maximum length
is refused with the code for that field (ESME_RINVDSTADR for destination_addr,
ESME_RINVSYSID for system_id, ...), a short body with ESME_RINVMSGLEN, a broken
TLV stream with ESME_RINVOPTPARSTREAM.

Mandatory parameters are kept by their specification names in ``Pdu.params``
(C-Octet Strings as ``str``, decoded as Latin-1 so that any byte survives a round
trip; integers as ``int``; short_message as ``bytes``). Optional parameters stay
raw in ``Pdu.tlvs`` (tag -> value bytes, in wire order); :meth:`Pdu.tlv_int` and
:meth:`Pdu.tlv_cstr` read the typed ones.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gsmgw.errors import SmppError
from gsmgw.smpp.constants import HEADER_BYTES, TLV_FIXED_LENGTH, Command, Status

# The largest PDU anybody sends in practice is a submit_sm with a 64 KiB message_payload.
MAX_COMMAND_LENGTH = 0x10000 + 1024

_HEADER = struct.Struct(">IIII")

# One mandatory field: (name, kind, size, status when malformed).
# kinds: "c" C-Octet String of at most ``size`` octets with its NUL; "1"/"2"/"4"
# an unsigned integer of that many octets; "sm" short_message (length in sm_length);
# "dests" submit_multi's dest_address list; "unsuccess" submit_multi_resp's unsuccess_sme list.
Field = tuple[str, str, int, Status]

_BIND: tuple[Field, ...] = (
    ("system_id", "c", 16, Status.RINVSYSID),
    ("password", "c", 9, Status.RINVPASWD),
    ("system_type", "c", 13, Status.RINVSYSTYP),
    ("interface_version", "1", 1, Status.RINVMSGLEN),
    ("addr_ton", "1", 1, Status.RINVMSGLEN),
    ("addr_npi", "1", 1, Status.RINVMSGLEN),
    ("address_range", "c", 41, Status.RINVPARLEN),
)
_BIND_RESP: tuple[Field, ...] = (("system_id", "c", 16, Status.RINVSYSID),)

_SM_HEAD: tuple[Field, ...] = (
    ("service_type", "c", 6, Status.RINVSERTYP),
    ("source_addr_ton", "1", 1, Status.RINVSRCTON),
    ("source_addr_npi", "1", 1, Status.RINVSRCNPI),
    ("source_addr", "c", 21, Status.RINVSRCADR),
)
_SM_TAIL: tuple[Field, ...] = (
    ("esm_class", "1", 1, Status.RINVESMCLASS),
    ("protocol_id", "1", 1, Status.RINVMSGLEN),
    ("priority_flag", "1", 1, Status.RINVPRTFLG),
    ("schedule_delivery_time", "c", 17, Status.RINVSCHED),
    ("validity_period", "c", 17, Status.RINVEXPIRY),
    ("registered_delivery", "1", 1, Status.RINVREGDLVFLG),
    ("replace_if_present_flag", "1", 1, Status.RINVREPFLAG),
    ("data_coding", "1", 1, Status.RINVMSGLEN),
    ("sm_default_msg_id", "1", 1, Status.RINVDFTMSGID),
    ("short_message", "sm", 254, Status.RINVMSGLEN),
)
_SM: tuple[Field, ...] = (
    *_SM_HEAD,
    ("dest_addr_ton", "1", 1, Status.RINVDSTTON),
    ("dest_addr_npi", "1", 1, Status.RINVDSTNPI),
    ("destination_addr", "c", 21, Status.RINVDSTADR),
    *_SM_TAIL,
)
_MULTI: tuple[Field, ...] = (*_SM_HEAD, ("dest_address", "dests", 254, Status.RINVNUMDESTS), *_SM_TAIL)
_MESSAGE_ID: tuple[Field, ...] = (("message_id", "c", 65, Status.RINVMSGID),)

SCHEMAS: dict[Command, tuple[Field, ...]] = {
    Command.GENERIC_NACK: (),
    Command.BIND_RECEIVER: _BIND,
    Command.BIND_TRANSMITTER: _BIND,
    Command.BIND_TRANSCEIVER: _BIND,
    Command.BIND_RECEIVER_RESP: _BIND_RESP,
    Command.BIND_TRANSMITTER_RESP: _BIND_RESP,
    Command.BIND_TRANSCEIVER_RESP: _BIND_RESP,
    Command.UNBIND: (),
    Command.UNBIND_RESP: (),
    Command.ENQUIRE_LINK: (),
    Command.ENQUIRE_LINK_RESP: (),
    Command.SUBMIT_SM: _SM,
    Command.SUBMIT_SM_RESP: _MESSAGE_ID,
    Command.DELIVER_SM: _SM,
    Command.DELIVER_SM_RESP: _MESSAGE_ID,
    Command.SUBMIT_MULTI: _MULTI,
    Command.SUBMIT_MULTI_RESP: (*_MESSAGE_ID, ("unsuccess_sme", "unsuccess", 254, Status.RINVMSGLEN)),
    Command.QUERY_SM: (*_MESSAGE_ID, *_SM_HEAD[1:]),
    Command.CANCEL_SM: (("service_type", "c", 6, Status.RINVSERTYP), *_MESSAGE_ID, *_SM_HEAD[1:],
                        ("dest_addr_ton", "1", 1, Status.RINVDSTTON),
                        ("dest_addr_npi", "1", 1, Status.RINVDSTNPI),
                        ("destination_addr", "c", 21, Status.RINVDSTADR)),
    Command.CANCEL_SM_RESP: (),
}

# PDUs whose body may carry optional parameters (TLVs) after the mandatory ones.
_WITH_TLVS = frozenset({
    Command.BIND_RECEIVER_RESP, Command.BIND_TRANSMITTER_RESP, Command.BIND_TRANSCEIVER_RESP,
    Command.SUBMIT_SM, Command.DELIVER_SM, Command.SUBMIT_MULTI,
})


@dataclass(frozen=True, slots=True)
class Destination:
    """One dest_address of submit_multi: an SME address, or a distribution list name."""

    addr: str
    ton: int = 0
    npi: int = 0
    dl_name: str | None = None


@dataclass(frozen=True, slots=True)
class Unsuccess:
    """One unsuccess_sme of submit_multi_resp."""

    addr: str
    ton: int
    npi: int
    status: int


@dataclass(slots=True)
class Pdu:
    command_id: int
    sequence_number: int
    command_status: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    tlvs: dict[int, bytes] = field(default_factory=dict)

    @property
    def command(self) -> Command | None:
        try:
            return Command(self.command_id)
        except ValueError:
            return None

    @property
    def name(self) -> str:
        c = self.command
        return c.name.lower() if c is not None else f"0x{self.command_id:08x}"

    def get(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)

    def tlv_int(self, tag: int) -> int | None:
        v = self.tlvs.get(tag)
        return int.from_bytes(v, "big") if v else None

    def tlv_cstr(self, tag: int) -> str | None:
        v = self.tlvs.get(tag)
        if v is None:
            return None
        return v.split(b"\0", 1)[0].decode("latin-1")

    def response(self, status: int = Status.ROK, **params: Any) -> Pdu:
        """The *_resp to this request (generic_nack for a command without one)."""
        c = self.command
        resp = c.response if c is not None else Command.GENERIC_NACK
        return Pdu(int(resp), self.sequence_number, int(status), dict(params))


# --- header -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Header:
    command_length: int
    command_id: int
    command_status: int
    sequence_number: int


def read_header(data: bytes, *, max_length: int = MAX_COMMAND_LENGTH) -> Header:
    """The first 16 octets of a PDU. A command_length below 16 or above ``max_length``
    cannot be skipped safely (the stream is lost): ESME_RINVCMDLEN."""
    if len(data) < HEADER_BYTES:
        raise SmppError(f"a PDU header is {HEADER_BYTES} octets, got {len(data)}", status=Status.RINVCMDLEN)
    length, cid, status, seq = _HEADER.unpack_from(data)
    if length < HEADER_BYTES or length > max_length:
        raise SmppError(f"command_length {length} outside {HEADER_BYTES}..{max_length}",
                        status=Status.RINVCMDLEN, command_id=cid, sequence_number=seq)
    return Header(length, cid, status, seq)


# --- decode -------------------------------------------------------------------------


def decode(data: bytes, *, max_length: int = MAX_COMMAND_LENGTH) -> Pdu:
    """One whole PDU (its command_length first) -> :class:`Pdu`."""
    h = read_header(data, max_length=max_length)
    if h.command_length != len(data):
        raise SmppError(f"command_length says {h.command_length} octets, got {len(data)}",
                        status=Status.RINVCMDLEN, command_id=h.command_id, sequence_number=h.sequence_number)
    try:
        cmd = Command(h.command_id)
    except ValueError:
        raise SmppError(f"unknown command_id 0x{h.command_id:08x}", status=Status.RINVCMDID,
                        command_id=h.command_id, sequence_number=h.sequence_number) from None
    schema = SCHEMAS.get(cmd)
    if schema is None:
        raise SmppError(f"{cmd.name.lower()} is not supported", status=Status.RINVCMDID,
                        command_id=h.command_id, sequence_number=h.sequence_number)
    pdu = Pdu(h.command_id, h.sequence_number, h.command_status)
    body = data[HEADER_BYTES:]
    # A response with an error status may come without its body (section 3.3).
    if cmd.is_response and h.command_status != 0 and not body:
        return pdu
    try:
        pos = _decode_fields(body, schema, pdu.params)
        if pos < len(body):
            if cmd not in _WITH_TLVS:
                raise SmppError(f"{len(body) - pos} octets after the last parameter", status=Status.RINVMSGLEN)
            pdu.tlvs = decode_tlvs(body[pos:])
    except SmppError as exc:
        raise SmppError(f"{cmd.name.lower()}: {exc}", status=exc.status, command_id=h.command_id,
                        sequence_number=h.sequence_number) from None
    return pdu


def _decode_fields(body: bytes, schema: Sequence[Field], out: dict[str, Any]) -> int:
    pos = 0
    for name, kind, size, bad in schema:
        if kind == "c":
            out[name], pos = _cstr(body, pos, size, name, bad)
        elif kind in ("1", "2", "4"):
            n = int(kind)
            if pos + n > len(body):
                raise SmppError(f"body ends before {name}", status=Status.RINVMSGLEN)
            out[name] = int.from_bytes(body[pos:pos + n], "big")
            pos += n
        elif kind == "sm":
            if pos >= len(body):
                raise SmppError("body ends before sm_length", status=Status.RINVMSGLEN)
            n = body[pos]
            pos += 1
            if pos + n > len(body):
                raise SmppError(f"sm_length {n} runs past the end of the body", status=Status.RINVMSGLEN)
            out[name] = bytes(body[pos:pos + n])
            pos += n
        elif kind == "dests":
            out[name], pos = _dests(body, pos)
        elif kind == "unsuccess":
            out[name], pos = _unsuccess(body, pos)
        else:  # pragma: no cover - the schemas above use only these kinds
            raise AssertionError(kind)
    return pos


def _cstr(body: bytes, pos: int, size: int, name: str, bad: Status) -> tuple[str, int]:
    end = body.find(b"\0", pos, pos + size)
    if end < 0:
        if len(body) - pos < size and body.find(b"\0", pos) < 0:
            raise SmppError(f"body ends inside {name}", status=Status.RINVMSGLEN)
        raise SmppError(f"{name} is longer than {size - 1} characters or lacks its NUL", status=bad)
    return body[pos:end].decode("latin-1"), end + 1


def _byte(body: bytes, pos: int, what: str) -> int:
    if pos >= len(body):
        raise SmppError(f"body ends before {what}", status=Status.RINVMSGLEN)
    return body[pos]


def _dests(body: bytes, pos: int) -> tuple[list[Destination], int]:
    n = _byte(body, pos, "number_of_dests")
    pos += 1
    if n == 0 or n > 254:
        raise SmppError(f"number_of_dests {n} outside 1..254", status=Status.RINVNUMDESTS)
    out: list[Destination] = []
    for _ in range(n):
        flag = _byte(body, pos, "dest_flag")
        pos += 1
        if flag == 1:
            ton = _byte(body, pos, "dest_addr_ton")
            npi = _byte(body, pos + 1, "dest_addr_npi")
            addr, pos = _cstr(body, pos + 2, 21, "destination_addr", Status.RINVDSTADR)
            out.append(Destination(addr, ton, npi))
        elif flag == 2:
            name, pos = _cstr(body, pos, 21, "dl_name", Status.RINVDLNAME)
            out.append(Destination("", dl_name=name))
        else:
            raise SmppError(f"dest_flag {flag} is neither 1 (SME) nor 2 (list)", status=Status.RINVDESTFLAG)
    return out, pos


def _unsuccess(body: bytes, pos: int) -> tuple[list[Unsuccess], int]:
    n = _byte(body, pos, "no_unsuccess")
    pos += 1
    out: list[Unsuccess] = []
    for _ in range(n):
        ton = _byte(body, pos, "dest_addr_ton")
        npi = _byte(body, pos + 1, "dest_addr_npi")
        addr, pos = _cstr(body, pos + 2, 21, "destination_addr", Status.RINVDSTADR)
        if pos + 4 > len(body):
            raise SmppError("body ends before error_status_code", status=Status.RINVMSGLEN)
        out.append(Unsuccess(addr, ton, npi, int.from_bytes(body[pos:pos + 4], "big")))
        pos += 4
    return out, pos


def decode_tlvs(data: bytes) -> dict[int, bytes]:
    """Optional parameters: tag (2), length (2), value. The first of a repeated tag wins."""
    out: dict[int, bytes] = {}
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise SmppError("a TLV header is cut short", status=Status.RINVOPTPARSTREAM)
        tag, length = struct.unpack_from(">HH", data, pos)
        pos += 4
        if pos + length > len(data):
            raise SmppError(f"TLV 0x{tag:04x} says {length} octets, {len(data) - pos} remain",
                            status=Status.RINVOPTPARSTREAM)
        fixed = TLV_FIXED_LENGTH.get(tag)
        if fixed is not None and length != fixed:
            raise SmppError(f"TLV 0x{tag:04x} must be {fixed} octets, got {length}", status=Status.RINVPARLEN)
        out.setdefault(tag, bytes(data[pos:pos + length]))
        pos += length
    return out


# --- encode -------------------------------------------------------------------------


def encode(pdu: Pdu) -> bytes:
    """:class:`Pdu` -> bytes. A response with an error status is sent without a body
    (section 3.3: bind, submit and deliver responses carry no body on error)."""
    try:
        cmd = Command(pdu.command_id)
    except ValueError:
        raise SmppError(f"cannot encode unknown command_id 0x{pdu.command_id:08x}",
                        status=Status.RINVCMDID) from None
    schema = SCHEMAS.get(cmd)
    if schema is None:
        raise SmppError(f"cannot encode {cmd.name.lower()}", status=Status.RINVCMDID)
    body = bytearray()
    if not (cmd.is_response and pdu.command_status != 0):
        for name, kind, size, bad in schema:
            _encode_field(body, name, kind, size, bad, pdu.params.get(name))
        for tag, value in pdu.tlvs.items():
            if len(value) > 0xFFFF:
                raise SmppError(f"TLV 0x{tag:04x} longer than 65535 octets", status=Status.RINVPARLEN)
            body += struct.pack(">HH", tag, len(value)) + value
    length = HEADER_BYTES + len(body)
    return _HEADER.pack(length, pdu.command_id, pdu.command_status, pdu.sequence_number) + bytes(body)


def _encode_cstr(body: bytearray, value: Any, size: int, name: str, bad: Status) -> None:
    raw = (value or "").encode("latin-1") if isinstance(value, str | None) else bytes(value)
    if b"\0" in raw or len(raw) > size - 1:
        raise SmppError(f"{name} must be at most {size - 1} octets without NUL", status=bad)
    body += raw + b"\0"


def _encode_field(body: bytearray, name: str, kind: str, size: int, bad: Status, value: Any) -> None:
    if kind == "c":
        try:
            _encode_cstr(body, value, size, name, bad)
        except UnicodeEncodeError:
            raise SmppError(f"{name} is not Latin-1", status=bad) from None
    elif kind in ("1", "2", "4"):
        n = int(kind)
        v = int(value or 0)
        if not 0 <= v < 1 << (8 * n):
            raise SmppError(f"{name} {v} does not fit {n} octet(s)", status=bad)
        body += v.to_bytes(n, "big")
    elif kind == "sm":
        raw = bytes(value or b"")
        if len(raw) > size:
            raise SmppError(f"short_message longer than {size} octets; use message_payload", status=bad)
        body.append(len(raw))
        body += raw
    elif kind == "dests":
        dests: Sequence[Destination] = value or ()
        if not 0 < len(dests) <= size:
            raise SmppError(f"number_of_dests {len(dests)} outside 1..{size}", status=bad)
        body.append(len(dests))
        for d in dests:
            if d.dl_name is not None:
                body.append(2)
                _encode_cstr(body, d.dl_name, 21, "dl_name", Status.RINVDLNAME)
            else:
                body += bytes((1, d.ton, d.npi))
                _encode_cstr(body, d.addr, 21, "destination_addr", Status.RINVDSTADR)
    elif kind == "unsuccess":
        items: Sequence[Unsuccess] = value or ()
        body.append(len(items))
        for u in items:
            body += bytes((u.ton, u.npi))
            _encode_cstr(body, u.addr, 21, "destination_addr", Status.RINVDSTADR)
            body += u.status.to_bytes(4, "big")
    else:  # pragma: no cover
        raise AssertionError(kind)


def tlv_int(value: int, octets: int) -> bytes:
    return value.to_bytes(octets, "big")


def tlv_cstr(value: str) -> bytes:
    return value.encode("latin-1") + b"\0"
