"""The store's hot paths made cheaper for issue 17 keep their meaning (SQLite and PostgreSQL):
the sticky-SIM lookup reads the newest send only, the idle watcher's and the
maintenance's reads say exactly when there is work, and the prebuilt settle and
report statements record what the built-anew ones did."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import inspect, update

from gsmgw.domain import MessageState
from gsmgw.store import NewMessage, PartResult, Store
from gsmgw.store import tables as t
from tests.store.plans import plans_of


def new(to: str = "+15551234567", **kw: object) -> NewMessage:
    return NewMessage(to_number=to, text="x", encoding="gsm7", parts_total=1, **kw)  # type: ignore[arg-type]


def sent(store: Store, to: str, sim: str, at: dt.datetime) -> str:
    mid = store.messages.enqueue([new(to)]).message_ids[0]
    with store.engine.begin() as conn:
        conn.execute(update(t.messages).where(t.messages.c.id == mid)
                     .values(state="sent", modem_id=sim, sent_at=at))
    return mid


def test_sticky_lookup_takes_the_newest_send_in_the_window(store: Store) -> None:
    t0 = dt.datetime.now(dt.UTC)  # one instant for the whole test
    number = "+15550001111"
    for i in range(30):
        sent(store, number, "simA", t0 - dt.timedelta(minutes=90 - i))
    sent(store, number, "simB", t0 - dt.timedelta(minutes=30))  # the newest send
    sent(store, number, "simC", t0 - dt.timedelta(days=30))  # outside the window
    # Claimed but never sent (sent_at NULL): not a send.
    claimed = store.messages.enqueue([new(number)]).message_ids[0]
    with store.engine.begin() as conn:
        conn.execute(update(t.messages).where(t.messages.c.id == claimed).values(modem_id="simD"))
    sent(store, "+15550002222", "simE", t0 - dt.timedelta(days=8))
    since = t0 - dt.timedelta(days=7)
    assert store.messages.last_sims({number, "+15550002222", "+15550009999"}, since) == {number: "simB"}
    # And through enqueue: the sticky SIM is the preferred one.
    mid = store.messages.enqueue([new(number)], sticky_s=7 * 86400.0).message_ids[0]
    assert store.messages.get_message(mid)["preferred_sim"] == "simB"  # type: ignore[index]


def test_sticky_lookup_is_one_index_probe_on_sqlite(store: Store) -> None:
    if not store.is_sqlite:
        return
    from gsmgw.store import messages as repo

    sql = str(repo._LAST_SIM.compile(store.engine))  # the statement under test
    with store.engine.connect() as conn:
        plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}",
                                                                  ("+1", "2020-01-01 00:00:00", 1, 0)))
    assert "ix_messages_to_number_sent" in plan and "TEMP B-TREE" not in plan, plan


def test_the_pending_work_read_says_when_there_is_work(store: Store) -> None:
    t0 = dt.datetime.now(dt.UTC)  # one instant for the whole test

    def due(now: dt.datetime | None = None) -> bool:
        return store.messages.pending_work(now)[0]

    def sweeps(now: dt.datetime | None = None) -> tuple[bool, bool]:
        return store.messages.pending_work(now)[1:]

    assert store.messages.pending_work() == (False, False, False)
    later = store.messages.enqueue([new(send_at=t0 + dt.timedelta(minutes=5))]).message_ids[0]
    assert due() is False  # scheduled, not due
    assert due(t0 + dt.timedelta(minutes=6)) is True
    assert sweeps(t0 + dt.timedelta(days=2)) == (True, False)  # its validity ends
    with store.engine.begin() as conn:
        conn.execute(update(t.messages).where(t.messages.c.id == later).values(send_at=t0))
    assert due() is True
    c = store.claims.claim_next("sim1", lease_s=30)
    assert c is not None and c.id == later
    assert store.messages.pending_work() == (False, False, False)  # claimed: not queued any more
    assert sweeps(t0 + dt.timedelta(seconds=60)) == (False, True)  # its lease ran out
    assert store.claims.recover(only_expired_leases=True) == {"unknown": 0, "requeued": 0, "sent": 0}


def test_settle_then_a_report_that_came_first_makes_it_delivered(store: Store) -> None:
    """A status report committed before the settle is applied by the settle (the
    prebuilt statements re-read the message only then)."""
    t0 = dt.datetime.now(dt.UTC)  # one instant for the whole test
    mid = store.messages.enqueue([new("+15550003333")]).message_ids[0]
    c = store.claims.claim_next("sim1", lease_s=30, mark_sending=True)
    assert c is not None and c.id == mid
    # The report overtakes the settle: it cannot match yet (the part is not sent).
    early = store.reports.record_status_report(
        "sim1", tp_mr=7, recipient="+15550003333", status=0, category="delivered", meaning="delivered",
        scts=None, discharge_at=t0, window_s=3600)
    assert early.message_id is None
    final = store.claims.settle_claim(mid, [PartResult(1, MessageState.SENT, tp_mr=7)], report_window_s=3600)
    assert final is MessageState.DELIVERED
    msg = store.messages.get_message(mid)
    assert msg is not None and msg["state"] == "delivered" and msg["lease_owner"] is None
    assert [(p["state"], p["tp_mr"], p["report_status"]) for p in msg["parts"]] == [("delivered", 7, 0)]


def test_settle_requeue_pins_and_uncounts_like_before(store: Store) -> None:
    t0 = dt.datetime.now(dt.UTC)  # one instant for the whole test
    mid = store.messages.enqueue([new("+15550004444")]).message_ids[0]
    c = store.claims.claim_next("sim1", lease_s=30, mark_sending=True)
    assert c is not None and c.attempts == 1
    retry = t0 + dt.timedelta(seconds=5)
    final = store.claims.settle_claim(
        mid, [PartResult(1, MessageState.QUEUED, error_code="cms:42", error_text="congestion")], retry_at=retry)
    assert final is MessageState.QUEUED
    msg = store.messages.get_message(mid)
    assert msg is not None
    assert (msg["state"], msg["modem_id"], msg["last_failed_modem"], msg["error_code"]) == (
        "queued", None, "sim1", "cms:42")
    assert abs((msg["send_at"] - retry).total_seconds()) < 1e-3
    # Handed back unwritten: the attempt is given back.
    with store.engine.begin() as conn:
        conn.execute(update(t.messages).where(t.messages.c.id == mid).values(send_at=t0))
    c = store.claims.claim_next("sim2", lease_s=30)
    assert c is not None and c.attempts == 2
    assert store.claims.settle_claim(mid, [], uncount_attempt=True) is MessageState.QUEUED
    msg = store.messages.get_message(mid)
    assert msg is not None and msg["attempts"] == 1 and msg["state"] == "queued"


def test_the_prebuilt_claim_walks_the_claim_index_on_sqlite(store: Store) -> None:
    if not store.is_sqlite:
        return
    from gsmgw.store import claims

    sql = str(claims._S.claim.compile(store.engine))  # the statement under test
    params = ("x",) * (sql.count("?") - 2) + (1, 0)  # ... LIMIT ? OFFSET ?
    with store.engine.connect() as conn:
        plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "ix_messages_claim" in plan and "TEMP B-TREE" not in plan, plan


def _index_columns(store: Store, table: str) -> dict[str, list[str]]:
    return {ix["name"]: ix["column_names"] for ix in inspect(store.engine).get_indexes(table)}


def _report(store: Store, tp_mr: int, recipient: str) -> Any:
    return store.reports.record_status_report("sim1", tp_mr=tp_mr, recipient=recipient, status=0,
                                              category="delivered", meaning="ok", scts=None, discharge_at=None,
                                              window_s=3 * 86400.0)


def test_report_candidates_read_the_window_not_the_history(store: Store) -> None:
    """A status report reads the parts sent on its modem with its TP-MR in the window
    through (modem_id, tp_mr, sent_at) (migration 0016), not every part ever sent
    with that TP-MR on the SIM."""
    assert _index_columns(store, "message_parts")["ix_message_parts_report"] == ["modem_id", "tp_mr", "sent_at"]
    if store.is_sqlite:
        [plan] = plans_of(store, lambda sql: "FROM message_parts" in sql and "tp_mr" in sql and "sent_at >=" in sql,
                          lambda: _report(store, 7, "+15551234567"))
        assert "ix_message_parts_report (modem_id=? AND tp_mr=? AND sent_at>?)" in " ".join(plan), plan


def test_a_settle_looks_for_overtaking_reports_among_its_modems_and_tp_mrs(store: Store) -> None:
    """The reports waiting for a settled message's parts are read through (modem_id,
    tp_mr, received_at) (migration 0016), not through every unmatched report kept."""
    cols = _index_columns(store, "status_reports")
    assert cols["ix_status_reports_match"] == ["modem_id", "tp_mr", "received_at"]
    if store.is_sqlite:
        mid = store.messages.enqueue([new()]).message_ids[0]
        store.claims.claim_next("sim1", lease_s=30, mark_sending=True)
        [plan] = plans_of(store, lambda sql: "FROM status_reports JOIN message_parts" in sql,
                          lambda: store.claims.settle_claim(mid, [PartResult(1, MessageState.SENT, tp_mr=7)]))
        assert "ix_status_reports_match (modem_id=? AND tp_mr=? AND received_at>?)" in " ".join(plan), plan


def test_counts_by_state_are_exact_on_a_small_store(store: Store) -> None:
    mids = store.messages.enqueue([new(f"+1555123456{i}") for i in range(3)]).message_ids
    assert store.messages.counts_by_state() == {"queued": 3}
    store.messages.cancel(mids[0])
    assert store.messages.counts_by_state() == {"cancelled": 1, "queued": 2}


def test_a_costly_count_of_the_kept_messages_is_reused_and_the_queue_is_counted_each_time(
        store: Store, monkeypatch: Any) -> None:
    """On a store whose full count is costly (here: any), the states that are not live
    are counted once per reuse window; queued and sending are always exact."""
    from gsmgw.store import messages as repo

    monkeypatch.setattr(repo, "COUNT_EXACT_S", 0.0)
    monkeypatch.setattr(repo, "COUNT_REUSE", 1e9)
    monkeypatch.setattr(repo, "COUNT_REUSE_MAX_S", 3600.0)
    mids = store.messages.enqueue([new(f"+1555123456{i}") for i in range(3)]).message_ids
    store.messages.cancel(mids[0])
    assert store.messages.counts_by_state() == {"cancelled": 1, "queued": 2}
    store.messages.cancel(mids[1])
    store.messages.enqueue([new("+15551234569")])
    # The queue is exact; the cancelled count is the one of the window's first count.
    assert store.messages.counts_by_state() == {"cancelled": 1, "queued": 2}
    store.messages._final_counts = (0.0, {})  # the window has passed
    assert store.messages.counts_by_state() == {"cancelled": 2, "queued": 2}
