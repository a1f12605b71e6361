"""The store's read lane (``Store.call_read``): on SQLite reads run beside the writer
thread, on connections that cannot write."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from sqlalchemy import insert, text

from gsmgw.store import NewMessage, Store
from gsmgw.store import tables as t
from gsmgw.store.records import utcnow


@pytest.mark.timeout(30)
async def test_a_read_goes_on_while_the_writer_thread_is_busy(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.call(store.migrate)
    await store.call(store.messages.enqueue, [NewMessage("+15550001111", "hi", "gsm7", 1)])
    gate = threading.Event()
    try:
        held = asyncio.ensure_future(store.call(gate.wait, 10))  # the writer thread is held
        await asyncio.sleep(0.05)
        counts = await asyncio.wait_for(store.call_read(store.messages.counts_by_state), 5)
        assert counts == {"queued": 1}
        assert not held.done()
        gate.set()
        assert await held is True
        # and it sees what the writer committed since
        await store.call(store.messages.enqueue, [NewMessage("+15550002222", "hi", "gsm7", 1)])
        assert await store.call_read(store.messages.counts_by_state) == {"queued": 2}
    finally:
        gate.set()
        store.close()


@pytest.mark.timeout(30)
async def test_a_write_in_the_read_lane_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.call(store.migrate)

    def sneaky_tx() -> None:
        with store.db.tx() as conn:
            conn.execute(insert(t.job_leases).values(name="x", owner="me", until=utcnow()))

    def sneaky_read() -> None:  # a write through a read connection
        with store.db.read() as conn:
            conn.execute(text("INSERT INTO job_leases (name, owner, until) VALUES ('y', 'me', '2026-01-01')"))
            conn.commit()

    try:
        with pytest.raises(RuntimeError, match="read lane"):
            await store.call_read(sneaky_tx)
        with pytest.raises(Exception, match=r"readonly|read-only|query_only"):
            await store.call_read(sneaky_read)
        assert await store.call_read(lambda: store.db.in_batch) is False
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM job_leases").scalar_one() == 0
    finally:
        store.close()


@pytest.mark.timeout(30)
async def test_the_read_lane_never_creates_a_store_file_that_was_removed(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    store = Store(f"sqlite:///{db}")
    await store.call(store.migrate)
    await store.call(store.messages.enqueue, [NewMessage("+15550001111", "hi", "gsm7", 1)])
    try:
        db.unlink()
        # the writer's open connection still reads the removed file, as before the read lane
        assert await store.call_read(store.messages.counts_by_state) == {"queued": 1}
        assert not db.exists()
    finally:
        store.close()
