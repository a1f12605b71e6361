"""SIM care rules (pure: the caller passes the clock and the random source).

What keeps a consumer SIM from being flagged by its operator, beside the sliding
minute/hour/day windows of :mod:`gsmgw.pool.limits`:

- **pacing**: a random pause between sends, for messages that are not exempt
  (priority at or above ``[sim_care] exempt_priority``, or transactional);
- **calendar caps** in ``[sim_care] timezone``: parts per month, distinct
  recipients per day and per month, and the **warm-up** ramp of a new SIM (its
  calendar-day cap rises linearly from ``warmup_start_per_day`` to ``max_per_day``);
- **recipient quiet hours**: a window in the recipient's local time;
- **cost** per part, by SIM and destination prefix.

Like the sliding windows, caps count parts. The counters live in the store
(``store.simcare``) so that they survive restarts and hold across hosts; the
store's claim asks :func:`gate` what the counters allow (see ``ClaimCare``).
"""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import timezone as pn_timezone

from gsmgw.config import Config, ModemConfig
from gsmgw.store import CareGate, CareUsage

UNLIMITED = 1 << 30


@dataclass(frozen=True, slots=True)
class CarePolicy:
    """One SIM's care settings (from its ``[[modem]]`` and ``[sim_care]``)."""

    pace_min_s: float = 0.0
    pace_max_s: float = 0.0
    pace_mode: str = "uniform"
    per_day: int = 0
    per_month: int = 0
    recipients_per_day: int = 0
    recipients_per_month: int = 0
    warmup_start_per_day: int = 0
    warmup_days: int = 0
    timezone: str = "UTC"

    @classmethod
    def of(cls, m: ModemConfig, cfg: Config) -> CarePolicy:
        return cls(m.pace_min_s, m.pace_max_s, m.pace_mode, m.max_per_day, m.max_per_month,
                   m.max_recipients_per_day, m.max_recipients_per_month, m.warmup_start_per_day,
                   m.warmup_days, cfg.sim_care.timezone)

    @property
    def paced(self) -> bool:
        return self.pace_max_s > 0

    @property
    def capped(self) -> bool:
        return bool(self.per_month or self.recipients_per_day or self.recipients_per_month
                    or self.warmup_days)

    @property
    def active(self) -> bool:
        """Whether the claim needs the store's counters at all (off = no extra work)."""
        return self.paced or self.capped


# --- pacing ---------------------------------------------------------------------------


def draw_delay_s(policy: CarePolicy, rng: random.Random | None = None) -> float:
    """The pause after a send: within [pace_min_s, pace_max_s] always."""
    lo, hi = policy.pace_min_s, policy.pace_max_s
    if hi <= 0:
        return 0.0
    r = rng or random
    if policy.pace_mode == "jitter":
        d = r.triangular(lo, hi, (lo + hi) / 2)
    else:
        d = r.uniform(lo, hi)
    return min(max(d, lo), hi)


# --- the calendar ---------------------------------------------------------------------


@lru_cache(maxsize=64)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def day_key(now: dt.datetime, tz: str) -> str:
    """The local calendar day of ``now`` (aware, any zone) as "YYYY-MM-DD"."""
    return now.astimezone(_zone(tz)).strftime("%Y-%m-%d")


def month_keys(now: dt.datetime, tz: str) -> tuple[str, str, str]:
    """(month "YYYY-MM", its first day key, its last day key) in ``tz``."""
    local = now.astimezone(_zone(tz))
    month = local.strftime("%Y-%m")
    return month, f"{month}-01", f"{month}-31"  # day keys compare as strings


def period_bounds(now: dt.datetime, tz: str) -> tuple[tuple[dt.datetime, dt.datetime], tuple[dt.datetime, dt.datetime]]:
    """The local day and the local month of ``now`` as [start, end) instants in UTC."""
    z = _zone(tz)
    local = now.astimezone(z)
    day0 = dt.datetime.combine(local.date(), dt.time(), tzinfo=z)
    day1 = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(), tzinfo=z)
    m0 = local.date().replace(day=1)
    m1 = (m0 + dt.timedelta(days=32)).replace(day=1)
    month0 = dt.datetime.combine(m0, dt.time(), tzinfo=z)
    month1 = dt.datetime.combine(m1, dt.time(), tzinfo=z)
    return ((day0.astimezone(dt.UTC), day1.astimezone(dt.UTC)),
            (month0.astimezone(dt.UTC), month1.astimezone(dt.UTC)))


def warmup_day(policy: CarePolicy, first_seen: dt.datetime | None, now: dt.datetime) -> int:
    """0 on the SIM's first local day, 1 on the next, ..."""
    if first_seen is None:
        return 0
    z = _zone(policy.timezone)
    return max(0, (now.astimezone(z).date() - first_seen.astimezone(z).date()).days)


def day_cap(policy: CarePolicy, first_seen: dt.datetime | None, now: dt.datetime) -> int:
    """Parts this SIM may send on this calendar day under its warm-up ramp (0 = no ramp)."""
    if not policy.warmup_days:
        return 0
    d = warmup_day(policy, first_seen, now)
    if d >= policy.warmup_days:
        return policy.per_day
    start, end = policy.warmup_start_per_day, policy.per_day
    return start + (end - start) * d // policy.warmup_days


def gate(policy: CarePolicy, usage: CareUsage, now: dt.datetime) -> CareGate:
    """What the counters allow this SIM to claim now."""
    left = UNLIMITED
    if policy.per_month:
        left = min(left, policy.per_month - usage.month_parts)
    ramp = day_cap(policy, usage.first_seen_at, now)
    if ramp:
        left = min(left, ramp - usage.day_parts)
    new_ok = True
    known_since = ""
    if policy.recipients_per_month and usage.month_recipients >= policy.recipients_per_month:
        new_ok, known_since = False, "month"
    if policy.recipients_per_day and usage.day_recipients >= policy.recipients_per_day:
        # Today's numbers only (a stricter set than the month's).
        new_ok, known_since = False, "day"
    pace_ok = usage.next_send_at is None or usage.next_send_at <= now
    return CareGate(pace_ok=pace_ok, max_parts=max(0, left), new_recipients_ok=new_ok,
                    known_since=known_since)


def status(policy: CarePolicy, usage: CareUsage, now: dt.datetime) -> dict[str, object]:
    """The SIM's care figures for the status API: used/left per cap, pacing, warm-up."""

    def cap(limit: int, used: int) -> dict[str, int] | None:
        return {"cap": limit, "used": used, "left": max(0, limit - used)} if limit else None

    ramp = day_cap(policy, usage.first_seen_at, now)
    nxt = usage.next_send_at if usage.next_send_at and usage.next_send_at > now else None
    return {
        "pace": ({"min_s": policy.pace_min_s, "max_s": policy.pace_max_s, "mode": policy.pace_mode,
                  "next_send_at": nxt} if policy.paced else None),
        "caps": {
            "day": cap(ramp, usage.day_parts),
            "month": cap(policy.per_month, usage.month_parts),
            "recipients_day": cap(policy.recipients_per_day, usage.day_recipients),
            "recipients_month": cap(policy.recipients_per_month, usage.month_recipients),
        },
        "warmup": ({"day": warmup_day(policy, usage.first_seen_at, now) + 1, "days": policy.warmup_days,
                    "cap_today": ramp, "first_seen_at": usage.first_seen_at}
                   if policy.warmup_days else None),
        "timezone": policy.timezone,
    }


# --- recipient quiet hours --------------------------------------------------------------


def _minutes(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:5])


def window_minutes(spec: str) -> tuple[int, int]:
    """"08:00-21:00" → (480, 1260); a window may wrap midnight."""
    a, b = spec.split("-")
    return _minutes(a), _minutes(b)


def _open_in_zone(start: int, end: int, local: dt.datetime) -> bool:
    mins = local.hour * 60 + local.minute
    if start < end:
        return start <= mins < end
    return mins >= start or mins < end


def _next_open_in_zone(start: int, end: int, zone: zoneinfo.ZoneInfo, now: dt.datetime) -> dt.datetime:
    """The first instant at or after ``now`` when the window is open in ``zone`` (UTC)."""
    local = now.astimezone(zone)
    if _open_in_zone(start, end, local):
        return now
    for add in range(0, 3):
        day = local.date() + dt.timedelta(days=add)
        opening = dt.datetime.combine(day, dt.time(start // 60, start % 60), tzinfo=zone)
        # A start time inside a DST gap does not exist: normalise through UTC.
        opening = opening.astimezone(dt.UTC)
        if opening >= now:
            return opening
    return now + dt.timedelta(days=1)  # pragma: no cover - a window opens every day


@lru_cache(maxsize=4096)
def recipient_zones(number: str, fallback: str) -> tuple[str, ...]:
    """The IANA zones of an E.164 number (phonenumbers' data); ``fallback`` when unknown."""
    try:
        zones = pn_timezone.time_zones_for_number(phonenumbers.parse(number))
    except phonenumbers.NumberParseException:
        zones = ()
    valid = []
    for z in zones:
        try:
            _zone(z)
            valid.append(z)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            continue
    return tuple(valid) or (fallback,)


def recipient_open_at(number: str, spec: str, now: dt.datetime, fallback_tz: str = "UTC") -> dt.datetime | None:
    """``None`` when the window is open for ``number`` now, else when it opens (UTC).

    A number whose country spans several zones gets the most restrictive reading:
    the window must be open in every one of them at once. If those windows never
    meet (zones too far apart), the earliest zone's window is used alone.
    """
    if not spec:
        return None
    start, end = window_minutes(spec)
    zones = [_zone(z) for z in recipient_zones(number, fallback_tz)]
    t = now
    for _ in range(4 * len(zones) + 2):
        later = max(_next_open_in_zone(start, end, z, t) for z in zones)
        if later == t:
            return None if t == now else t
        t = later
        if t - now > dt.timedelta(days=2):
            break
    # The windows do not intersect: the zone that opens first decides.
    first = min(_next_open_in_zone(start, end, z, now) for z in zones)
    return None if first == now else first


def window_rule(cfg: Config) -> Callable[[str, dt.datetime], dt.datetime | None] | None:
    spec, tz = cfg.quiet_hours.recipient_window, cfg.sim_care.timezone
    if not spec:
        return None
    return lambda number, now: recipient_open_at(number, spec, now, tz)


# --- cost ----------------------------------------------------------------------------------


def part_cost_micros(cfg: Config, modem: ModemConfig, number: str) -> int | None:
    """What one part to ``number`` from ``modem`` costs: the longest matching
    ``[[cost.rate]]`` prefix (a rate for this SIM beats one for any SIM at equal
    length), else the SIM's ``cost_per_part_micros``; ``None`` when nothing is set."""
    best: tuple[int, int, int] | None = None
    for r in cfg.cost.rate:
        if r.modem and r.modem != modem.id:
            continue
        if number.startswith(r.prefix):
            key = (len(r.prefix), 1 if r.modem else 0, r.part_micros)
            if best is None or key[:2] > best[:2]:
                best = key
    if best is not None:
        return best[2]
    return modem.cost_per_part_micros or None


__all__ = [
    "CarePolicy", "day_cap", "day_key", "draw_delay_s", "gate", "month_keys", "part_cost_micros", "period_bounds",
    "recipient_open_at", "recipient_zones", "status", "warmup_day", "window_minutes", "window_rule",
]
