"""Per-SIM limits hold for any arrival pattern (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsmgw.backoff import backoff_s
from gsmgw.pool.limits import Limits, SimLimiter, quiet_wait_s
from gsmgw.pool.retry import ErrorClass, classify_cms


@settings(max_examples=500, deadline=None)
@given(
    per_minute=st.integers(min_value=1, max_value=20),
    per_hour=st.integers(min_value=0, max_value=200),
    arrivals=st.lists(st.tuples(st.floats(min_value=0, max_value=400), st.integers(1, 4)), max_size=120),
)
def test_sends_never_exceed_any_window(per_minute: int, per_hour: int, arrivals: list[tuple[float, int]]) -> None:
    lim = SimLimiter(Limits(per_minute=per_minute, per_hour=per_hour))
    now = 0.0
    sent: list[float] = []
    for gap, parts in arrivals:
        now += gap
        wait = lim.wait_s(now, parts)
        if wait == float("inf"):
            assert parts > per_minute or (per_hour and parts > per_hour)
            continue
        now += wait  # the worker sleeps exactly as told, then sends
        assert lim.wait_s(now, parts) == 0.0
        lim.record(now, parts)
        sent.extend([now] * parts)
        for t in sent:  # every window ending at any send holds at most the cap
            assert sum(1 for u in sent if u <= t < u + 60) <= per_minute
            if per_hour:
                assert sum(1 for u in sent if u <= t < u + 3600) <= per_hour


def test_wait_is_until_oldest_leaves_the_window() -> None:
    lim = SimLimiter(Limits(per_minute=2))
    lim.record(0.0)
    lim.record(10.0)
    assert lim.wait_s(20.0) == pytest.approx(40.0, abs=1e-5)
    assert lim.wait_s(60.5) == 0.0
    assert SimLimiter(Limits()).wait_s(0.0, 1000) == 0.0


@pytest.mark.parametrize(
    ("spec", "minutes", "wait_s"),
    [
        ("22:00-07:00", 23 * 60, 8 * 3600),
        ("22:00-07:00", 6 * 60 + 30, 30 * 60),
        ("22:00-07:00", 12 * 60, 0),
        ("09:00-17:00", 9 * 60, 8 * 3600),
        ("09:00-17:00", 17 * 60, 0),
        ("", 0, 0),
        ("10:00-10:00", 10 * 60, 0),
    ],
)
def test_quiet_hours(spec: str, minutes: int, wait_s: float) -> None:
    assert quiet_wait_s(spec, minutes) == pytest.approx(wait_s)


def test_cms_classes() -> None:
    assert classify_cms(1)[0] is ErrorClass.PERMANENT
    assert classify_cms(42)[0] is ErrorClass.TRANSIENT
    assert classify_cms(310)[0] is ErrorClass.MODEM
    assert classify_cms(9999)[0] is ErrorClass.TRANSIENT
    assert classify_cms(None)[0] is ErrorClass.TRANSIENT
    assert [backoff_s(a, initial_s=5, max_s=60) for a in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 60]
