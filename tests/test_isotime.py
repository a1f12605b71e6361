"""One ISO-8601 UTC format for every time the gateway shows (API, webhooks, inbound view)."""

from __future__ import annotations

import datetime as dt
import re

from gsmgw.isotime import iso_or_value, iso_utc, utc_now_iso


def test_aware_times_are_shown_in_utc_with_a_z() -> None:
    cet = dt.timezone(dt.timedelta(hours=1))
    assert iso_utc(dt.datetime(2026, 11, 21, 23, 0, tzinfo=dt.UTC)) == "2026-11-21T23:00:00Z"
    assert iso_utc(dt.datetime(2026, 11, 22, 0, 0, 5, tzinfo=cet)) == "2026-11-21T23:00:05Z"
    assert iso_utc(dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)) == "2026-01-02T03:04:05.678000Z"


def test_naive_times_are_taken_as_utc_never_as_local_time() -> None:
    assert iso_utc(dt.datetime(2026, 11, 21, 23, 0)) == "2026-11-21T23:00:00Z"


def test_json_views_pass_other_values_through() -> None:
    assert iso_or_value(None) is None
    assert iso_or_value("2026-11-21T23:00:00Z") == "2026-11-21T23:00:00Z"
    assert iso_or_value(dt.datetime(2026, 11, 21, 23, 0, tzinfo=dt.UTC)) == "2026-11-21T23:00:00Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", utc_now_iso())
