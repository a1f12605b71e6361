"""`gsmgw status` lines for SIM care, from a status reply as the API renders it."""

from __future__ import annotations

from gsmgw.commands.simcare import care_lines, cost_lines


def test_status_lines_show_caps_pace_warmup_and_cost() -> None:
    modem = {"id": "sim1", "care": {
        "pace": {"min_s": 20.0, "max_s": 90.0, "mode": "jitter", "next_send_at": "2026-11-28T14:02:11Z"},
        "caps": {"day": {"cap": 80, "used": 12, "left": 68}, "month": None,
                 "recipients_day": {"cap": 50, "used": 48, "left": 2}, "recipients_month": None},
        "warmup": {"day": 4, "days": 14, "cap_today": 80, "first_seen_at": "2026-11-25T09:00:00Z"},
        "cost": {"today_micros": 2_100_000, "month_micros": 21_840_000},
    }}
    cost = {"currency": "EUR", "today": {"total_micros": 2_100_000, "by_sim": {"sim1": 2_100_000},
                                         "by_key": {"k3f9a1c2": 2_100_000}},
            "month": {"total_micros": 21_840_000, "by_sim": {}, "by_key": {}}}
    [line] = care_lines(modem, cost)
    assert "day 12/80 (68 left)" in line and "recipients_day 48/50 (2 left)" in line
    assert "pace 20-90 s, next 2026-11-28T14:02:11Z" in line and "warm-up day 4/14 (cap 80)" in line
    assert "cost today 2.1000 EUR, month 21.8400 EUR" in line
    [total] = cost_lines(cost)
    assert "cost today 2.1000 EUR (by key: k3f9a1c2 2.1000 EUR); this month 21.8400 EUR" in total


def test_nothing_when_sim_care_is_off() -> None:
    assert care_lines({"id": "sim1", "care": None}, None) == []
    assert care_lines({"id": "sim1"}, None) == []
    assert cost_lines(None) == []
