"""SIM care in the store's claim path: caps, distinct recipients, warm-up and pacing
hold for any arrival pattern (hypothesis, on a real SQLite file, across a month
boundary and a DST change), an OTP overtakes paced bulk (SQLite and PostgreSQL),
recipient quiet hours defer without claiming, and the claim stays on its index."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from gsmgw.domain import MessageState
from gsmgw.pool import pacing
from gsmgw.pool.pacing import CarePolicy
from gsmgw.store import CareRecord, ClaimCare, NewMessage, PartResult, Store
from tests.store.plans import plans_of

UTC = dt.UTC
FAR = dt.datetime(2031, 1, 1, tzinfo=UTC)


def care_of(policy: CarePolicy, now: dt.datetime, *, exempt_priority: int = 5,
            window: Any = None) -> ClaimCare:
    month, first, last = pacing.month_keys(now, policy.timezone)
    return ClaimCare(day=pacing.day_key(now, policy.timezone), month=month, month_first_day=first,
                     month_last_day=last,
                     gate=(lambda u: pacing.gate(policy, u, now)) if policy.active else None,
                     exempt_priority=exempt_priority, window=window)


def record_of(policy: CarePolicy, modem: str, number: str, now: dt.datetime, delay_s: float,
              cost: int | None = None) -> CareRecord:
    month, _f, _l = pacing.month_keys(now, policy.timezone)
    return CareRecord(modem_id=modem, number=number, day=pacing.day_key(now, policy.timezone), month=month,
                      next_send_at=now + dt.timedelta(seconds=delay_s) if delay_s else None, at=now,
                      cost_per_part_micros=cost)


def enqueue(store: Store, number: str, *, at: dt.datetime, parts: int = 1, priority: int = 0,
            transactional: bool = False) -> str:
    res = store.messages.enqueue([NewMessage(to_number=number, text="x" * (160 * parts if parts > 1 else 5),
                                             encoding="gsm7", parts_total=parts, priority=priority,
                                             send_at=at, valid_until=FAR, transactional=transactional)])
    return res.message_ids[0]


def send(store: Store, modem: str, policy: CarePolicy, now: dt.datetime, *, delay_s: float = 0.0,
         cost: int | None = None, **care_kw: Any) -> tuple[str, str, int] | None:
    """Claim as the pipeline does and settle every part as sent; (id, number, parts)."""
    claim = store.claims.claim_next(modem, lease_s=60, now=now, mark_sending=True,
                                    care=care_of(policy, now, **care_kw))
    if claim is None:
        return None
    store.claims.settle_claim(claim.id, [PartResult(s, MessageState.SENT, tp_mr=s) for s in claim.pending_seqs],
                              care=record_of(policy, modem, claim.to_number, now, delay_s, cost))
    return claim.id, claim.to_number, len(claim.pending_seqs)


# --- the property: no cap is ever exceeded ------------------------------------------------

# Each start is a few days before a month boundary that meets a DST change in its zone.
STARTS = [
    ("Europe/Berlin", dt.datetime(2027, 10, 28, 18, 0, tzinfo=UTC)),  # DST ends 31 Oct, then November
    ("America/New_York", dt.datetime(2027, 10, 29, 12, 0, tzinfo=UTC)),  # November, then DST ends 7 Nov
    ("Europe/Berlin", dt.datetime(2027, 3, 26, 20, 0, tzinfo=UTC)),  # DST starts 28 Mar, then April
]

_DB: dict[str, Store] = {}


def shared_store() -> Store:
    """One SQLite file for all examples (emptied before each): hypothesis runs many."""
    if "s" not in _DB:
        d = Path(tempfile.mkdtemp(prefix="gsmgw-simcare-"))
        s = Store(f"sqlite:///{d / 'care.db'}", host="prop", sqlite_synchronous="OFF")
        s.migrate()
        _DB["s"] = s
    s = _DB["s"]
    with s.engine.begin() as conn:
        for table in ("message_parts", "events", "messages", "sim_care", "sim_usage", "sim_contacts"):
            conn.execute(text(f"DELETE FROM {table}"))
    return s


@pytest.fixture(scope="module", autouse=True)
def _close_shared() -> Iterator[None]:
    yield
    if "s" in _DB:
        _DB.pop("s").close()


arrival = st.tuples(
    st.integers(0, 9 * 24 * 60),  # minutes after the start
    st.integers(0, 11),  # which of 12 numbers
    st.integers(1, 3),  # parts
    st.sampled_from([0, 0, 0, 9]),  # mostly bulk, some OTP
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.sampled_from(STARTS),
    arrivals=st.lists(arrival, min_size=1, max_size=45),
    per_month=st.integers(0, 25),
    rcpt_day=st.integers(0, 4),
    rcpt_month=st.integers(0, 7),
    warm=st.booleans(),
    pace=st.tuples(st.integers(0, 3 * 3600), st.integers(0, 3 * 3600)),
    tick_min=st.integers(20, 180),
    seed=st.integers(0, 2**31),
)
def test_no_cap_is_exceeded_for_any_arrival_pattern(start: tuple[str, dt.datetime], arrivals: list[tuple],
                                                    per_month: int, rcpt_day: int, rcpt_month: int, warm: bool,
                                                    pace: tuple[int, int], tick_min: int, seed: int) -> None:
    tz, t0 = start
    lo, hi = sorted(pace)
    policy = CarePolicy(pace_min_s=lo, pace_max_s=hi, per_day=12 if warm else 0, per_month=per_month,
                        recipients_per_day=rcpt_day, recipients_per_month=rcpt_month,
                        warmup_start_per_day=2 if warm else 0, warmup_days=4 if warm else 0, timezone=tz)
    store = shared_store()
    rng = random.Random(seed)
    numbers = [f"+4915112345{i:03d}" for i in range(12)]
    pending = sorted((t0 + dt.timedelta(minutes=m), numbers[n], parts, prio) for (m, n, parts, prio) in arrivals)
    end = t0 + dt.timedelta(days=10)
    sends: list[tuple[dt.datetime, str, int, bool, float]] = []  # time, number, parts, exempt, delay drawn
    prio_of: dict[str, int] = {}
    now = t0
    while now <= end:
        while pending and pending[0][0] <= now:
            when, number, parts, prio = pending.pop(0)
            mid = enqueue(store, number, at=when, parts=parts, priority=prio)
            prio_of[mid] = prio
        for _ in range(50):  # drain what may go at this instant
            delay = pacing.draw_delay_s(policy, rng)
            got = send(store, "sim1", policy, now, delay_s=delay)
            if got is None:
                break
            mid, number, parts = got
            sends.append((now, number, parts, prio_of[mid] >= 5, delay))
        now += dt.timedelta(minutes=tick_min)

    first_seen = sends[0][0] if sends else None
    by_day: dict[str, int] = defaultdict(int)
    by_month: dict[str, int] = defaultdict(int)
    day_numbers: dict[str, set[str]] = defaultdict(set)
    month_numbers: dict[str, set[str]] = defaultdict(set)
    for (t, number, parts, _exempt, _d) in sends:
        day, month = pacing.day_key(t, tz), pacing.month_keys(t, tz)[0]
        by_day[day] += parts
        by_month[month] += parts
        day_numbers[day].add(number)
        month_numbers[month].add(number)
        if warm:
            assert by_day[day] <= pacing.day_cap(policy, first_seen, t), (day, by_day[day])
    if per_month:
        assert all(v <= per_month for v in by_month.values()), by_month
    if rcpt_day:
        assert all(len(v) <= rcpt_day for v in day_numbers.values()), day_numbers
    if rcpt_month:
        assert all(len(v) <= rcpt_month for v in month_numbers.values()), month_numbers
    # Pacing: a non-exempt send never comes before the delay drawn after the previous send.
    for prev, cur in itertools.pairwise(sends):
        assert lo <= prev[4] <= hi or hi == 0
        if not cur[3] and hi:
            assert cur[0] >= prev[0] + dt.timedelta(seconds=prev[4]), (prev, cur)
    # The counters the status shows agree with what was sent.
    if sends:
        last = sends[-1][0]
        usage = store.simcare.usage(["sim1"], {"sim1": care_of(policy, last)})["sim1"]
        assert usage.month_parts == by_month[pacing.month_keys(last, tz)[0]]
        assert usage.day_recipients == len(day_numbers[pacing.day_key(last, tz)])


# --- an OTP overtakes paced bulk ------------------------------------------------------------


def test_otp_overtakes_paced_bulk(store: Store) -> None:
    policy = CarePolicy(pace_min_s=600, pace_max_s=900)
    t = dt.datetime(2027, 5, 3, 9, 0, tzinfo=UTC)
    for i in range(5):
        enqueue(store, f"+4915112345{i:03d}", at=t)
    first = send(store, "sim1", policy, t, delay_s=600)
    assert first is not None
    # Paced: the next bulk message waits 600 s ...
    assert send(store, "sim1", policy, t + dt.timedelta(seconds=10), delay_s=600) is None
    # ... but an OTP queued now goes at once, and so does a transactional message.
    otp = enqueue(store, "+4917000000001", at=t, priority=9)
    got = send(store, "sim1", policy, t + dt.timedelta(seconds=11), delay_s=600)
    assert got is not None and got[0] == otp
    receipt = enqueue(store, "+4917000000002", at=t, transactional=True)
    got = send(store, "sim1", policy, t + dt.timedelta(seconds=12), delay_s=600)
    assert got is not None and got[0] == receipt
    assert send(store, "sim1", policy, t + dt.timedelta(seconds=300), delay_s=600) is None
    # When the pause is over, bulk goes again; another SIM was never paced by this one.
    assert send(store, "sim1", policy, t + dt.timedelta(seconds=613), delay_s=600) is not None
    assert send(store, "sim2", policy, t + dt.timedelta(seconds=14), delay_s=600) is not None


def test_distinct_recipient_cap_still_lets_known_numbers_through(store: Store) -> None:
    policy = CarePolicy(recipients_per_day=2)
    t = dt.datetime(2027, 5, 3, 9, 0, tzinfo=UTC)
    a, b, c = "+4915100000001", "+4915100000002", "+4915100000003"
    for n in (a, b, c, a):
        enqueue(store, n, at=t)
    sent = [send(store, "sim1", policy, t) for _ in range(4)]
    assert [s[1] for s in sent if s] == [a, b, a]  # c is a third distinct number today: it waits
    nxt = t + dt.timedelta(days=1)
    got = send(store, "sim1", policy, nxt)
    assert got is not None and got[1] == c  # a new day


def test_send_counts_parts_and_cost_and_a_handed_back_claim_counts_nothing(store: Store) -> None:
    policy = CarePolicy(per_month=10)
    t = dt.datetime(2027, 5, 3, 9, 0, tzinfo=UTC)
    enqueue(store, "+4915100000001", at=t, parts=3)
    claim = store.claims.claim_next("sim1", lease_s=60, now=t, care=care_of(policy, t))
    assert claim is not None
    store.claims.settle_claim(claim.id, [], uncount_attempt=True)  # released unwritten: no care record
    got = send(store, "sim1", policy, t, cost=25_000)
    assert got is not None and got[2] == 3
    usage = store.simcare.usage(["sim1"], {"sim1": care_of(policy, t)})["sim1"]
    assert (usage.month_parts, usage.day_parts, usage.day_recipients) == (3, 3, 1)
    assert store.messages.get_message(got[0])["cost_micros"] == 75_000
    day0, day1 = t.replace(hour=0), t.replace(hour=0) + dt.timedelta(days=1)
    summary = store.simcare.cost_summary(day0 - dt.timedelta(days=400), day1 + dt.timedelta(days=400))
    assert summary["by_sim"] == {"sim1": 75_000} and summary["total_micros"] == 75_000


def test_month_cap_bounds_the_parts_of_the_next_claim(store: Store) -> None:
    policy = CarePolicy(per_month=4)
    t = dt.datetime(2027, 5, 3, 9, 0, tzinfo=UTC)
    enqueue(store, "+4915100000001", at=t, parts=3)
    enqueue(store, "+4915100000002", at=t, parts=2)
    enqueue(store, "+4915100000003", at=t, parts=1)
    got = [send(store, "sim1", policy, t) for _ in range(3)]
    assert [g[2] for g in got if g] == [3, 1]  # 2 parts would make 5 > 4; the 1-part one fits
    assert send(store, "sim1", policy, t.replace(month=6, day=1)) is not None  # a new month


# --- recipient quiet hours in the claim ---------------------------------------------------------


def test_quiet_hours_defer_a_bulk_message_without_claiming_it(store: Store) -> None:
    night = dt.datetime(2027, 1, 15, 7, 0, tzinfo=UTC)  # 02:00 in New York
    window = lambda number, now: pacing.recipient_open_at(number, "08:00-21:00", now)  # noqa: E731
    policy = CarePolicy()
    bulk = enqueue(store, "+12125551234", at=night)
    otp = enqueue(store, "+12125551235", at=night, transactional=True)
    got = send(store, "sim1", policy, night, window=window)
    assert got is not None and got[0] == otp  # transactional: not held
    assert send(store, "sim1", policy, night, window=window) is None
    row = store.messages.get_message(bulk)
    assert row["state"] == "queued" and row["wait_reason"] == "recipient_quiet_hours"
    assert row["send_at"] == dt.datetime(2027, 1, 15, 13, 0, tzinfo=UTC)  # 08:00 EST
    assert row["attempts"] == 0
    assert send(store, "sim1", policy, dt.datetime(2027, 1, 15, 12, 59, tzinfo=UTC), window=window) is None
    got = send(store, "sim1", policy, dt.datetime(2027, 1, 15, 13, 0, tzinfo=UTC), window=window)
    assert got is not None and got[0] == bulk


# --- the claim stays on its index with caps on ---------------------------------------------------


def claim_plans(store: Store, modem: str, care: ClaimCare | None, now: dt.datetime) -> list[list[str]]:
    """EXPLAIN QUERY PLAN of each claim SELECT claim_next really sends."""
    return plans_of(store, lambda sql: sql.lstrip().upper().startswith("SELECT")
                    and "ORDER BY messages.priority DESC" in sql,
                    lambda: store.claims.claim_next(modem, lease_s=60, now=now, care=care))


def assert_on_claim_index(plan: list[str], index: str = "ix_messages_claim ") -> None:
    assert any(index in line for line in plan), plan
    assert not any("TEMP B-TREE" in line for line in plan), plan  # walked in order, never sorted
    assert not any(line.startswith("SCAN messages") and "INDEX" not in line for line in plan), plan


def test_claim_stays_on_its_index_with_caps_on(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'plan.db'}", host="plan", sqlite_synchronous="OFF")
    store.migrate()
    try:
        t = dt.datetime(2027, 5, 3, 9, 0, tzinfo=UTC)
        policy = CarePolicy(pace_min_s=60, pace_max_s=90, per_month=1000, recipients_per_day=1,
                            recipients_per_month=5, per_day=100, warmup_start_per_day=10, warmup_days=10)
        for i in range(300):
            enqueue(store, f"+49151{i:08d}", at=t, priority=i % 3)
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        [plan] = claim_plans(store, "sim1", None, t)
        assert_on_claim_index(plan)
        assert_on_claim_index(claim_plans(store, "sim2", care_of(policy, t), t)[0])  # caps on, not paced
        send(store, "sim1", policy, t, delay_s=60)  # now paced, distinct-day cap reached
        later = t + dt.timedelta(seconds=1)
        # Paced, nothing exempt queued: two probes, each a seek on its own index, never
        # a walk through the 300 paced bulk messages.
        by_priority, transactional = claim_plans(store, "sim1", care_of(policy, later), later)
        assert_on_claim_index(by_priority)
        assert any("priority" in line and "ix_messages_claim " in line for line in by_priority), by_priority
        assert_on_claim_index(transactional, "ix_messages_claim_tx")
        # The "already contacted" probe is a primary-key lookup, not a scan.
        assert any("sim_contacts" in line and "INDEX" in line for line in by_priority), by_priority
    finally:
        store.close()


def test_counters_hold_across_hosts(store_url: str) -> None:
    """Two gateways on one store (a SIM moved to another host): the second sees the
    first one's pause and counts."""
    a, b = Store(store_url, host="host-a"), Store(store_url, host="host-b")
    a.migrate()
    try:
        policy = CarePolicy(pace_min_s=600, pace_max_s=600, per_month=2)
        t = dt.datetime(2027, 5, 3, 9, 0, tzinfo=UTC)
        for i in range(3):
            enqueue(a, f"+4915100000{i:03d}", at=t)
        assert send(a, "sim1", policy, t, delay_s=600) is not None
        assert send(b, "sim1", policy, t + dt.timedelta(seconds=60), delay_s=600) is None  # paced by host a
        assert send(b, "sim1", policy, t + dt.timedelta(seconds=601), delay_s=600) is not None
        assert send(a, "sim1", policy, t + dt.timedelta(seconds=1300), delay_s=600) is None  # month cap: 2 of 2
        usage = b.simcare.usage(["sim1"], {"sim1": care_of(policy, t)})["sim1"]
        assert usage.month_parts == 2 and usage.month_recipients == 2
    finally:
        a.close()
        b.close()
