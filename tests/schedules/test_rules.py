"""Recurrence rules and the missed policy, pure: DST in Europe/Berlin, bad input, and a
hypothesis property that whatever the downtime pattern and policy, the occurrences sent
are real occurrences, strictly increasing and never duplicated."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gsmgw.schedules.rules import Recurrence, RuleError, parse_recurrence, plan, zone
from tests.schedules.helpers import utc

NOW = utc(2026, 3, 20, 12)


def rrule(expr: str, tz: str = "Europe/Berlin", start: dt.datetime = NOW) -> Recurrence:
    return parse_recurrence(rrule_expr=expr, cron_expr=None, timezone=tz, start=start, now=start)


def cron(expr: str, tz: str = "Europe/Berlin", start: dt.datetime = NOW) -> Recurrence:
    return parse_recurrence(rrule_expr=None, cron_expr=expr, timezone=tz, start=start, now=start)


def local(rec: Recurrence, a: dt.datetime, b: dt.datetime) -> list[str]:
    return [t.astimezone(rec.tz).isoformat() for t in rec.between(a, b)]


def test_daily_rrule_keeps_its_local_time_across_both_dst_changes_in_berlin() -> None:
    rec = rrule("FREQ=DAILY;BYHOUR=9;BYMINUTE=0")
    spring = local(rec, utc(2026, 3, 27), utc(2026, 3, 31))
    assert spring == ["2026-03-27T09:00:00+01:00", "2026-03-28T09:00:00+01:00", "2026-03-29T09:00:00+02:00",
                      "2026-03-30T09:00:00+02:00"]
    assert [t.hour for t in rec.between(utc(2026, 3, 27), utc(2026, 3, 31))] == [8, 8, 7, 7]  # UTC
    autumn = local(rec, utc(2026, 10, 23), utc(2026, 10, 27))
    assert autumn == ["2026-10-23T09:00:00+02:00", "2026-10-24T09:00:00+02:00", "2026-10-25T09:00:00+01:00",
                      "2026-10-26T09:00:00+01:00"]


def test_a_time_in_the_spring_gap_and_in_the_autumn_fold_happens_once() -> None:
    rec = rrule("FREQ=DAILY;BYHOUR=2;BYMINUTE=30")
    # 02:30 does not exist on 29 March: RFC 5545 reads it with the offset before the gap (03:30 CEST).
    assert local(rec, utc(2026, 3, 28), utc(2026, 3, 30, 12)) == [
        "2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"]
    # 02:30 happens twice on 25 October: the first one, once.
    assert local(rec, utc(2026, 10, 24), utc(2026, 10, 26, 12)) == [
        "2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    c = cron("30 2 * * *")
    assert local(c, utc(2026, 3, 28), utc(2026, 3, 30, 12)) == [
        "2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]


def test_every_half_hour_through_the_gap_never_repeats_an_instant() -> None:
    rec = rrule("FREQ=MINUTELY;INTERVAL=30", start=utc(2026, 3, 28, 23))
    got = rec.between(utc(2026, 3, 28, 23), utc(2026, 3, 29, 3))
    assert got == sorted(set(got))
    assert [t.astimezone(rec.tz).strftime("%H:%M") for t in got] == [
        "00:30", "01:00", "01:30", "03:00", "03:30", "04:00", "04:30", "05:00"]


def test_weekly_rrule_with_interval_and_until_in_utc() -> None:
    rec = rrule("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH;BYHOUR=18;BYMINUTE=15;UNTIL=20260501T000000Z")
    got = local(rec, NOW, utc(2027, 1, 1))
    # Every other week from the week of DTSTART (Friday 20 March: its Monday and Thursday were before it).
    assert got[:3] == ["2026-03-30T18:15:00+02:00", "2026-04-02T18:15:00+02:00", "2026-04-13T18:15:00+02:00"]
    assert got[-1] == "2026-04-30T18:15:00+02:00" and rec.after(utc(2026, 5, 1)) is None


@pytest.mark.parametrize("expr", ["FREQ=DAILY;BYHOUR=25", "FREQ=YEARLY;BYMONTH=13", "FREQ=FORTNIGHTLY",
                                  "FREQ=DAILY;COUNT=x", "FREQ=DAILY;INTERVAL=0",
                                  "FREQ=DAILY;INTERVAL=-2", "BYDAY=MO", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=31"])
def test_bad_rrules_are_refused_with_the_field(expr: str) -> None:
    with pytest.raises(RuleError) as e:
        rrule(expr)
    assert e.value.field == "rrule" and str(e.value)


@pytest.mark.parametrize("expr", ["60 * * * *", "* 24 * * *", "* * 32 * *", "0 0 * * 8", "@reboot", "a b c d e"])
def test_bad_crons_are_refused_with_the_field(expr: str) -> None:
    with pytest.raises(RuleError) as e:
        cron(expr)
    assert e.value.field == "cron"


@pytest.mark.parametrize("tz", ["Europe/Atlantis", "", "UTC/../../x", "Europe/Berlin\n", "a" * 100])
def test_bad_time_zones_are_refused(tz: str) -> None:
    with pytest.raises(RuleError) as e:
        zone(tz)
    assert e.value.field == "timezone"


def test_an_anchored_rule_gives_the_same_occurrences_as_from_its_start() -> None:
    start = utc(2025, 3, 20, 12)
    for expr in ("FREQ=DAILY;INTERVAL=3;BYHOUR=7", "FREQ=WEEKLY;INTERVAL=2", "FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17",
                 "FREQ=HOURLY;INTERVAL=5;BYMINUTE=10"):
        plain = rrule(expr, start=start)
        occ = plain.between(start, start + dt.timedelta(days=800), limit=10000)
        anchor = occ[len(occ) // 3]
        anchored = Recurrence(plain.kind, plain.expr, plain.tz, start, anchor=anchor)
        end = anchor + dt.timedelta(days=200)
        assert anchored.between(anchor, end, limit=5000) == [t for t in occ if anchor < t <= end], expr


# --- the missed policy -------------------------------------------------------------------------

RULES = [
    ("rrule", "FREQ=HOURLY;BYMINUTE=0,20"),
    ("rrule", "FREQ=MINUTELY;INTERVAL=30"),
    ("rrule", "FREQ=DAILY;BYHOUR=2;BYMINUTE=30"),  # in the gap and the fold
    ("cron", "*/15 1-3 * * *"),
    ("cron", "0 */2 * * *"),
]


@settings(max_examples=150, deadline=None)
@given(
    rule=st.sampled_from(RULES),
    tz=st.sampled_from(["Europe/Berlin", "America/New_York", "UTC"]),
    missed=st.sampled_from(["once", "skip"]),
    start_h=st.integers(0, 23 * 60),
    steps=st.lists(st.tuples(st.booleans(), st.integers(1, 6 * 60)), min_size=1, max_size=40),
    grace_min=st.integers(1, 30),
)
def test_occurrences_are_strictly_increasing_never_duplicated_for_any_policy_and_downtime(
        rule: tuple[str, str], tz: str, missed: str, start_h: int, steps: list[tuple[bool, int]],
        grace_min: int) -> None:
    # Around the spring DST change in Europe (and two weeks after the US one).
    start = utc(2026, 3, 28) + dt.timedelta(minutes=start_h)
    kind, expr = rule
    rec = parse_recurrence(rrule_expr=expr if kind == "rrule" else None, cron_expr=expr if kind == "cron" else None,
                           timezone=tz, start=start, now=start)
    grace_s = grace_min * 60.0
    cursor, now, sent, skipped = start, start, [], 0
    for up, minutes in steps:
        now += dt.timedelta(minutes=minutes)
        if not up:  # down: nobody looks
            continue
        p = plan(rec, cursor, now, missed, grace_s)  # type: ignore[arg-type]
        assert p.cursor >= cursor and all(cursor < t <= now for t in p.send)
        late = [t for t in p.send if now - t > dt.timedelta(seconds=grace_s)]
        if missed == "skip":
            assert not late  # skip: nothing missed is sent
        else:
            assert len(late) <= 1  # once: at most the latest missed
        sent += p.send
        skipped += p.skipped
        rec = Recurrence(rec.kind, rec.expr, rec.tz, rec.start, anchor=p.cursor if p.cursor > start else None)
        cursor = p.cursor
    assert sent == sorted(set(sent))  # strictly increasing: never twice
    truth = rec.between(start, cursor, limit=100_000)
    assert set(sent) <= set(truth)
    assert len(sent) + skipped == len(truth)  # every occurrence up to the cursor: sent or skipped, once
