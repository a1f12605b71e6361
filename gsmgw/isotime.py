"""ISO-8601 UTC timestamps as the gateway shows them everywhere (``2026-11-21T23:00:00Z``)."""

from __future__ import annotations

import datetime as dt
from typing import Any


def iso_utc(value: dt.datetime) -> str:
    """``value`` in UTC as ISO 8601 with a ``Z``; a naive value is taken as UTC
    (the store's convention), never as local time."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def iso_or_value(value: Any) -> Any:
    """:func:`iso_utc` for a datetime; anything else (``None`` included) unchanged.

    For JSON views whose time fields may be empty."""
    return iso_utc(value) if isinstance(value, dt.datetime) else value


def utc_now_iso() -> str:
    return iso_utc(dt.datetime.now(dt.UTC))
