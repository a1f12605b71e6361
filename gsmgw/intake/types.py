"""The values that go into and come out of the intake service (plain, frozen, no I/O)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

SCOPES = ("send", "read", "admin")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: an API key as the store knows it (id, name, scopes, limits)."""

    id: str
    name: str
    scopes: frozenset[str]
    rate_per_s: int = 0  # requests per second; 0 = unlimited
    daily_quota: int = 0  # messages per UTC day; 0 = unlimited

    def may(self, scope: str) -> bool:
        """``admin`` may do everything the other scopes allow."""
        return scope in self.scopes or "admin" in self.scopes

    @classmethod
    def of(cls, key: Any) -> Caller:
        """From the store's ApiKey (or anything with the same attributes)."""
        return cls(id=key.id, name=key.name, scopes=frozenset(key.scopes), rate_per_s=key.rate_per_s,
                   daily_quota=key.daily_quota)


@dataclass(frozen=True, slots=True)
class Recipient:
    """One recipient with its own template variables (they override the common ones)."""

    to: Any  # a phone number as the caller wrote it; checked by the service
    variables: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A send request as plain values. Each field is checked by the service, whatever
    its type: a door may pass what its caller sent without checking it first.

    ``None`` means "the gateway's default" (delivery_report, resend_unknown: the
    [dispatch] settings; priority: normal; valid_until: dispatch.default_ttl_s).
    """

    to: str | Sequence[str | Recipient]
    text: str | None = None
    template: str | None = None
    variables: Mapping[str, Any] | None = None
    priority: str | int | None = None  # low, normal, high, otp or -10..10
    send_at: dt.datetime | str | None = None  # an aware datetime or ISO 8601 with a zone
    valid_until: dt.datetime | str | None = None
    ttl_s: float | None = None  # from send_at (or now); wins over valid_until
    sim: str | None = None  # a modem id
    flash: bool = False
    delivery_report: bool | None = None
    transactional: bool = False  # also to numbers that opted out
    resend_unknown: bool | None = None
    callback_url: str | None = None  # to a host in webhooks.allowed_hosts
    idempotency_key: str | None = None  # the same caller and key never queue twice
    door: str = "api"  # which surface took the request (stored with each message)
    door_data: Mapping[str, Any] | None = None  # the door's own JSON-able data, stored with each message
    schedule_id: str | None = None  # the recurring schedule an occurrence comes from (messages.schedule_id)
    campaign_id: str | None = None  # the campaign that sends it (gsmgw.campaigns), stored with each message


class SubmittedMessage(NamedTuple):
    """One queued message (a tuple: a 1,000-recipient request makes 1,000 of them)."""

    id: str
    to: str  # E.164
    encoding: str  # gsm7 | ucs2
    parts: int


@dataclass(frozen=True, slots=True)
class SubmitResult:
    batch_id: str
    messages: tuple[SubmittedMessage, ...]
    # True when the idempotency key matched an earlier request: nothing new was queued,
    # and these are that request's ids.
    replayed: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def message_ids(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.messages)


@dataclass(frozen=True, slots=True)
class CancelResult:
    """``cancelled`` if this call cancelled it; ``state`` its state now, None when there
    is no such message for this caller."""

    cancelled: bool
    state: str | None

    def __bool__(self) -> bool:
        return self.cancelled


class IntakeObserver(Protocol):
    """Metrics hooks (the API's Prometheus counters implement these)."""

    def on_accepted(self, n: int) -> None: ...

    def on_rejected(self, reason: str) -> None: ...  # "rate", "quota", "queue_full"


__all__ = [
    "SCOPES",
    "Caller",
    "CancelResult",
    "IntakeObserver",
    "Recipient",
    "SendRequest",
    "SubmitResult",
    "SubmittedMessage",
]
