"""Enums and small value types shared by every layer (no I/O here)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class MessageState(enum.StrEnum):
    """State of an outbound message, and of each of its parts."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    # The PDU was written but no final result came back: it may or may not have
    # left the modem. Never treated as "failed and safe to resend".
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_STATES


_FINAL_STATES = frozenset(
    {
        MessageState.DELIVERED,
        MessageState.FAILED,
        MessageState.EXPIRED,
        MessageState.CANCELLED,
        MessageState.UNKNOWN,
    }
)


class ModemState(enum.StrEnum):
    """Lifecycle of one modem (see design.md, flow 3)."""

    DISCONNECTED = "disconnected"
    PROBING = "probing"
    SIM_LOCKED = "sim_locked"
    REGISTERING = "registering"
    READY = "ready"
    FAILED = "failed"
    DISABLED = "disabled"


class Encoding(enum.StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"
    BINARY = "8bit"


class SendOutcomeKind(enum.StrEnum):
    OK = "ok"  # final OK with +CMGS: <mr>
    ERROR = "error"  # a definite refusal (CMS/CME code or ERROR) before or without sending
    UNKNOWN = "unknown"  # the PDU was written but no final result came


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What one ``AT+CMGS`` really achieved. Layers above must honour ``UNKNOWN``."""

    kind: SendOutcomeKind
    tp_mr: int | None = None
    cms_code: int | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.kind is SendOutcomeKind.OK


@dataclass(frozen=True, slots=True)
class ModemIdentity:
    manufacturer: str = ""
    model: str = ""
    firmware: str = ""
    imei: str = ""
    imsi: str = ""
    iccid: str = ""
    operator: str = ""
    own_number: str = ""
