"""A prune batch of messages stays cheap at any store size: the re-check under the write
reads the batch's rows by primary key (with the retention rule's terms in its WHERE,
SQLite walked the state index, every final message, for batches over ~15 ids)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert

from gsmgw.store import Store
from gsmgw.store import tables as t
from gsmgw.store.records import utcnow
from gsmgw.store.retention import CHUNK_ROWS, SAFETY_MARGIN
from tests.store.plans import plans_of


def prunable_messages(n: int) -> list[dict[str, Any]]:
    """``n`` delivered, counted messages 60 days old: every one prunable at 30 days."""
    old = utcnow() - dt.timedelta(days=60)
    return [{"id": f"m{i:06d}", "batch_id": f"b{i:06d}", "to_number": "+15550001111", "text": "x",
             "encoding": "gsm7", "parts_total": 1, "state": "delivered", "priority": 0, "created_at": old,
             "updated_at": old, "send_at": old, "valid_until": old, "report_mark": "{}", "flash": False,
             "delivery_report": True, "transactional": False, "resend_unknown": False, "concat_ref": 0,
             "attempts": 1} for i in range(n)]


def store_with_prunable(tmp_path: Path, n: int, *, synchronous: str = "OFF") -> tuple[Store, dt.datetime, Any]:
    """A new SQLite store holding ``n`` prunable messages; the cutoff and horizon to prune them."""
    store = Store(f"sqlite:///{tmp_path / 'p.db'}", host="h", sqlite_synchronous=synchronous)
    store.migrate()
    with store.engine.begin() as conn:
        conn.execute(insert(t.messages), prunable_messages(n))
    return store, utcnow() - dt.timedelta(days=30), store.retention.horizon(margin=SAFETY_MARGIN)


def test_a_message_batch_reads_its_rows_by_key_and_deletes_them(tmp_path: Path) -> None:
    store, cutoff, horizon = store_with_prunable(tmp_path, 3000)

    def recheck(sql: str) -> bool:
        return sql.lstrip().upper().startswith("SELECT") and "messages.id IN" in sql

    def one_batch() -> None:
        assert store.retention.prune("messages", cutoff, horizon, limit=200).deleted == 200

    for plan in plans_of(store, recheck, one_batch):
        assert any("PRIMARY KEY" in p or "sqlite_autoindex_messages" in p for p in plan), plan
        assert not any("ix_messages" in p for p in plan), plan
    with store.engine.connect() as conn:
        left = conn.exec_driver_sql("SELECT count(*) FROM messages").scalar_one()
    assert left == 2800
    store.close()


def test_a_batch_asked_to_stop_commits_the_chunks_it_deleted_and_says_there_is_more(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'p.db'}", host="h", sqlite_synchronous="OFF")
    store.migrate()
    rows = prunable_messages(100)
    parts = [{"message_id": r["id"], "seq": 1, "state": "delivered", "recipient": "+15550001111"}
             for r in rows]
    with store.engine.begin() as conn:
        conn.execute(insert(t.messages), rows)
        conn.execute(insert(t.message_parts), parts)
    cutoff = utcnow() - dt.timedelta(days=30)
    horizon = store.retention.horizon(margin=SAFETY_MARGIN)
    asked: list[int] = []

    def stop() -> bool:  # a hot-path call turns up after the second chunk
        asked.append(1)
        return len(asked) >= 2

    try:
        batch = store.retention.prune("messages", cutoff, horizon, limit=80, stop=stop)
        assert batch == (2 * CHUNK_ROWS, True)
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM messages").scalar_one() == 100 - 2 * CHUNK_ROWS
            # no part outlives its message, none went without it
            assert conn.exec_driver_sql("SELECT count(*) FROM message_parts").scalar_one() == 100 - 2 * CHUNK_ROWS
            assert conn.exec_driver_sql("SELECT count(*) FROM message_parts WHERE message_id NOT IN "
                                        "(SELECT id FROM messages)").scalar_one() == 0
        # unasked, it deletes up to its limit and says whether it reached it
        assert store.retention.prune("messages", cutoff, horizon, limit=50) == (50, True)
        assert store.retention.prune("messages", cutoff, horizon, limit=50) == (10, False)
        assert store.retention.prune("messages", cutoff, horizon, limit=50) == (0, False)
    finally:
        store.close()


def test_a_prune_batch_commits_without_fsync_and_every_other_transaction_stays_full(tmp_path: Path) -> None:
    """The batch runs at ``synchronous=NORMAL`` (no fsync at its commit, WAL stays
    consistent); the connection goes back to the store's level after it, also when
    the batch fails, so no send ever commits without its fsync."""
    store, cutoff, horizon = store_with_prunable(tmp_path, 60, synchronous="FULL")
    levels: list[int] = []

    def level_at_delete(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            levels.append(conn.connection.driver_connection.execute("PRAGMA synchronous").fetchone()[0])

    def level_now() -> int:
        with store.engine.connect() as conn:
            return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())

    event.listen(store.engine, "before_cursor_execute", level_at_delete)
    try:
        assert store.retention.prune("messages", cutoff, horizon, limit=40).deleted == 40
        assert levels and set(levels) == {1}, levels  # NORMAL inside the batch
        assert level_now() == 2  # FULL for whatever the pool hands out next
        with store.db.tx() as conn:  # an ordinary transaction is FULL
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2

        def boom(*_: Any) -> None:
            raise RuntimeError("disk gone")

        store.retention._delete = boom  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="disk gone"):
            store.retention.prune("messages", cutoff, horizon, limit=40)
        assert level_now() == 2
    finally:
        event.remove(store.engine, "before_cursor_execute", level_at_delete)
        store.close()
    check = Store(f"sqlite:///{tmp_path / 'p.db'}", host="h")
    try:
        with check.engine.connect() as conn:  # the failed batch rolled back; the first one held
            assert conn.exec_driver_sql("SELECT count(*) FROM messages").scalar_one() == 20
    finally:
        check.close()
