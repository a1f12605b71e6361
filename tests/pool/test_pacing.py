"""SIM care's pure rules (gsmgw.pool.pacing): delays, the calendar, warm-up, the
gate, recipient-local windows (phonenumbers' zones), cost by prefix."""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsmgw.config import (
    ConfigError,
    CostConfig,
    CostRate,
    ModemConfig,
    QuietHoursConfig,
    SimCareConfig,
    from_dict,
)
from gsmgw.pool import pacing
from gsmgw.pool.pacing import CarePolicy
from gsmgw.store import CareUsage

UTC = dt.UTC


def at(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s).astimezone(UTC)


@settings(max_examples=300, deadline=None)
@given(lo=st.floats(0, 3600), span=st.floats(0, 3600), mode=st.sampled_from(["uniform", "jitter"]),
       seed=st.integers(0, 2**32))
def test_delay_is_always_within_its_range(lo: float, span: float, mode: str, seed: int) -> None:
    hi = lo + span
    p = CarePolicy(pace_min_s=lo, pace_max_s=hi, pace_mode=mode)
    rng = random.Random(seed)
    for _ in range(20):
        d = pacing.draw_delay_s(p, rng)
        assert lo <= d <= hi or (hi == 0 and d == 0)


def test_jitter_clusters_around_the_middle_and_uniform_spreads() -> None:
    rng = random.Random(7)
    uni = [pacing.draw_delay_s(CarePolicy(pace_min_s=10, pace_max_s=70), rng) for _ in range(4000)]
    jit = [pacing.draw_delay_s(CarePolicy(pace_min_s=10, pace_max_s=70, pace_mode="jitter"), rng)
           for _ in range(4000)]
    middle = lambda xs: sum(1 for x in xs if 30 <= x <= 50) / len(xs)  # noqa: E731
    assert 0.28 < middle(uni) < 0.39  # 1/3 of a uniform range
    assert middle(jit) > 0.5  # the triangle puts 5/9 there


def test_calendar_keys_follow_the_configured_zone_across_a_month_boundary() -> None:
    t = at("2027-10-31T23:30:00+00:00")  # already November in Berlin (UTC+1 after DST end)
    assert pacing.day_key(t, "UTC") == "2027-10-31"
    assert pacing.day_key(t, "Europe/Berlin") == "2027-11-01"
    assert pacing.month_keys(t, "Europe/Berlin") == ("2027-11", "2027-11-01", "2027-11-31")
    (d0, d1), (m0, m1) = pacing.period_bounds(at("2027-10-31T12:00:00+00:00"), "Europe/Berlin")
    assert d1 - d0 == dt.timedelta(hours=25)  # the day DST ends has 25 hours
    assert m0 == at("2027-09-30T22:00:00+00:00") and m1 == at("2027-10-31T23:00:00+00:00")


def test_warmup_ramps_linearly_from_start_to_the_day_cap() -> None:
    p = CarePolicy(per_day=100, warmup_start_per_day=20, warmup_days=4, timezone="Europe/Berlin")
    first = at("2027-03-26T10:00:00+01:00")
    caps = [pacing.day_cap(p, first, first + dt.timedelta(days=d)) for d in range(6)]
    assert caps == [20, 40, 60, 80, 100, 100]
    # Local days, not 24-hour spans: 23:59 on day 0 is still day 0, 00:01 is day 1.
    assert pacing.day_cap(p, first, at("2027-03-26T23:59:00+01:00")) == 20
    assert pacing.day_cap(p, first, at("2027-03-27T00:01:00+01:00")) == 40
    assert pacing.day_cap(p, None, first) == 20  # never sent yet: day 0


def test_gate_reads_the_counters() -> None:
    now = at("2027-01-10T12:00:00+00:00")
    p = CarePolicy(per_month=10, recipients_per_day=2, recipients_per_month=3, pace_min_s=5, pace_max_s=9)
    g = pacing.gate(p, CareUsage(month_parts=7, next_send_at=now + dt.timedelta(seconds=1)), now)
    assert (g.pace_ok, g.max_parts, g.new_recipients_ok) == (False, 3, True)
    g = pacing.gate(p, CareUsage(month_parts=10), now)
    assert g.max_parts == 0
    g = pacing.gate(p, CareUsage(month_recipients=3, day_recipients=1), now)
    assert (g.new_recipients_ok, g.known_since) == (False, "month")
    g = pacing.gate(p, CareUsage(month_recipients=2, day_recipients=2), now)
    assert (g.new_recipients_ok, g.known_since) == (False, "day")
    st_ = pacing.status(p, CareUsage(month_parts=7, day_recipients=2), now)
    assert st_["caps"]["month"] == {"cap": 10, "used": 7, "left": 3}
    assert st_["caps"]["recipients_day"] == {"cap": 2, "used": 2, "left": 0}


# --- recipient-local windows ------------------------------------------------------------


def test_window_in_the_recipients_zone() -> None:
    ny = "+12125551234"
    # 07:00 UTC = 02:00 in New York (EST): closed until 08:00 EST = 13:00 UTC.
    assert pacing.recipient_open_at(ny, "08:00-21:00", at("2027-01-15T07:00:00+00:00")) == at(
        "2027-01-15T13:00:00+00:00")
    assert pacing.recipient_open_at(ny, "08:00-21:00", at("2027-01-15T15:00:00+00:00")) is None
    # After 21:00 local it waits for the next morning.
    assert pacing.recipient_open_at(ny, "08:00-21:00", at("2027-01-16T02:30:00+00:00")) == at(
        "2027-01-16T13:00:00+00:00")
    assert pacing.recipient_open_at(ny, "", at("2027-01-16T02:30:00+00:00")) is None


def test_window_across_dst_uses_the_new_offset() -> None:
    # 2027-03-14 is the US change to EDT (UTC-4): 08:00 local is 12:00 UTC that morning.
    assert pacing.recipient_open_at("+12125551234", "08:00-21:00", at("2027-03-14T09:00:00+00:00")) == at(
        "2027-03-14T12:00:00+00:00")


def test_country_with_several_zones_takes_the_most_restrictive_intersection() -> None:
    us = pacing.recipient_zones("+79161234567", "UTC")  # a Russian mobile: 16 zones, UTC+2 to UTC+12
    assert len(us) > 1
    zones = [zoneinfo.ZoneInfo(z) for z in us]
    t = at("2027-06-01T00:00:00+00:00")
    for _ in range(48):
        opens = pacing.recipient_open_at("+79161234567", "08:00-21:00", t)
        probe = t if opens is None else opens
        # At the answer, every zone of the number is inside its window.
        for z in zones:
            local = probe.astimezone(z)
            assert 8 * 60 <= local.hour * 60 + local.minute < 21 * 60, (t, probe, z)
        t += dt.timedelta(minutes=37)


@settings(max_examples=200, deadline=None)
@given(minutes=st.integers(0, 60 * 24 * 400), number=st.sampled_from(
    ["+12125551234", "+4930123456", "+61212345678", "+79161234567", "+818012345678", "+5511987654321"]))
def test_window_answer_is_open_and_never_earlier_than_now(minutes: int, number: str) -> None:
    now = at("2027-01-01T00:00:00+00:00") + dt.timedelta(minutes=minutes)
    opens = pacing.recipient_open_at(number, "08:00-21:00", now)
    if opens is not None:
        assert now < opens <= now + dt.timedelta(days=2)
        # Open then, in at least the first zone (all of them when they intersect).
        assert pacing.recipient_open_at(number, "08:00-21:00", opens) is None


# --- cost ------------------------------------------------------------------------------------


def test_cost_longest_prefix_wins_and_sim_rate_beats_any_sim() -> None:
    cfg = from_dict({
        "modem": [{"id": "a", "port": "/dev/null", "cost_per_part_micros": 900},
                  {"id": "b", "port": "/dev/null"}],
        "cost": {"currency": "EUR", "rate": [
            {"prefix": "+44", "part_micros": 40000},
            {"prefix": "+447", "part_micros": 50000},
            {"prefix": "+447", "part_micros": 10000, "modem": "b"},
        ]},
    })
    a, b = cfg.modem
    assert pacing.part_cost_micros(cfg, a, "+447700900123") == 50000
    assert pacing.part_cost_micros(cfg, b, "+447700900123") == 10000
    assert pacing.part_cost_micros(cfg, a, "+442079460000") == 40000
    assert pacing.part_cost_micros(cfg, a, "+4930123456") == 900  # the SIM's own price
    assert pacing.part_cost_micros(cfg, b, "+4930123456") is None  # nothing set: no cost recorded


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "key"), [
    ({"sim_care": {"timezone": "Mars/Olympus"}}, "sim_care.timezone"),
    ({"quiet_hours": {"recipient_window": "8-21"}}, "quiet_hours.recipient_window"),
    ({"quiet_hours": {"recipient_window": "08:00-08:00"}}, "quiet_hours.recipient_window"),
    ({"cost": {"rate": [{"prefix": "44", "part_micros": 1}]}}, "cost.rate[0].prefix"),
    ({"cost": {"rate": [{"prefix": "+44", "part_micros": 1, "modem": "zz"}]}}, "cost.rate[0].modem"),
    ({"modem": [{"id": "a", "port": "/dev/null", "pace_min_s": 9, "pace_max_s": 3}]}, "modem[0].pace_max_s"),
    ({"modem": [{"id": "a", "port": "/dev/null", "warmup_days": 9}]}, "modem[0].warmup_days"),
    ({"modem": [{"id": "a", "port": "/dev/null", "warmup_days": 9, "warmup_start_per_day": 5}]},
     "modem[0].warmup_days"),
    ({"modem": [{"id": "a", "port": "/dev/null", "pace_mode": "random"}]}, "modem[0].pace_mode"),
])
def test_config_errors_name_the_key(data: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        from_dict(data)


def test_config_defaults_are_off() -> None:
    cfg = from_dict({"modem": [{"id": "a", "port": "/dev/null"}]})
    assert cfg.sim_care == SimCareConfig() and cfg.quiet_hours == QuietHoursConfig() and cfg.cost == CostConfig()
    assert not CarePolicy.of(cfg.modem[0], cfg).active
    assert pacing.window_rule(cfg) is None
    assert CostRate(prefix="+1", part_micros=1).modem == ""
    assert ModemConfig(id="x", port="p").pace_mode == "uniform"
