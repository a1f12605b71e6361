"""The console's pure parts: sessions and their expiry, the sign-in throttle, where
a sign-in may send the browser next, form parsing, display filters."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from gsmgw.console.compose import recipients, send_at_value
from gsmgw.console.conversations import repliable, valid_number
from gsmgw.console.core import safe_next
from gsmgw.console.fmt import ago, clip, duration, signal_bars, signal_dbm, utc
from gsmgw.console.live import sse, tile
from gsmgw.console.messages import number_filter, parse_filters
from gsmgw.console.session import Sessions, SignInThrottle


@dataclass
class Who:
    id: str
    name: str = "x"
    scopes: frozenset[str] = frozenset({"read"})


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_sessions_expire_when_idle_and_at_their_maximum() -> None:
    clock = Clock()
    s = Sessions(idle_s=10, max_s=30, clock=clock)
    token, session = s.create(Who("k1"))
    assert s.get(token) is session and len(token) >= 40
    assert s.get(token + "x") is None and s.get(None) is None and s.get("a" * 500) is None
    for _ in range(3):  # kept alive by use...
        clock.t += 9
        assert s.get(token) is session
    clock.t += 4  # ...but not past its maximum age (31 s)
    assert s.get(token) is None and len(s) == 0
    token, _ = s.create(Who("k1"))
    clock.t += 11
    assert s.get(token) is None  # idle too long
    token, _ = s.create(Who("k1"))
    clock.t += 9
    assert s.get(token, touch=False) is not None
    clock.t += 2
    assert s.get(token) is None  # a look that does not touch does not extend it


def test_sessions_end_with_their_key_and_are_bounded() -> None:
    s = Sessions(idle_s=100, max_s=100, max_sessions=3, clock=Clock())
    a, _ = s.create(Who("k1"))
    b, _ = s.create(Who("k2"))
    c, _ = s.create(Who("k1"))
    assert s.drop_key("k1") == 2 and s.get(a) is None and s.get(c) is None and s.get(b) is not None
    tokens = [s.create(Who(f"n{i}"))[0] for i in range(5)]
    assert len(s) == 3 and s.get(tokens[-1]) is not None
    s.drop(tokens[-1])
    assert s.get(tokens[-1]) is None


def test_sign_in_throttle() -> None:
    clock = Clock()
    th = SignInThrottle(burst=3, every_s=10.0, clock=clock)
    for _ in range(3):
        assert th.wait_s("1.2.3.4") == 0.0
        th.failed("1.2.3.4")
    assert th.wait_s("1.2.3.4") == pytest.approx(10.0)
    assert th.wait_s("5.6.7.8") == 0.0  # per client
    clock.t += 10
    assert th.wait_s("1.2.3.4") == 0.0


@pytest.mark.parametrize(("raw", "want"), [
    (None, "/ui/"), ("", "/ui/"), ("/ui/messages?state=failed", "/ui/messages?state=failed"),
    ("https://evil.example/ui/", "/ui/"), ("//evil.example/ui/", "/ui/"), ("/api/v1/messages", "/ui/"),
    ("/ui/\\evil", "/ui/"), ("/ui/x\r\nSet-Cookie: a=b", "/ui/"), ("javascript:alert(1)", "/ui/"),
    ("/ui/" + "a" * 600, "/ui/"),
])
def test_after_sign_in_only_console_paths_of_this_site(raw: str | None, want: str) -> None:
    assert safe_next(raw) == want


def test_pasted_recipient_lists() -> None:
    assert recipients("+44 7700 900123\n+447700900124, +447700900125;+447700900126") == [
        "+44 7700 900123", "+447700900124", "+447700900125", "+447700900126"]
    assert recipients("+1 555 0100 +1 555 0101\r\n\n+1 555 0100") == ["+1 555 0100", "+1 555 0101"]
    assert recipients("  \n , ;") == []
    assert send_at_value("") is None
    assert send_at_value("2026-12-01T09:30") == "2026-12-01T09:30:00Z"
    assert send_at_value("2026-12-01T09:30:00+02:00") == "2026-12-01T09:30:00+02:00"


def test_search_filters_from_a_query() -> None:
    assert number_filter("+44 7700 900123") == {"number": "+447700900123"}
    assert number_filter("07700 900123") == {"number_suffix": "7700900123"}
    assert number_filter("MyBank") == {"number": "MyBank"}
    filters, form, errors = parse_filters({"state": "delivered", "sim": "sim1", "batch": "01ab",
                                           "since": "2026-11-01", "until": "2026-11-02", "cursor": "0f"})
    assert errors == [] and filters["state"] == "delivered" and filters["batch_id"] == "01ab"
    assert filters["until"] - filters["since"] == dt.timedelta(days=2)  # a bare "until" date is inclusive
    assert filters["before_id"] == "0f"
    filters, _form, errors = parse_filters({"state": "bogus", "sim": "a b", "batch": "xyz!", "since": "soon",
                                            "cursor": "'; drop table"})
    assert len(errors) == 4 and set(filters) == set()


def test_threads_and_display_filters() -> None:
    assert valid_number("+447700900123") == "+447700900123" and valid_number("MyBank") == "MyBank"
    assert valid_number("") is None and valid_number("x" * 33) is None and valid_number("a\x00") is None
    assert repliable("+447700900123") and not repliable("MyBank")
    assert signal_bars(99) == -1 and signal_bars(1) == 0 and signal_bars(12) == 2 and signal_bars(31) == 4
    assert signal_dbm(0) == -113 and signal_dbm(31) == -51 and signal_dbm(99) is None
    assert duration(None) == "–" and duration(0.25) == "250 ms" and duration(3 * 3600 + 300) == "3 h 5 min"
    now = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
    assert ago(now - dt.timedelta(minutes=3), now) == "3 min ago" and ago(now, now) == "just now"
    assert utc(dt.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02 03:04:05Z"
    assert clip("a  b\n c" + "x" * 100, 10) == "a b cxxxx…"


def test_live_event_framing_and_tiles() -> None:
    # A fragment's lines each become a data: line, so a line in an SMS text cannot end the event.
    assert sse("tiles", "<p>a</p>\n\nevent: evil\n<p>b</p>") == (
        b"event: tiles\ndata: <p>a</p>\ndata: \ndata: event: evil\ndata: <p>b</p>\n\n")
    t = tile({"id": "sim1", "state": "ready", "enabled": False, "signal_csq": 20,
              "limits": {"per_minute": 0, "per_hour": 10, "used_hour": 10, "per_day": 0}},
             {"sent": 3, "failed": 1}, None)
    assert t["limits"] == [{"window": "hour", "used": 10, "cap": 10, "full": True}]
    assert (t["sent_today"], t["failed_today"], t["enabled"]) == (3, 1, False)
