"""submit_sm / submit_multi -> plain values for the intake service (pure, no I/O).

What a PDU says is checked here at the protocol level (addresses, times, flags,
data_coding, UDH); numbers, text length, opt-out and admission are the intake
service's, the same as for every other door.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from gsmgw.errors import SmppError
from gsmgw.smpp.constants import (
    ESM_MESSAGE_TYPE_MASK,
    RD_INTERMEDIATE,
    RD_RECEIPT_MASK,
    RD_RECEIPT_NONE,
    Command,
    Status,
)
from gsmgw.smpp.message import Concat, parse_time, submitted_text
from gsmgw.smpp.pdu import Pdu

# priority_flag 0..3 (section 5.2.14) -> gsmgw priority (-10..10; "otp" is 9).
PRIORITY = {0: 0, 1: 3, 2: 6, 3: 9}
TON_INTERNATIONAL = 1
TON_ALPHANUMERIC = 5


@dataclass(frozen=True, slots=True)
class Submission:
    """One message to queue, as plain values (the SMPP door's view of a SendRequest)."""

    to: tuple[str, ...]
    text: str
    flash: bool = False
    priority: int = 0
    send_at: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    # True: the network's status report is needed (a receipt was asked for); None: config default.
    delivery_report: bool | None = None
    door_data: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Parsed:
    """A submit as read from its PDU: the message, and which part it is if split."""

    submission: Submission
    concat: Concat | None
    registered_delivery: int
    source: tuple[str, int, int]
    # A part's octets and codec, joined with the other parts' before decoding.
    data: bytes = b""
    codec: str = "gsm7"


def address(addr: str, ton: int, npi: int, *, status: Status) -> str:
    """A destination as the intake service reads it: "+" and digits for ton 1."""
    if not addr:
        raise SmppError("destination_addr is empty", status=status)
    if ton == TON_ALPHANUMERIC:
        raise SmppError(f"{addr!r} is alphanumeric; a destination must be a phone number", status=status)
    if ton == TON_INTERNATIONAL and not addr.startswith("+"):
        return "+" + addr
    return addr


def _registered_delivery(pdu: Pdu) -> int:
    rd = int(pdu.get("registered_delivery", 0))
    if rd & RD_RECEIPT_MASK == 3 or rd & ~(RD_RECEIPT_MASK | 0x0C | RD_INTERMEDIATE):
        raise SmppError(f"registered_delivery 0x{rd:02x} has reserved bits set", status=Status.RINVREGDLVFLG)
    return rd


def parse_submit(pdu: Pdu, *, system_id: str, now: dt.datetime, default_alphabet: str = "gsm7") -> Parsed:
    """A submit_sm or submit_multi -> :class:`Parsed`. SmppError with the status to answer."""
    esm = int(pdu.get("esm_class", 0))
    if esm & ESM_MESSAGE_TYPE_MASK:
        raise SmppError(f"esm_class 0x{esm:02x}: a submit must be a plain message (type 0)",
                        status=Status.RINVESMCLASS)
    prio = int(pdu.get("priority_flag", 0))
    if prio not in PRIORITY:
        raise SmppError(f"priority_flag {prio} outside 0..3", status=Status.RINVPRTFLG)
    rd = _registered_delivery(pdu)
    send_at = parse_time(pdu.get("schedule_delivery_time", ""), now=now, status=Status.RINVSCHED)
    valid_until = parse_time(pdu.get("validity_period", ""), now=now, status=Status.RINVEXPIRY)
    if send_at is not None and send_at <= now:
        send_at = None  # due already: send now
    if valid_until is not None and valid_until <= (send_at or now):
        raise SmppError("validity_period ends before the message could be sent", status=Status.RINVEXPIRY)
    if pdu.command_id == Command.SUBMIT_MULTI:
        dests = pdu.get("dest_address") or []
        if any(d.dl_name is not None for d in dests):
            raise SmppError("distribution lists are not supported", status=Status.RINVDLNAME)
        to = tuple(address(d.addr, d.ton, d.npi, status=Status.RINVDSTADR) for d in dests)
        dst = ("", 0, 0)
    else:
        dst = (pdu.get("destination_addr", ""), int(pdu.get("dest_addr_ton", 0)),
               int(pdu.get("dest_addr_npi", 0)))
        to = (address(*dst, status=Status.RINVDSTADR),)
    text = submitted_text(pdu, default_alphabet=default_alphabet)
    if text.text == "" and text.concat is None:
        raise SmppError("the message is empty", status=Status.RINVMSGLEN)
    source = (pdu.get("source_addr", ""), int(pdu.get("source_addr_ton", 0)), int(pdu.get("source_addr_npi", 0)))
    door_data: dict[str, Any] = {
        "system_id": system_id,
        "rd": rd,
        "src": list(source),
        "dst": list(dst),
    }
    if pdu.command_id == Command.SUBMIT_MULTI:
        door_data["multi"] = True
    sub = Submission(
        to=to, text=text.text, flash=text.flash, priority=PRIORITY[prio], send_at=send_at,
        valid_until=valid_until,
        delivery_report=True if rd & (RD_RECEIPT_MASK | RD_INTERMEDIATE) != RD_RECEIPT_NONE else None,
        door_data=door_data,
    )
    return Parsed(sub, text.concat, rd, source, text.data, text.codec)


def group_key(system_id: str, parsed: Parsed) -> str:
    """Which held parts belong together: same account, addresses, reference and total."""
    c = parsed.concat
    assert c is not None
    raw = "\0".join([system_id, parsed.source[0], *parsed.submission.to, str(c.ref), str(c.total)])
    return hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()
