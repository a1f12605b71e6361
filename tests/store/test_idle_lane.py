"""The executor's low-priority lane (call_idle) and the prune's adaptive batches."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from gsmgw.config import RetentionConfig
from gsmgw.housekeeping import MAX_BATCH_ROWS, MIN_BATCH_ROWS, next_batch_rows
from gsmgw.store import Store


@pytest.mark.timeout(30)
async def test_an_idle_call_waits_for_every_queued_call_and_runs_alone(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.call(store.migrate)
    order: list[str] = []
    gate = threading.Event()

    def blocker() -> None:  # holds the writer thread while the others queue up
        gate.wait(5)
        order.append("blocker")

    def hot(i: int) -> int:
        order.append(f"hot{i}")
        return i

    def idle() -> bool:
        order.append("idle")
        return store.db.in_batch  # must be False: never inside a shared group commit

    try:
        first = asyncio.ensure_future(store.call(blocker))
        await asyncio.sleep(0.05)
        background = asyncio.ensure_future(store.call_idle(idle))
        await asyncio.sleep(0.01)
        hots = [asyncio.ensure_future(store.call(hot, i)) for i in range(5)]
        await asyncio.sleep(0.01)
        gate.set()
        await first
        assert await asyncio.gather(*hots) == list(range(5))
        assert await background is False
        assert order == ["blocker", "hot0", "hot1", "hot2", "hot3", "hot4", "idle"], order
    finally:
        store.close()


@pytest.mark.timeout(60)
async def test_idle_calls_are_not_starved_by_continuous_traffic(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.call(store.migrate)
    stop = False

    async def traffic() -> None:
        while not stop:
            await store.call(store.messages.queue_depth)

    try:
        tasks = [asyncio.create_task(traffic()) for _ in range(4)]
        t0 = time.monotonic()
        done = [await store.call_idle(lambda: 1) for _ in range(20)]
        assert sum(done) == 20 and time.monotonic() - t0 < 30
        stop = True
        await asyncio.gather(*tasks)
    finally:
        store.close()


def test_batch_sizes_adapt_to_the_time_budget() -> None:
    rc = RetentionConfig(batch_rows=200, batch_ms=8.0)
    assert next_batch_rows(200, 200, 0.040, rc) == 40  # 5 rows/ms -> 40 rows for 8 ms
    assert next_batch_rows(200, 200, 0.001, rc) == 400  # fast: at most doubles
    assert next_batch_rows(10_000, 10_000, 0.0001, rc) == MAX_BATCH_ROWS
    assert next_batch_rows(200, 200, 10.0, rc) == MIN_BATCH_ROWS
    assert next_batch_rows(200, 200, 0.040, RetentionConfig(batch_rows=200, batch_ms=0)) == 200


@pytest.mark.timeout(30)
async def test_an_idle_call_sees_a_hot_call_queue_up_behind_it(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.call(store.migrate)
    started = threading.Event()

    def idle() -> float:  # a long background job that asks between its steps
        started.set()
        t0 = time.monotonic()
        while not store.db.hot_waiting():
            if time.monotonic() - t0 > 10:
                return -1.0
            time.sleep(0.001)
        return time.monotonic() - t0

    try:
        assert store.db.hot_waiting() is False
        background = asyncio.ensure_future(store.call_idle(idle))
        while not started.is_set():
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.05)
        assert await store.call(store.messages.queue_depth) == 0  # let in once the job yields
        assert await background >= 0.05
        assert store.db.hot_waiting() is False
    finally:
        store.close()
