"""Group commit on SQLite: concurrent store calls share transactions, each keeps its own outcome."""

from __future__ import annotations

import asyncio
import time
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


async def test_a_commit_with_events_wakes_every_consumer_in_one_call_with_its_results(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The results and the events-committed wake-ups of a call reach the loop in one
    call_soon_threadsafe (one write to its self-pipe), and a consumer that raises does
    not keep the others asleep."""
    from gsmgw.domain import MessageState
    from gsmgw.store import PartResult

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.call(store.migrate)
    loop = asyncio.get_running_loop()
    posted = 0
    real = loop.call_soon_threadsafe

    def counting(*args: object, **kw: object) -> object:
        nonlocal posted
        posted += 1
        return real(*args, **kw)  # type: ignore[arg-type]

    woken = [asyncio.Event(), asyncio.Event()]

    def broken() -> None:
        raise RuntimeError("a consumer's bug")

    unlisten = [store.on_events_committed(woken[0].set), store.on_events_committed(broken),
                store.on_events_committed(woken[1].set)]
    try:
        [mid] = (await store.call(store.messages.enqueue, [NewMessage("+15551230001", "x", "gsm7", 1)])).message_ids
        assert await store.call(store.claims.claim_next, "m1", lease_s=30, mark_sending=True) is not None
        await asyncio.sleep(0)
        for w in woken:
            w.clear()
        monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
        final = await store.call(store.claims.settle_claim, mid, [PartResult(1, MessageState.SENT, tp_mr=1)])
        assert final is MessageState.SENT
        assert all(w.is_set() for w in woken)  # fired with the result, before the caller resumed
        assert posted == 1, posted
        unlisten.pop()()  # unregistered: no longer woken
        woken[1].clear()
        await store.call(store.messages.enqueue, [NewMessage("+15551230002", "y", "gsm7", 1)])
        await asyncio.sleep(0)
        assert woken[0].is_set() and not woken[1].is_set()
    finally:
        monkeypatch.undo()
        for u in unlisten:
            u()
        store.close()


async def test_only_a_claim_ahead_commits_without_waiting_for_the_disk(tmp_path: Path) -> None:
    """claim_next without mark_sending commits at synchronous=NORMAL (nothing of it is
    written to a modem before a durable commit marks it sending); the claim that marks
    its parts sending, and the mark itself, commit at FULL."""
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.call(store.migrate)
    levels: list[int] = []

    def on_commit(conn: object) -> None:
        raw = conn.connection.driver_connection  # type: ignore[attr-defined]
        levels.append(raw.execute("PRAGMA synchronous").fetchone()[0])

    event.listen(store.engine, "commit", on_commit)
    try:
        await store.call(store.messages.enqueue, [NewMessage(f"+155512300{i:02d}", "x", "gsm7", 1) for i in range(2)])
        levels.clear()
        ahead = await store.call(store.claims.claim_next, "m1", lease_s=30)
        assert ahead is not None and levels == [1]  # NORMAL
        assert await store.call(store.claims.mark_parts_sending, ahead.id, ahead.pending_seqs, "m1",
                                ahead.attempts)
        now = await store.call(store.claims.claim_next, "m2", lease_s=30, mark_sending=True)
        assert now is not None and levels == [1, 2, 2]  # FULL, FULL
        # The connection is left as it was: the next durable commit still waits for the disk.
        await store.call(store.messages.enqueue, [NewMessage("+15551230099", "z", "gsm7", 1)])
        assert levels[-1] == 2
        # In a group commit they share its commit, which waits for the disk (the level of a
        # transaction is set before it begins, and the calls it will run are not known then).
        await store.call(store.messages.enqueue, [NewMessage(f"+155512301{i:02d}", "x", "gsm7", 1) for i in range(8)])
        levels.clear()
        # (the writer thread is kept busy a moment, so that the calls queue up behind and share a commit)
        busy = store.db.call(time.sleep, 0.2)
        claims = await asyncio.gather(*[store.call(store.claims.claim_next, f"m{i}", lease_s=30) for i in range(4)])
        await busy
        assert all(claims) and levels == [2], levels
    finally:
        store.close()


def _report(store: Store, tp_mr: int, *, durable: bool) -> object:
    return store.reports.record_status_report(
        "m1", tp_mr=tp_mr, recipient="+15551230001", status=0, category="delivered", meaning="ok",
        scts=None, discharge_at=None, window_s=3600, durable=durable)


async def test_synced_rides_on_the_next_durable_commit_else_syncs_the_wal_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lax commit (a status report read from the SIM) is made durable by the next commit
    that writes (the WAL is synced then, with every frame before it): ``synced`` spends no
    fsync of its own on a busy store. With no such commit within SYNC_WAIT_S the writer
    thread syncs the WAL itself; with nothing lax outstanding it returns at once."""
    import os

    from gsmgw.store import executor as ex

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.call(store.migrate)
    synced_files: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        synced_files.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    monkeypatch.setattr(ex, "SYNC_WAIT_S", 1.0)
    loop = asyncio.get_running_loop()
    try:
        await store.synced()  # nothing lax yet
        await store.call(_report, store, 1, durable=False)
        waiting = asyncio.ensure_future(store.synced())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # not on disk yet: the SIM must keep its copy
        await store.call(store.messages.enqueue, [NewMessage("+15551230001", "x", "gsm7", 1)])  # durable, writes
        await asyncio.wait_for(waiting, 5)
        assert synced_files == []  # carried by that commit
        await store.synced()  # and stays so

        await store.call(_report, store, 2, durable=False)
        t0 = loop.time()
        await asyncio.wait_for(store.synced(), 5)  # nothing else commits: the WAL is synced
        assert loop.time() - t0 >= 0.9 and len(synced_files) == 1

        await store.call(_report, store, 3, durable=False)
        await store.call(store.messages.counts_by_state)  # a durable call that writes nothing
        waiting = asyncio.ensure_future(store.synced())
        await asyncio.sleep(0.1)
        assert not waiting.done()  # it synced nothing, so it carried nothing
        await asyncio.wait_for(waiting, 5)
        assert len(synced_files) == 2

        def failing(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fdatasync", failing)
        await store.call(_report, store, 4, durable=False)
        with pytest.raises(OSError):  # not on disk: the caller keeps the SIM's copy
            await asyncio.wait_for(store.synced(), 5)
    finally:
        monkeypatch.undo()
        store.close()
