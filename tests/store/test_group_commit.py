"""Group commit on SQLite: concurrent store calls share transactions, each keeps its own outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import event

from gsmgw.store import NewMessage, Store


async def test_concurrent_calls_share_commits_and_errors_stay_their_own(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.call(store.migrate)
    commits = 0

    def on_commit(_conn: object) -> None:
        nonlocal commits
        commits += 1

    event.listen(store.engine, "commit", on_commit)
    try:
        calls = [store.call(store.messages.enqueue, [NewMessage(f"+1555123{i:04d}", "x", "gsm7", 1)]) for i in range(60)]
        calls.insert(30, store.call(store.messages.enqueue, []))  # raises ValueError: must not sink the others
        results = await asyncio.gather(*calls, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], ValueError)
        assert await store.call(store.messages.queue_depth) == 60
        # Far fewer commits than calls (the failing batch is re-run one by one).
        assert commits < 45, commits
    finally:
        store.close()


async def test_idempotency_conflict_inside_a_batch_still_replays(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.call(store.migrate)
    try:
        same = [store.call(store.messages.enqueue, [NewMessage("+15551234567", "x", "gsm7", 1)],
                           api_key_id="k", idempotency_key="once") for _ in range(5)]
        results = await asyncio.gather(*same)
        assert len({r.batch_id for r in results}) == 1
        assert sum(not r.replayed for r in results) == 1
        assert await store.call(store.messages.queue_depth) == 1
    finally:
        store.close()


@pytest.mark.parametrize("n", [1, 7])
async def test_results_come_back_in_the_right_order(tmp_path: Path, n: int) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.call(store.migrate)
    try:
        res = await asyncio.gather(*[store.call(store.messages.enqueue, [NewMessage(f"+1555000{i:04d}", str(i), "gsm7", 1)])
                                     for i in range(n)])
        for i, r in enumerate(res):
            row = await store.call(store.messages.get_message, r.message_ids[0])
            assert row["text"] == str(i)
    finally:
        store.close()


async def test_the_writer_thread_keeps_one_connection_and_still_signals_committed_events(tmp_path: Path) -> None:
    from gsmgw.domain import MessageState
    from gsmgw.store import PartResult

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.call(store.migrate)
    checkouts = 0

    def on_checkout(*_: object) -> None:
        nonlocal checkouts
        checkouts += 1

    woken = asyncio.Event()
    event.listen(store.engine, "checkout", on_checkout)
    unlisten = store.on_events_committed(woken.set)
    try:
        [mid] = (await store.call(store.messages.enqueue, [NewMessage("+15551230001", "x", "gsm7", 1)])).message_ids
        for _ in range(5):
            assert (await store.call(store.messages.get_message, mid))["state"] == "queued"  # reads end their tx
        with pytest.raises(ValueError):
            await store.call(store.messages.enqueue, [])
        claim = await store.call(store.claims.claim_next, "m1", lease_s=30, mark_sending=True)
        assert claim is not None
        woken.clear()
        final = await store.call(store.claims.settle_claim, mid, [PartResult(1, MessageState.SENT, tp_mr=1)])
        assert final is MessageState.SENT
        await asyncio.wait_for(woken.wait(), 5)  # the 'sent' event's commit woke the consumers
        assert checkouts <= 1, checkouts  # one connection for all those transactions
    finally:
        unlisten()
        store.close()
    assert store.engine.pool.checkedout() == 0  # closed on the writer thread at shutdown
