"""Recurrence rules and the missed-occurrence policy (pure: no I/O, no clock).

A schedule repeats by an RFC 5545 RRULE (python-dateutil) or a cron expression
(cronsim), in an IANA time zone (zoneinfo). Both are evaluated in *local wall
time*: "every day at 09:00 Europe/Berlin" is 08:00 UTC in winter and 07:00 UTC in
summer. Where a local time does not exist (the spring-forward gap), RFC 5545
§3.3.5 says it is read with the offset before the gap (02:30 → 03:30 CEST);
cron follows cronsim (the first minute after the gap, 03:00). A repeated local
time (fall-back) is the first of the two (fold 0), once.

Everything the service stores and compares is UTC.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from dateutil.rrule import rrule, rrulestr

MIN_INTERVAL_S = 60.0
"""Occurrences closer than this are refused: a schedule sends SMS, not a stream."""
MAX_EXPR_CHARS = 500
Missed = Literal["once", "skip"]
MISSED_POLICIES: tuple[str, ...] = ("once", "skip")

_TZ_RE = re.compile(r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+){0,3}$")


class RuleError(ValueError):
    """A rule, cron expression or time zone that cannot be used; ``field`` names the input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def zone(name: object) -> ZoneInfo:
    """An IANA time zone by name ("Europe/Berlin", "UTC"); RuleError if unknown."""
    if not isinstance(name, str) or not 0 < len(name) <= 64 or not _TZ_RE.match(name) or ".." in name:
        raise RuleError("timezone", f"timezone must be an IANA name such as \"Europe/Berlin\", got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise RuleError("timezone", f"unknown time zone {name!r} (an IANA name such as \"Europe/Berlin\")") from None


def utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC)


@dataclass(frozen=True)
class Recurrence:
    """When a schedule fires: ``kind`` "rrule" or "cron", the expression, the zone,
    and ``start`` (the rrule's DTSTART; no occurrence is before it).

    ``anchor`` is an occurrence known to belong to the rule (the last one a schedule
    handled): an RRULE without COUNT is then expanded from there instead of from its
    DTSTART, so that a minutely rule a year old costs no more than a new one. (Every
    default an RRULE takes from DTSTART, its weekday, day, hour, minute, is the same
    in each of its occurrences, and its periods stay aligned: the sequence is the same.)
    """

    kind: Literal["rrule", "cron"]
    expr: str
    tz: ZoneInfo
    start: dt.datetime  # aware
    anchor: dt.datetime | None = None

    def _local(self, t: dt.datetime) -> dt.datetime:
        return t.astimezone(self.tz)

    def rule(self, anchor: dt.datetime | None = None) -> rrule:
        """The dateutil rrule (ValueError if the RRULE is invalid)."""
        dtstart = self._local(self.start).replace(microsecond=0)
        r = rrulestr(self.expr, dtstart=dtstart, cache=False)
        if not isinstance(r, rrule):
            raise ValueError("expected one RRULE")
        if anchor is not None and anchor > self.start and "COUNT=" not in self.expr.upper():
            r = r.replace(dtstart=self._local(anchor).replace(microsecond=0))
        return r

    def iter_after(self, t: dt.datetime) -> Iterator[dt.datetime]:
        """Occurrences strictly after ``t``, in UTC, strictly increasing.

        Wall times in a DST gap map (RFC 5545) onto instants that the times after the
        gap map to as well: such a repeat is dropped, never yielded twice.
        """
        last = t
        if self.kind == "cron":
            # cronsim yields the times strictly after its start, at minute resolution.
            src: Iterator[dt.datetime] = iter(CronSim(self.expr, self._local(max(t, self.start))))
        else:
            anchor = self.anchor if self.anchor is not None and self.anchor <= t else None
            src = iter(self.rule(anchor))
        for occ in src:
            u = utc(occ)
            if u > last and u >= self.start:
                last = u
                yield u

    def after(self, t: dt.datetime) -> dt.datetime | None:
        """The first occurrence strictly after ``t`` (UTC), or None if the rule has ended."""
        return next(self.iter_after(t), None)

    def between(self, a: dt.datetime, b: dt.datetime, limit: int = 1000) -> list[dt.datetime]:
        """Occurrences in (a, b], UTC, ascending, at most ``limit`` (the earliest)."""
        out: list[dt.datetime] = []
        for u in self.iter_after(a):
            if u > b or len(out) >= limit:
                break
            out.append(u)
        return out

    def count_and_latest(self, a: dt.datetime, b: dt.datetime, cap: int = 100_000) -> tuple[int, dt.datetime | None]:
        """How many occurrences are in (a, b] (counted up to ``cap``) and the last one."""
        n, last = 0, None
        for u in self.iter_after(a):
            if u > b:
                break
            n, last = n + 1, u
            if n >= cap:  # a minutely rule over months of downtime: find the last by steps
                last = self._latest_by_steps(u, b)
                break
        return n, last

    def _latest_by_steps(self, a: dt.datetime, b: dt.datetime) -> dt.datetime | None:
        lo = max(a, b - dt.timedelta(days=1))
        while True:
            occ = self.between(lo, b, limit=10_000_000)
            if occ:
                return occ[-1]
            if lo <= a:
                return None
            lo = max(a, lo - dt.timedelta(days=30))


def _ever_occurs(body: str, start_local: dt.datetime) -> bool:
    """Whether an RRULE (UNTIL and COUNT aside) matches any date at all.

    dateutil looks for the next match up to the year 9999, which for a rule that never
    matches (BYMONTH=2;BYMONTHDAY=30) at FREQ=MINUTELY takes tens of seconds. The
    Gregorian calendar repeats every 400 years, weekdays included, so the same rule
    started a multiple of 400 years later, within 400 years of 9999, matches if and
    only if it matches at all, and is searched to the end in well under a second.
    """
    kept = ";".join(p for p in body.split(";") if not p.strip().upper().startswith(("UNTIL=", "COUNT=")))
    late = start_local.replace(tzinfo=None, year=start_local.year + (9599 - start_local.year) // 400 * 400)
    return next(iter(rrulestr(kept, dtstart=late, cache=False)), None) is not None  # type: ignore[arg-type]


def parse_recurrence(*, rrule_expr: str | None, cron_expr: str | None, timezone: str,
                     start: dt.datetime, now: dt.datetime) -> Recurrence:
    """A checked recurrence; RuleError with the field and a clear reason otherwise.

    Exactly one of ``rrule_expr`` / ``cron_expr``. The rule must have an occurrence
    after ``now`` and repeat at most once a minute.
    """
    tz = zone(timezone)
    if (rrule_expr is None) == (cron_expr is None):
        raise RuleError("rrule", "give exactly one of rrule (RFC 5545) or cron")
    field = "rrule" if rrule_expr is not None else "cron"
    expr = rrule_expr if rrule_expr is not None else cron_expr
    if not isinstance(expr, str) or not expr.strip() or len(expr) > MAX_EXPR_CHARS:
        raise RuleError(field, f"{field} must be a non-empty string of at most {MAX_EXPR_CHARS} characters")
    if not expr.isascii() or not expr.isprintable():
        raise RuleError(field, f"{field} must be printable ASCII")
    expr = expr.strip()
    if field == "rrule":
        body = expr[6:] if expr.upper().startswith("RRULE:") else expr
        upper = body.upper()
        if "DTSTART" in upper or "\n" in body or "EXDATE" in upper or "RDATE" in upper:
            raise RuleError("rrule", "rrule is one RRULE value (e.g. \"FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0\"); "
                            "give the start as start, not DTSTART")
        if "FREQ=" not in upper.replace(" ", ""):
            raise RuleError("rrule", "an RRULE needs FREQ, e.g. \"FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0\"")
        if "FREQ=SECONDLY" in upper.replace(" ", ""):
            raise RuleError("rrule", "FREQ=SECONDLY is not allowed: a schedule repeats at most once a minute")
        for part in upper.replace(" ", "").split(";"):
            if part.startswith("INTERVAL=") and not re.fullmatch(r"INTERVAL=[1-9][0-9]{0,3}", part):
                raise RuleError("rrule", "INTERVAL must be a whole number from 1 to 9999")
        rec = Recurrence("rrule", body, tz, start)
        try:
            rec.rule()
            ever = _ever_occurs(body, start.astimezone(tz))
        except (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError) as exc:
            raise RuleError("rrule", f"not a valid RFC 5545 RRULE: {exc}") from None
        if not ever:
            raise RuleError("rrule", "the rrule matches no date at all (e.g. BYMONTH=2;BYMONTHDAY=30)")
    else:
        fields = expr.split()
        if len(fields) != 5:
            raise RuleError("cron", f"cron needs 5 fields (minute hour day-of-month month day-of-week), got "
                            f"{len(fields)}: {expr!r}")
        rec = Recurrence("cron", " ".join(fields), tz, start)
        try:
            CronSim(rec.expr, start.astimezone(tz))
        except (CronSimError, ValueError) as exc:
            raise RuleError("cron", f"not a valid cron expression: {exc}") from None
    try:
        first = rec.after(max(now, start) - dt.timedelta(microseconds=1))
        sample = rec.between(first - dt.timedelta(microseconds=1), first + dt.timedelta(days=3660), limit=50) \
            if first is not None else []
    except (ValueError, TypeError, OverflowError, CronSimError) as exc:
        raise RuleError(field, f"cannot evaluate {field}: {exc}") from None
    if first is None:
        raise RuleError(field, f"the {field} has no occurrence after now (check UNTIL/COUNT and start)")
    for x, y in itertools.pairwise(sample):
        if (y - x).total_seconds() < MIN_INTERVAL_S:
            raise RuleError(field, f"occurrences {x:%H:%M:%S} and {y:%H:%M:%S} UTC are less than a minute apart: "
                            "a schedule repeats at most once a minute")
    return rec


# --- the missed-occurrence policy --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """What one look at a schedule decides: the occurrences to send now (ascending),
    how many were skipped, and the new cursor (everything up to it is handled)."""

    send: tuple[dt.datetime, ...]
    skipped: int
    cursor: dt.datetime


def plan(rec: Recurrence, cursor: dt.datetime, now: dt.datetime, missed: Missed, grace_s: float,
         *, max_on_time: int = 100) -> Plan:
    """Occurrences after ``cursor`` up to ``now``: those at most ``grace_s`` old are on
    time and all sent; older ones were missed (the gateway was down or behind). With
    ``missed="once"`` the latest missed one is sent, but only when no on-time one
    supersedes it; with ``"skip"`` none. The cursor moves to the last occurrence up
    to ``now``, so nothing at or before it is ever looked at again.
    """
    if now <= cursor:
        return Plan((), 0, cursor)
    horizon = max(cursor, now - dt.timedelta(seconds=grace_s))
    n_late, late_latest = rec.count_and_latest(cursor, horizon) if horizon > cursor else (0, None)
    on_time = rec.between(horizon, now, limit=max_on_time)
    last = on_time[-1] if on_time else late_latest
    if last is None:
        return Plan((), 0, cursor)
    if on_time:
        return Plan(tuple(on_time), n_late, last)
    if missed == "once":
        assert late_latest is not None
        return Plan((late_latest,), n_late - 1, last)
    return Plan((), n_late, last)


__all__ = ["MISSED_POLICIES", "Missed", "Plan", "Recurrence", "RuleError", "parse_recurrence", "plan", "zone"]
