"""Admission state kept in memory: the verified-key cache, per-caller request
rate (token bucket) and daily message quota, and the queue depth."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from gsmgw.intake.types import Caller


def utc_midnight(now: dt.datetime | None = None) -> dt.datetime:
    now = now or dt.datetime.now(dt.UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


class KeyCache:
    """Keys verified in the last few seconds, by SHA-256 of the presented secret.

    Most requests then need no database read. A revoked key (``gsmgw keys
    revoke``, possibly on another host) stops working within ``ttl_s``; a wrong
    key is remembered for ``negative_ttl_s`` so that guessing does not load the
    database either.
    """

    def __init__(self, ttl_s: float = 10.0, negative_ttl_s: float = 2.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.max_entries = max_entries
        self._entries: dict[bytes, tuple[float, Caller | None]] = {}

    def get(self, digest: bytes, now: float) -> tuple[bool, Caller | None]:
        entry = self._entries.get(digest)
        if entry is None or entry[0] <= now:
            return False, None
        return True, entry[1]

    def put(self, digest: bytes, caller: Caller | None, now: float) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries = {d: e for d, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[digest] = (now + (self.ttl_s if caller is not None else self.negative_ttl_s), caller)


class RateLimiter:
    """Requests per second per caller: a token bucket holding up to one second's worth."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # caller id -> (tokens, last monotonic)

    def take(self, caller: Caller, now: float) -> float:
        """0 if the request may proceed, else seconds to wait."""
        rate = caller.rate_per_s
        if rate <= 0:
            return 0.0
        tokens, last = self._buckets.get(caller.id, (float(rate), now))
        tokens = min(float(rate), tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[caller.id] = (tokens, now)
            return (1.0 - tokens) / rate
        self._buckets[caller.id] = (tokens - 1.0, now)
        return 0.0


class DailyQuota:
    """Messages accepted per caller and UTC day.

    The count starts from the store (``count_since(caller id, midnight)``) the
    first time a caller is seen each day, so a restart does not reset a quota.
    """

    def __init__(self, count_since: Callable[[str, dt.datetime], Awaitable[int]]) -> None:
        self._count_since = count_since
        self._day: dict[str, tuple[str, int]] = {}  # caller id -> (UTC date, messages)

    async def left(self, caller: Caller) -> int | None:
        """Messages the caller may still queue today; None = no quota."""
        if caller.daily_quota <= 0:
            return None
        now = dt.datetime.now(dt.UTC)
        today = now.date().isoformat()
        day, used = self._day.get(caller.id, ("", 0))
        if day != today:
            used = await self._count_since(caller.id, utc_midnight(now))
            self._day[caller.id] = (today, used)
        return caller.daily_quota - used

    def add(self, caller: Caller, n: int) -> None:
        if caller.daily_quota > 0 and caller.id in self._day:
            day, used = self._day[caller.id]
            self._day[caller.id] = (day, used + n)


class QueueDepth:
    """The queue depth for the 'queue full' check, counted at most once per
    ``max_age_s`` (a COUNT over a million queued rows is not free) and advanced
    by our own intake in between."""

    def __init__(self, count: Callable[[], Awaitable[int]], max_age_s: float = 1.0) -> None:
        self._count = count
        self.max_age_s = max_age_s
        self._value = 0
        self._at = -1e9

    async def get(self, now: float) -> int:
        if now - self._at > self.max_age_s:
            self._at = now
            self._value = await self._count()
        return self._value

    def add(self, n: int) -> None:
        self._value += n
