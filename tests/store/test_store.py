"""Store behaviour, run on SQLite and on PostgreSQL (the `store` fixture is parametrised)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect

from gsmgw.domain import MessageState
from gsmgw.store import NewMessage, PartResult, Store
from gsmgw.store.migrate import current_revision, head_revision


def msg(to: str = "+15551234567", parts: int = 1, **kw: object) -> NewMessage:
    return NewMessage(to_number=to, text="hi", encoding="gsm7", parts_total=parts, **kw)  # type: ignore[arg-type]


def test_migrations_create_schema_on_empty_database(store: Store) -> None:
    names = set(inspect(store.engine).get_table_names())
    assert {"messages", "message_parts", "modems", "inbound_messages", "status_reports", "events",
            "api_keys", "alembic_version"} <= names
    assert current_revision(store.engine) == head_revision()


def test_migrations_on_existing_database_keep_data(store_url: str) -> None:
    s = Store(store_url)
    s.migrate()
    res = s.messages.enqueue([msg()])
    s.close()
    s2 = Store(store_url)
    s2.migrate()  # second start: no-op, data kept
    assert s2.messages.get_message(res.message_ids[0])["state"] == "queued"
    assert current_revision(s2.engine) == head_revision()
    s2.close()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    s = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    s.migrate()
    s.close()
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_api_keys_hashed_and_revocable(store: Store) -> None:
    key_id, key = store.keys.create_api_key("crm", ["send", "read"])
    assert store.keys.verify_api_key(key).scopes == {"send", "read"}  # type: ignore[union-attr]
    assert store.keys.verify_api_key(key + "x") is None
    assert store.keys.verify_api_key("gsk_00000000_nope") is None
    with store.engine.connect() as conn:
        from sqlalchemy import text

        stored = conn.execute(text("select key_hash from api_keys")).scalar()
    assert key not in stored and len(stored) == 64
    assert store.keys.revoke_api_key(key_id)
    assert store.keys.verify_api_key(key) is None
    with pytest.raises(ValueError):
        store.keys.create_api_key("bad", ["root"])


def test_enqueue_is_committed_and_claim_order_follows_priority(store: Store) -> None:
    low = store.messages.enqueue([msg(priority=-5)]).message_ids[0]
    high = store.messages.enqueue([msg(priority=9)]).message_ids[0]
    normal = store.messages.enqueue([msg()]).message_ids[0]
    order = [store.claims.claim_next("m1", lease_s=30).id for _ in range(3)]  # type: ignore[union-attr]
    assert order == [high, normal, low]
    assert store.claims.claim_next("m1", lease_s=30) is None


def test_claim_respects_sim_pin_send_at_and_validity(store: Store) -> None:
    now = dt.datetime.now(dt.UTC)
    pinned = store.messages.enqueue([msg(sim_requested="m2")]).message_ids[0]
    store.messages.enqueue([msg(send_at=now + dt.timedelta(hours=1))])
    store.messages.enqueue([msg(valid_until=now - dt.timedelta(seconds=1), send_at=now - dt.timedelta(seconds=5))])
    assert store.claims.claim_next("m1", lease_s=30) is None
    got = store.claims.claim_next("m2", lease_s=30)
    assert got is not None and got.id == pinned
    expired = store.messages.expire_due()
    assert len(expired) == 1
    assert store.messages.get_message(expired[0])["state"] == "expired"


def test_idempotency_key_replays_instead_of_duplicating(store: Store) -> None:
    a = store.messages.enqueue([msg(), msg("+15557654321")], api_key_id="k1", idempotency_key="abc")
    b = store.messages.enqueue([msg(), msg("+15557654321")], api_key_id="k1", idempotency_key="abc")
    assert b.replayed and sorted(b.message_ids) == sorted(a.message_ids)
    c = store.messages.enqueue([msg()], api_key_id="k2", idempotency_key="abc")  # other key: distinct
    assert not c.replayed
    assert store.messages.queue_depth() == 3


def test_settle_multipart_sent_then_partial_transient_pins_sim(store: Store) -> None:
    mid = store.messages.enqueue([msg(parts=3)]).message_ids[0]
    c = store.claims.claim_next("m1", lease_s=30)
    assert c is not None and c.pending_seqs == [1, 2, 3]
    store.claims.mark_parts_sending(mid, [1, 2, 3], "m1")
    final = store.claims.settle_claim(
        mid,
        [PartResult(1, MessageState.SENT, tp_mr=4), PartResult(2, MessageState.QUEUED, error_code="cms:42")],
    )
    assert final is MessageState.QUEUED
    row = store.messages.get_message(mid)
    assert row["sim_requested"] == "m1"  # the rest must leave from the same SIM
    assert [p["state"] for p in row["parts"]] == ["sent", "queued", "queued"]
    assert store.claims.claim_next("m2", lease_s=30) is None
    c2 = store.claims.claim_next("m1", lease_s=30)
    assert c2 is not None and c2.pending_seqs == [2, 3]
    store.claims.mark_parts_sending(mid, [2, 3], "m1")
    final = store.claims.settle_claim(mid, [PartResult(2, MessageState.SENT, tp_mr=5), PartResult(3, MessageState.SENT, tp_mr=6)])
    assert final is MessageState.SENT
    assert store.messages.get_message(mid)["sent_at"] is not None


def test_unknown_outcome_is_final_and_rest_cancelled(store: Store) -> None:
    mid = store.messages.enqueue([msg(parts=2)]).message_ids[0]
    store.claims.claim_next("m1", lease_s=30)
    store.claims.mark_parts_sending(mid, [1, 2], "m1")
    final = store.claims.settle_claim(mid, [PartResult(1, MessageState.UNKNOWN, error_code="unknown")])
    assert final is MessageState.UNKNOWN
    parts = store.messages.get_message(mid)["parts"]
    assert [p["state"] for p in parts] == ["unknown", "cancelled"]
    assert store.claims.claim_next("m1", lease_s=30) is None


def test_recover_after_crash_marks_sending_parts_unknown_and_requeues_untouched(store: Store) -> None:
    written = store.messages.enqueue([msg()]).message_ids[0]
    claimed_only = store.messages.enqueue([msg()]).message_ids[0]
    resendable = store.messages.enqueue([msg(resend_unknown=True)]).message_ids[0]
    for _ in range(3):
        c = store.claims.claim_next("m1", lease_s=30)
        assert c is not None
        if c.id in (written, resendable):
            store.claims.mark_parts_sending(c.id, [1], "m1")
    counts = store.claims.recover()
    assert counts == {"unknown": 1, "requeued": 2, "sent": 0}
    assert store.messages.get_message(written)["state"] == "unknown"
    assert store.messages.get_message(claimed_only)["state"] == "queued"
    assert store.messages.get_message(resendable)["state"] == "queued"


def test_recover_leaves_other_hosts_live_leases_alone(store_url: str) -> None:
    a = Store(store_url, host="a")
    a.migrate()
    b = Store(store_url, host="b")
    mid = a.messages.enqueue([msg()]).message_ids[0]
    assert a.claims.claim_next("m1", lease_s=60) is not None
    a.claims.mark_parts_sending(mid, [1], "m1")
    assert b.claims.recover(only_expired_leases=True) == {"unknown": 0, "requeued": 0, "sent": 0}
    assert b.messages.get_message(mid)["state"] == "sending"
    a.close()
    b.close()


def test_upsert_modem_and_list(store: Store) -> None:
    store.modems.upsert_modem("sim1", state="ready", imei="861234567890123", port="/dev/pts/3")
    store.modems.upsert_modem("sim1", operator="Emulated")
    [row] = store.modems.list_modems()
    assert row["state"] == "ready" and row["operator"] == "Emulated" and row["host"] == "test-host"


def test_timestamps_are_utc_aware(store: Store) -> None:
    mid = store.messages.enqueue([msg()]).message_ids[0]
    row = store.messages.get_message(mid)
    assert row["created_at"].tzinfo is not None
    assert abs((row["created_at"] - dt.datetime.now(dt.UTC)).total_seconds()) < 60


@pytest.mark.parametrize("given", ["my-own-demo-key-123", "gsk_0badc0de_chosenByTheAdmin42"])
def test_caller_chosen_key_verifies(store: Store, given: str) -> None:
    store.keys.create_api_key("demo", ["send"], key=given)
    assert store.keys.verify_api_key(given) is not None
    store.keys.create_api_key("demo", ["send"], key=given)  # re-created at each demo start: no clash
    with pytest.raises(ValueError):
        store.keys.create_api_key("demo", ["send"], key="short")


def test_recover_pins_a_resendable_half_sent_multipart_to_its_sim(store: Store) -> None:
    mid = store.messages.enqueue([msg(parts=2, resend_unknown=True)]).message_ids[0]
    store.claims.claim_next("m1", lease_s=30)
    store.claims.mark_parts_sending(mid, [1, 2], "m1")
    store.claims.settle_claim(mid, [PartResult(1, MessageState.SENT, tp_mr=1)])
    store.claims.claim_next("m1", lease_s=30, mark_sending=True)
    assert store.claims.recover()["requeued"] == 1
    row = store.messages.get_message(mid)
    assert row["state"] == "queued" and row["sim_requested"] == "m1"  # part 2 must leave from m1
    assert store.claims.claim_next("m2", lease_s=30) is None


def test_get_messages_returns_the_existing_ones_in_order_with_parts(store: Store) -> None:
    a = store.messages.enqueue([msg()]).message_ids[0]
    b = store.messages.enqueue([NewMessage("+447700900124", "two parts", "gsm7", 2)]).message_ids[0]
    rows = store.messages.get_messages([b, "missing", a, b])
    assert [r["id"] for r in rows] == [b, a]
    assert [p["seq"] for p in rows[0]["parts"]] == [1, 2] and len(rows[1]["parts"]) == 1
    assert rows[1] == store.messages.get_message(a)
    assert store.messages.get_messages([]) == []


def test_claims_of_one_modem_are_this_hosts_sending_messages_on_it(store: Store) -> None:
    ids = [store.messages.enqueue([msg()]).message_ids[0] for _ in range(3)]
    assert store.claims.claim_next("m1", lease_s=60) is not None
    assert store.claims.claim_next("m2", lease_s=60) is not None
    assert [r["id"] for r in store.claims.claims_of("m1")] == [ids[0]]
    assert [r["id"] for r in store.claims.claims_of("m2")] == [ids[1]]
    assert store.claims.claims_of("m3") == []
    other = Store(store.url, host="other-host")
    try:
        assert other.claims.claims_of("m1") == []  # another host's claims are not ours to settle
    finally:
        other.close()
