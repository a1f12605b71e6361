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


# States a message does not leave (a batch's progress counts them; the console stops
# watching a message there). "sent" is not one: a status report may still come.
FINAL_MESSAGE_STATES = frozenset(
    {MessageState.DELIVERED, MessageState.FAILED, MessageState.EXPIRED, MessageState.CANCELLED,
     MessageState.UNKNOWN}
)


class ModemState(enum.StrEnum):
    """Lifecycle of one modem (see design.md, flow 3)."""

    DISCONNECTED = "disconnected"
    PROBING = "probing"
    SIM_LOCKED = "sim_locked"
    REGISTERING = "registering"
    READY = "ready"
    FAILED = "failed"


class EventType(enum.StrEnum):
    """Type of an outbox event (the ``events`` table; webhooks, compat callbacks).

    The values are the wire names receivers subscribe to (``sms:*`` = a family).
    """

    # One per message (never per part), when the message as a whole changes state.
    SMS_SENT = "sms:sent"
    SMS_DELIVERED = "sms:delivered"
    SMS_FAILED = "sms:failed"
    SMS_UNKNOWN = "sms:unknown"
    SMS_EXPIRED = "sms:expired"
    SMS_CANCELLED = "sms:cancelled"
    # Inbound.
    SMS_RECEIVED = "sms:received"
    SMS_UNDECODABLE = "sms:undecodable"
    OPTOUT_ADDED = "optout:added"
    OPTOUT_REMOVED = "optout:removed"
    # Modems and SIMs.
    MODEM_ONLINE = "modem:online"
    MODEM_OFFLINE = "modem:offline"
    SIM_STORAGE_FULL = "sim:storage-full"
    BALANCE_LOW = "balance:low"
    # Inbound rules (issue 19): work a rule hands to a door through the outbox; the
    # payload carries the admin-configured target and the inbound message.
    RULE_MQTT = "rule.mqtt"  # {"topic": relative subtopic, "message": {...}}
    RULE_EMAIL = "rule.email"  # {"rule": name, "to": [addresses], "message": {...}}
    RULE_WEBHOOK = "rule.webhook"  # {"rule": name, "url": url, "message": {...}}
    # A USSD request's reply (API, console, MQTT or the balance check; issue 19).
    USSD_REPLY = "ussd:reply"
    # SIM care (issue 20): a keep-alive failed; a SIM has been quiet longer than its operator allows.
    SIM_KEEPALIVE_FAILED = "sim:keepalive-failed"
    SIM_EXPIRY_RISK = "sim:expiry-risk"

    @classmethod
    def for_message(cls, state: MessageState) -> EventType:
        """The event a message entering ``state`` writes (ValueError for queued/sending)."""
        return cls(f"sms:{state.value}")

    @property
    def family(self) -> str:
        """``"sms"`` for ``sms:sent``: what a ``sms:*`` subscription matches."""
        return event_family(self)


def event_family(event_type: str) -> str:
    """The part before the colon of an event type (stored types are plain strings)."""
    return event_type.split(":", 1)[0]


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
