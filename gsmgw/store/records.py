"""The plain values the repositories take and return, and the id and clock they share."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gsmgw.domain import MessageState


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id() -> str:
    """Time-ordered id: 12 hex digits of milliseconds, then 12 random hex digits."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


def id_floor(at: dt.datetime) -> str:
    """The smallest id ``new_id`` could have given at ``at``: "created since T" is then
    a primary-key range."""
    return f"{int(at.timestamp() * 1000):012x}"


# --- API keys -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    scopes: frozenset[str]
    rate_per_s: int = 0
    daily_quota: int = 0


# --- messages and parts ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A validated message ready to be queued (one recipient)."""

    to_number: str
    text: str
    encoding: str
    parts_total: int
    priority: int = 0
    send_at: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    sim_requested: str | None = None
    flash: bool = False
    delivery_report: bool = True
    transactional: bool = False
    resend_unknown: bool = False
    callback_url: str | None = None
    # From the routing rules: the SIM group to use, and after how long any SIM may
    # (None = strict).
    route_group: str | None = None
    route_fallback_s: float | None = None
    # The surface that took the request ("api", "android", "kannel", ...) and its own
    # data as JSON text (Kannel's dlr-url and dlr-mask), so it can act on receipts later.
    door: str | None = None
    door_data: str | None = None
    schedule_id: str | None = None  # the recurring schedule that queued it (issue 20)
    campaign_id: str | None = None  # the campaign that made it (issue 21)


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    batch_id: str
    message_ids: tuple[str, ...]
    # True when the Idempotency-Key matched an earlier request: nothing new was queued.
    replayed: bool = False
    # On a replay: the earlier request's fingerprint (None if it was stored before
    # fingerprints were), and its messages as (id, to_number, encoding, parts_total),
    # in the order of its recipients.
    fingerprint: str | None = None
    messages: tuple[tuple[str, str, str, int], ...] = ()


# --- claims -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartResult:
    seq: int
    state: MessageState
    tp_mr: int | None = None
    error_code: str | None = None
    error_text: str | None = None


@dataclass(slots=True)
class ClaimedMessage:
    id: str
    to_number: str
    text: str
    parts_total: int
    flash: bool
    delivery_report: bool
    resend_unknown: bool
    concat_ref: int
    attempts: int
    valid_until: dt.datetime
    # Sequence numbers (1-based) of the parts still to send, in order.
    pending_seqs: list[int] = field(default_factory=list)


@dataclass(slots=True)
class NextMark:
    """A modem's next claim, to be marked ``sending`` in the commit that settles its
    current one (the pipelined send loop). The settle sets ``taken``: ``False`` when
    the claim is no longer this host's (another host recovered it after its lease
    ran out), and then its PDU must not be written."""

    message_id: str
    seqs: Sequence[int]
    modem_id: str
    attempt: int | None = None  # ClaimedMessage.attempts: this claim, not a later one
    taken: bool = False


# --- status reports ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportIn:
    """A decoded status report, as the store records and matches it."""

    modem_id: str
    tp_mr: int
    recipient: str
    status: int
    category: str
    meaning: str
    scts: dt.datetime | None
    discharge_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class ReportMatch:
    report_id: int
    message_id: str | None
    seq: int | None = None
    # Set when the report changed the message's state (delivered / failed).
    new_state: MessageState | None = None


# --- inbound ------------------------------------------------------------------------------

# join(parts) -> text; parts have .concat_seq, .encoding, .text, .user_data (hex).
JoinFn = Callable[[Sequence[Any]], str]
# classify(text) -> ("stop" | "start", keyword) or None.
ClassifyFn = Callable[[str], "tuple[str, str] | None"]


@dataclass(frozen=True, slots=True)
class InboundPart:
    """One decoded SMS-DELIVER as read from a SIM (or routed with +CMT)."""

    modem_id: str
    dedup_key: str
    sender: str
    scts: dt.datetime | None
    encoding: str
    text: str
    user_data: str  # hex, UDH removed
    pdu: str
    concat_ref: int | None = None
    concat_bits: int | None = None
    concat_total: int = 1
    concat_seq: int = 1


@dataclass(frozen=True, slots=True)
class StoredInbound:
    id: str
    modem_id: str
    sender: str
    text: str
    encoding: str
    parts_total: int
    parts_received: int
    complete: bool
    missing: tuple[int, ...]
    in_reply_to: str | None
    sent_at: dt.datetime | None
    received_at: dt.datetime
    # ("stop" | "start", keyword) when the text changed the sender's opt-out.
    optout: tuple[str, str] | None = None
    # The opt-out list actually changed (a repeated STOP does not).
    optout_changed: bool = False


@dataclass(frozen=True, slots=True)
class IngestResult:
    duplicate: bool
    # Set when this part completed (or was) a whole message.
    message: StoredInbound | None = None


# --- the outbox -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One row of the events table, as a consumer of the outbox gets it."""

    id: int
    type: str
    message_id: str | None
    modem_id: str | None
    payload: str  # JSON text
    created_at: dt.datetime

    def data(self) -> dict[str, Any]:
        """The payload decoded; a payload that is not a JSON object comes as {"value": ...}."""
        try:
            value = json.loads(self.payload or "{}")
        except ValueError:
            return {"raw": self.payload}
        return value if isinstance(value, dict) else {"value": value}


@dataclass(frozen=True, slots=True)
class OutboxRead:
    """What one consumer may handle next.

    ``events`` are the ones safe to consume (no id before them can still commit),
    in id order, of the requested types. ``through_id`` is the last event id this
    read covered, types filtered out included: once every event is handled, the
    consumer advances from ``cursor`` to ``through_id`` (``through_id == cursor``:
    nothing new). ``more``: the read stopped at its limit, read again at once.
    """

    consumer: str
    cursor: int
    events: tuple[OutboxEvent, ...]
    through_id: int
    more: bool = False


__all__ = [
    "ApiKey",
    "ClaimedMessage",
    "ClassifyFn",
    "EnqueueResult",
    "InboundPart",
    "IngestResult",
    "JoinFn",
    "NewMessage",
    "NextMark",
    "OutboxEvent",
    "OutboxRead",
    "PartResult",
    "ReportIn",
    "ReportMatch",
    "StoredInbound",
    "id_floor",
    "new_id",
    "utcnow",
]


# --- SIM care (issue 20): what the claim reads and the settle writes ---------------------


@dataclass(frozen=True, slots=True)
class CareUsage:
    """One SIM's counters in the store for the current local day and month."""

    first_seen_at: dt.datetime | None = None
    next_send_at: dt.datetime | None = None
    day_parts: int = 0
    month_parts: int = 0
    day_recipients: int = 0
    month_recipients: int = 0


@dataclass(frozen=True, slots=True)
class CareGate:
    """What the counters allow the SIM to claim now (gsmgw.pool.pacing.gate)."""

    pace_ok: bool = True  # False: only exempt messages (priority / transactional)
    max_parts: int = 1 << 30  # 0: nothing at all
    new_recipients_ok: bool = True  # False: only numbers already contacted since known_since
    known_since: str = ""  # "day" or "month"


@dataclass(frozen=True, slots=True)
class ClaimCare:
    """SIM care in the claim (plain values and the pool's pure rules).

    ``gate`` decides from the SIM's counters (``None``: no caps, no pacing);
    ``window`` says when a non-transactional message to a number may go
    (``None`` = now), else ``None`` for no recipient quiet hours.
    """

    day: str
    month_first_day: str
    month_last_day: str
    month: str
    gate: Callable[[CareUsage], CareGate] | None = None
    exempt_priority: int = 5
    exempt_transactional: bool = True
    window: Callable[[str, dt.datetime], dt.datetime | None] | None = None


@dataclass(frozen=True, slots=True)
class CareRecord:
    """What a send adds to its SIM's counters, given at settle."""

    modem_id: str
    number: str
    day: str
    month: str
    next_send_at: dt.datetime | None
    at: dt.datetime
    cost_per_part_micros: int | None = None
    # False: only the cost is recorded (SIM care off for this SIM, cost on).
    count: bool = True
