"""The report rollup equals a count done independently from the raw rows, whatever the
traffic (hypothesis), on SQLite and PostgreSQL; it counts each change once."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from gsmgw.housekeeping import classify_error
from gsmgw.store import tables as t
from gsmgw.store.rollup import LATENCY_BOUNDS_S, latency_bucket, percentile_s
from tests.reports.traffic import (
    BASE,
    CMS_CLASS,
    OUTCOMES,
    Spec,
    expected,
    insert_message,
    insert_reply,
    move_message,
    same,
)

specs = st.builds(
    Spec,
    sim=st.sampled_from(["sim1", "sim2", None]),
    key=st.sampled_from(["k1", "k2", None]),
    campaign=st.sampled_from(["c1", None]),
    day=st.integers(0, 40),
    parts=st.integers(1, 3),
    outcome=st.sampled_from(OUTCOMES),
    cms=st.sampled_from(sorted(CMS_CLASS)),
    latency_s=st.integers(0, 200_000),
    cost=st.none() | st.integers(0, 50_000),
    two_phase=st.booleans(),
)
replies = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["sim1", "sim2"]), st.integers(0, 40),
                             st.booleans(), st.booleans()), max_size=8)

ALL_TABLES = ("message_parts", "messages", "inbound_messages", "events", "report_daily", "report_monthly",
              "webhook_cursor")


def _reset(store: Any) -> None:
    with store.engine.begin() as conn:
        for name in ALL_TABLES:
            conn.execute(delete(t.metadata.tables[name]))


def _roll_all(store: Any, limit: int, chunk: int = 100, stop_every: int = 0) -> None:
    """Roll until caught up; with ``stop_every``, a hot-path call "waits" after every
    that many chunks, so batches end early (the writer thread's ``hot_waiting``)."""
    asked = 0

    def stop() -> bool:
        nonlocal asked
        asked += 1
        return bool(stop_every) and asked % stop_every == 0

    while store.rollup.roll(classify_error, limit=limit, gap_wait_s=0, chunk=chunk, stop=stop).more:
        pass


def test_classify_error_follows_the_pool() -> None:
    for code, klass in CMS_CLASS.items():
        assert classify_error(f"cms:{code}") == klass
    assert classify_error("cms:") == "other"


def test_latency_buckets_and_percentiles() -> None:
    assert latency_bucket(0) == 0 and latency_bucket(1) == 0 and latency_bucket(1.01) == 1
    assert latency_bucket(10**9) == len(LATENCY_BOUNDS_S)
    h = [0] * (len(LATENCY_BOUNDS_S) + 1)
    h[0], h[5] = 9, 1  # nine at <=1 s, one at <=10 s
    assert percentile_s(h, 0.5) == 1 and percentile_s(h, 0.95) == 10 and percentile_s(h, 0.9) == 1
    assert percentile_s([0] * len(h), 0.5) is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(traffic=st.lists(specs, min_size=1, max_size=25), inbound=replies, batch=st.integers(1, 9),
       chunk=st.integers(1, 4), stop_every=st.integers(0, 3))
def test_report_equals_a_count_of_the_raw_rows(store: Any, traffic: list[Spec], inbound: list[Any],
                                               batch: int, chunk: int, stop_every: int) -> None:
    _reset(store)
    ids = []
    with store.engine.begin() as conn:
        for s in traffic:
            first = "sent" if s.two_phase and s.outcome in ("delivered", "failed_report") else None
            ids.append(insert_message(conn, s, first or _final(s)))
    _roll_all(store, batch, chunk, stop_every)  # some counted while only sent
    with store.engine.begin() as conn:
        for mid, s in zip(ids, traffic, strict=True):
            if s.two_phase and s.outcome in ("delivered", "failed_report"):
                move_message(conn, mid, s, _final(s))  # a late status report
            elif s.two_phase:
                move_message(conn, mid, s, _final(s))  # the same event again: counts once
        for idx, sim, day, is_reply, optout in inbound:
            reply_to = ids[idx % len(ids)] if is_reply else None
            insert_reply(conn, reply_to, sim, BASE + dt.timedelta(days=day, hours=3), optout=optout)
    _roll_all(store, batch, chunk, stop_every)
    _roll_all(store, batch)  # nothing left: changes nothing
    with store.engine.connect() as conn:
        for group_by in ("sim", "key", "campaign"):
            for period in ("day", "month"):
                rows = store.rollup.report(group_by=group_by, period=period, date_from=BASE.date(),
                                           date_to=BASE.date() + dt.timedelta(days=45))
                same(rows, expected(conn, group_by, period), group_by)
            # Whole months: read from report_monthly, kept beside report_daily.
            rows = store.rollup.report(group_by=group_by, period="month", date_from=dt.date(2026, 10, 1),
                                       date_to=dt.date(2026, 11, 30))
            same(rows, expected(conn, group_by, "month"), group_by)


def _final(s: Spec) -> str:
    from tests.reports.traffic import final_state

    return final_state(s)


def test_a_key_sees_only_its_own_rows(store: Any) -> None:
    with store.engine.begin() as conn:
        insert_message(conn, Spec("sim1", "k1", None, 0, 1, "delivered", 1, 5, 100), "delivered")
        insert_message(conn, Spec("sim1", "k2", None, 0, 2, "delivered", 1, 5, 100), "delivered")
    _roll_all(store, 100)
    day = BASE.date()
    [row] = store.rollup.report(group_by="sim", period="day", date_from=day, date_to=day, api_key_id="k1")
    assert row["parts_sent"] == 1 and row["sim"] == "sim1"
    [row] = store.rollup.report(group_by="sim", period="day", date_from=day, date_to=day)
    assert row["parts_sent"] == 3


@pytest.mark.postgres
def test_two_hosts_rolling_at_once_count_each_event_once(pg_url: str) -> None:
    """Two stores (hosts) roll the same outbox concurrently: the cursor's compare-and-set
    makes one of them write nothing for a batch both read."""
    import threading

    from gsmgw.store import Store

    a, b = Store(pg_url, host="a"), Store(pg_url, host="b")
    try:
        a.migrate()
        with a.engine.begin() as conn:
            for i in range(300):
                insert_message(conn, Spec(f"sim{i % 3}", "k1", None, i % 5, 1 + i % 2, "delivered", 1, i, 10),
                               "delivered")
        errors: list[BaseException] = []

        def run(s: Store) -> None:
            try:
                while True:
                    r = s.rollup.roll(classify_error, limit=7, gap_wait_s=0)
                    if not r.more and r.events == 0:
                        break
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(s,)) for s in (a, b)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert not errors
        with a.engine.connect() as conn:
            rows = a.rollup.report(group_by="sim", period="month", date_from=BASE.date(),
                                   date_to=BASE.date() + dt.timedelta(days=10))
            same(rows, expected(conn, "sim", "month"), "sim")
    finally:
        a.close()
        b.close()
