"""The console's queries on SQLite and PostgreSQL: store.views (dashboards, threads) and
the single-aggregate ones (messages.search, messages.batch_progress, inbound.mark_read,
keys.is_active)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gsmgw.domain import MessageState
from gsmgw.store import NewMessage, PartResult
from gsmgw.store.records import id_floor
from tests.inbound.test_store_inbound import ingest, parts_of


def _msg(to: str, text: str = "hi", parts: int = 1, **kw: Any) -> NewMessage:
    return NewMessage(to_number=to, text=text, encoding="gsm7", parts_total=parts, **kw)


def _send(store: Any, modem: str, tp_mr: int) -> str:
    """Claim the next message on ``modem`` and record its parts as sent."""
    claim = store.claims.claim_next(modem, lease_s=30.0, mark_sending=True)
    assert claim is not None
    store.claims.settle_claim(claim.id, [PartResult(seq, MessageState.SENT, tp_mr=tp_mr + i)
                                  for i, seq in enumerate(claim.pending_seqs)])
    return str(claim.id)


def _report(store: Any, modem: str, tp_mr: int, to: str, category: str = "delivered") -> None:
    store.reports.record_status_report(modem, tp_mr=tp_mr, recipient=to, status=0 if category == "delivered" else 0x45,
                               category=category, meaning=category, scts=None, discharge_at=None,
                               window_s=3600.0)


def test_counts_throughput_and_delivery_per_sim(store: Any) -> None:
    now = dt.datetime.now(dt.UTC)
    store.messages.enqueue([_msg("+15550100001", parts=2)], api_key_id="k1")
    store.messages.enqueue([_msg("+15550100002")], api_key_id="k1")
    store.messages.enqueue([_msg("+15550100003")], api_key_id="k2")
    store.messages.enqueue([_msg("+15550100004", send_at=now + dt.timedelta(hours=1))])
    first = _send(store, "sim1", 10)
    second = _send(store, "sim2", 20)
    third = _send(store, "sim1", 30)
    _report(store, "sim1", 10, "+15550100001")
    _report(store, "sim1", 11, "+15550100001")
    _report(store, "sim2", 20, "+15550100002", "failed")
    assert store.messages.get_message(first)["state"] == "delivered"
    assert store.messages.get_message(second)["state"] == "failed"
    assert store.messages.get_message(third)["state"] == "sent"
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    counts = store.views.sim_counts(midnight)
    assert counts == {"sim1": {"sent": 3, "failed": 0}, "sim2": {"sent": 1, "failed": 1}}
    assert store.views.sim_counts(now + dt.timedelta(minutes=5)) == {}

    rows = store.views.throughput(now - dt.timedelta(minutes=5), 60)
    per_sim: dict[str, int] = {}
    for sim, bucket, n in rows:
        assert bucket % 60 == 0 and abs(bucket - now.timestamp()) < 400
        per_sim[sim] = per_sim.get(sim, 0) + n
    assert per_sim == {"sim1": 3, "sim2": 1}
    [(_, hour_bucket, _), *_] = store.views.throughput(now - dt.timedelta(hours=1), 3600)
    assert hour_bucket == int(now.timestamp()) // 3600 * 3600 or hour_bucket == int(now.timestamp()) // 3600 * 3600 + 3600

    d = store.views.delivery(now - dt.timedelta(hours=1))
    assert (d["sent"], d["delivered"], d["failed"], d["waiting"]) == (4, 2, 1, 1)
    assert d["rate"] == 2 / 3 and d["p50_s"] is not None and d["p50_s"] >= 0
    q = store.views.queue()
    assert (q["queued"], q["due"], q["scheduled"], q["depth"]) == (1, 0, 1, 1)
    assert store.views.oldest_due() is None  # only a scheduled one waits
    low = store.messages.enqueue([_msg("+15550100007", priority=-10)])
    high = store.messages.enqueue([_msg("+15550100008", priority=10)])
    created = {store.messages.get_message(r.message_ids[0])["created_at"] for r in (low, high)}
    assert store.views.oldest_due() == min(created)
    assert store.views.oldest_due(now=now - dt.timedelta(hours=1)) is None
    assert store.views.queue()["due"] == 2
    errors = store.views.recent_errors(since=now - dt.timedelta(hours=1))
    assert [e["id"] for e in errors] == [second] and errors[0]["error_code"]


def test_search_batches_and_owner(store: Any) -> None:
    batch = store.messages.enqueue([_msg("+447700900111"), _msg("+447700900222"), _msg("+15550100005")], api_key_id="k1")
    single = store.messages.enqueue([_msg("+447700900111", "other")], api_key_id="k2")
    v = store.views
    assert len(store.messages.search()) == 4
    assert {r["id"] for r in store.messages.search(number="+447700900111")} == {batch.message_ids[0], single.message_ids[0]}
    assert {r["to_number"] for r in store.messages.search(number_suffix="7700900222")} == {"+447700900222"}
    assert len(store.messages.search(batch_id=batch.batch_id)) == 3
    assert [r["id"] for r in store.messages.search(owner="k2")] == [single.message_ids[0]]
    assert store.messages.search(state="delivered") == []
    now = dt.datetime.now(dt.UTC)
    assert len(store.messages.search(since=now - dt.timedelta(minutes=1))) == 4
    assert store.messages.search(until=now - dt.timedelta(minutes=1)) == []
    newest = store.messages.search(limit=2)
    older = store.messages.search(before_id=newest[-1]["id"], limit=10)
    assert len(newest) + len(older) == 4 and not {r["id"] for r in newest} & {r["id"] for r in older}
    b = store.messages.batch_progress(batch.batch_id)
    assert b is not None and (b["total"], b["done"], b["final"]) == (3, 0, 0) and b["counts"] == {"queued": 3}
    assert store.messages.batch_progress(batch.batch_id, owner="k2") is None
    assert store.messages.batch_progress("nope") is None
    store.messages.cancel(batch.message_ids[1])
    assert store.messages.batch_progress(batch.batch_id)["final"] == 1
    assert [x["batch_id"] for x in v.recent_batches()] == [batch.batch_id]  # the single is no batch
    assert v.recent_batches(owner="k2") == []
    assert id_floor(now - dt.timedelta(seconds=5)) <= single.message_ids[0] < id_floor(now + dt.timedelta(seconds=1))


def test_threads_unread_and_read_marks(store: Any) -> None:
    alice, bob = "+447700900601", "+447700900602"
    store.messages.enqueue([_msg(alice, "hello alice")], api_key_id="k1")
    for p in parts_of(alice, "hi back"):
        ingest(store, p)
    for p in parts_of(bob, "from bob", modem="sim2"):
        ingest(store, p)
    v = store.views
    threads = v.conversations()
    assert [t["number"] for t in threads][:2] in ([bob, alice], [alice, bob])
    by = {t["number"]: t for t in threads}
    assert by[alice]["unread"] == 1 and by[alice]["inbound"] == 1 and by[alice]["outbound"] == 1
    assert by[bob]["last_text"] == "from bob" and by[bob]["last_direction"] == "in"
    assert store.inbound.unread_count() == 2
    items = v.thread(alice)
    assert [i["direction"] for i in items] in (["out", "in"], ["in", "out"])
    assert {i["text"] for i in items} == {"hello alice", "hi back"}
    assert [i["direction"] for i in v.thread(alice, owner="k2")] == ["in"]  # another key's sends hidden
    assert store.inbound.mark_read(alice) == 1 and store.inbound.mark_read(alice) == 0
    assert store.inbound.unread_count() == 1
    assert {t["number"]: t["unread"] for t in v.conversations()}[alice] == 0
    assert v.thread("+10000000000") == []


def test_api_key_active(store: Any) -> None:
    key_id, _ = store.keys.create_api_key("ops", ["read"])
    assert store.keys.is_active(key_id)
    store.keys.revoke_api_key(key_id)
    assert not store.keys.is_active(key_id)
    assert not store.keys.is_active("00000000")
