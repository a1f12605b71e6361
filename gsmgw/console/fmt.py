"""Jinja filters: times, durations, signal strength, states. Pure functions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gsmgw.isotime import iso_or_value

STATE_LABELS = {
    "queued": "queued", "sending": "sending", "sent": "sent", "delivered": "delivered",
    "failed": "failed", "expired": "expired", "cancelled": "cancelled", "unknown": "unknown",
}


def utc(value: Any) -> str:
    """``2026-11-28 10:03:12Z``; empty for None."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if not isinstance(value, dt.datetime):
        return str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def iso(value: Any) -> str:
    """For ``<time datetime=...>``: the gateway's one ISO form; empty for None."""
    return "" if value is None else str(iso_or_value(value))


def duration(seconds: Any) -> str:
    """``850 ms``, ``12 s``, ``4 min``, ``3 h 5 min``, ``2 d 4 h``."""
    if seconds is None:
        return "–"
    s = float(seconds)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.1f} s" if s < 10 else f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 86400:
        h, rest = divmod(int(s), 3600)
        return f"{h} h {rest // 60} min" if rest >= 60 else f"{h} h"
    d, rest = divmod(int(s), 86400)
    return f"{d} d {rest // 3600} h" if rest >= 3600 else f"{d} d"


def ago(value: Any, now: dt.datetime | None = None) -> str:
    if not isinstance(value, dt.datetime):
        return ""
    now = now or dt.datetime.now(dt.UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    s = (now - value).total_seconds()
    if s < 0:
        return "in " + duration(-s)
    if s < 5:
        return "just now"
    return duration(s) + " ago"


def signal_bars(csq: Any) -> int:
    """+CSQ rssi (0-31, 99 = unknown) as 0-4 bars; -1 when unknown."""
    if not isinstance(csq, int) or csq == 99 or csq < 0:
        return -1
    if csq < 2:
        return 0
    if csq < 10:
        return 1
    if csq < 15:
        return 2
    if csq < 20:
        return 3
    return 4


def signal_dbm(csq: Any) -> int | None:
    """TS 27.007 §8.5: rssi 0 = -113 dBm or less, 31 = -51 dBm or more, 2 dB steps."""
    if not isinstance(csq, int) or csq == 99 or not 0 <= csq <= 31:
        return None
    return -113 + 2 * csq


def percent(part: Any, whole: Any) -> str:
    if not whole:
        return "–"
    return f"{100.0 * float(part) / float(whole):.0f} %"


def clip(text: Any, n: int = 80) -> str:
    s = "" if text is None else str(text)
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


FILTERS = {
    "utc": utc, "iso": iso, "duration": duration, "ago": ago, "bars": signal_bars, "dbm": signal_dbm,
    "percent": percent, "clip": clip,
}

__all__ = ["FILTERS", "STATE_LABELS"]
