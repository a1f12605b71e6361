"""The SMPP door's store methods on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from gsmgw.store import Store
from gsmgw.store.smpp_repo import SmppDelivery

NOW = dt.datetime(2026, 1, 31, 12, 0, tzinfo=dt.UTC)


def test_accounts(store: Store) -> None:
    aid = store.smpp.create_account("esme", "scrypt$hash", ["send", "read"], rate_per_s=5, max_binds=2)
    assert aid.startswith("smpp") and len(aid) <= 16
    row = store.smpp.get_account("esme")
    assert row is not None and row["password_hash"] == "scrypt$hash" and row["scopes"] == "read,send"
    with pytest.raises(ValueError):
        store.smpp.create_account("esme", "x", ["send"])
    assert "password_hash" not in store.smpp.list_accounts()[0]
    assert store.smpp.revoke_account("esme") and not store.smpp.revoke_account("esme")
    assert store.smpp.get_account("esme") is None
    store.smpp.create_account("esme", "new", ["send"])  # a revoked one is replaced
    assert store.smpp.get_account("esme")["password_hash"] == "new"  # type: ignore[index]


def _hold(store: Store, seq: int, pid: str, key: str = "k" * 64, total: int = 3) -> Any:
    return store.smpp.hold_part(system_id="esme", group_key=key, seq=seq, total=total, part_id=pid,
                                user_data=f"part{seq} ".encode().hex(), request={"to": ["+1"]}, now=NOW)


def test_held_parts(store: Store) -> None:
    assert _hold(store, 2, "p2") == ("p2", None)
    assert _hold(store, 2, "again") == ("p2", None)  # sent again: the first id stays
    assert _hold(store, 1, "p1") == ("p1", None)
    pid, parts = _hold(store, 3, "p3")
    assert pid == "p3" and [p["part_id"] for p in parts] == ["p1", "p2", "p3"]
    assert json.loads(parts[0]["request"]) == {"to": ["+1"]}
    assert store.smpp.stale_groups(older_than=NOW) == []
    assert len(store.smpp.stale_groups(older_than=NOW + dt.timedelta(seconds=1))) == 1
    assert store.smpp.drop_parts("k" * 64, seq=3) == 1
    assert store.smpp.drop_parts("k" * 64) == 2
    assert store.smpp.stale_groups(older_than=NOW + dt.timedelta(days=1)) == []


def test_deliveries_of_an_event_are_added_once(store: Store) -> None:
    owed = [SmppDelivery("esme", "receipt", "m1", {"a": 1}), SmppDelivery("esme", "receipt", "m2", {})]
    assert store.smpp.add_deliveries(owed, event_id=7) == 2
    assert store.smpp.add_deliveries(owed, event_id=7) == 0  # the event handled again (a crash, a 2nd host)
    assert store.smpp.add_deliveries(owed[:1], event_id=8) == 1  # another event about the same message
    rows = store.smpp.list_deliveries()
    assert [(r["event_id"], r["ref"]) for r in rows] == [(7, "m1"), (7, "m2"), (8, "m1")]
    assert json.loads(rows[0]["pdu"]) == {"a": 1}


def test_claim_settle_and_leases(store: Store) -> None:
    assert store.smpp.add_deliveries([SmppDelivery("esme", "receipt", f"r{i}", {}) for i in range(3)]) == 3
    assert store.smpp.add_deliveries([SmppDelivery("esme", "receipt", "r0", {})]) == 0  # once per ref
    rows = store.smpp.claim_deliveries("esme", limit=2, lease_s=60)
    assert [r["ref"] for r in rows] == ["r0", "r1"]
    assert [r["ref"] for r in store.smpp.claim_deliveries("esme", limit=5, lease_s=60)] == ["r2"]
    assert store.smpp.claim_deliveries("other", limit=5, lease_s=60) == []
    assert store.smpp.settle_deliveries([rows[0]["id"]]) == 1
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert store.smpp.settle_delivery(rows[1]["id"], ok=False, error="x", retry_at=later) == "pending"
    assert store.smpp.release_leases() == 1  # r2, claimed and never settled
    assert [r["ref"] for r in store.smpp.claim_deliveries("esme", limit=5, lease_s=60)] == ["r2"]
    assert store.smpp.next_due("esme") is not None
    assert store.smpp.delivery_counts() == {"delivered": 1, "pending": 2}
