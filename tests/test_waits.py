"""gsmgw.waits.wait_event: a stop's cancel is never lost, even when it comes in the same
loop turn as the wake-up (asyncio.wait_for on Python 3.11 swallows that cancel, and a
service loop parked in it then never stops: a gateway's shutdown hung on it)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gsmgw.outbox import SIGNALLED_POLL_S, OutboxConsumer, idle_poll_s
from gsmgw.store import OutboxEvent, Store
from gsmgw.waits import wait_event


async def test_wait_event_returns_true_when_set_and_false_after_the_timeout() -> None:
    ev = asyncio.Event()
    assert await wait_event(ev, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, ev.set)
    assert await wait_event(ev, 5.0) is True
    assert await wait_event(ev, 0.0) is True  # already set: no wait


async def _parked_loop(ev: asyncio.Event, rounds: list[int]) -> None:
    while True:  # the shape of every service loop: wait for a wake-up or the next poll
        await wait_event(ev, 10.0)
        ev.clear()
        rounds.append(1)


async def test_a_cancel_in_the_same_turn_as_the_wake_up_still_stops_the_loop() -> None:
    ev = asyncio.Event()
    rounds: list[int] = []
    task = asyncio.create_task(_parked_loop(ev, rounds))
    await asyncio.sleep(0.01)  # parked in wait_event
    ev.set()  # a notify() ...
    task.cancel()  # ... and the stop, before the loop runs again
    done, _ = await asyncio.wait([task], timeout=2.0)
    assert task in done and task.cancelled(), f"the loop ignored its cancel (rounds: {len(rounds)})"


async def test_outbox_consumer_stops_when_notified_at_the_moment_of_its_stop(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'g.db'}", host="t")
    await store.call(store.migrate)
    seen: list[OutboxEvent] = []

    async def handle(ev: OutboxEvent) -> None:
        seen.append(ev)

    consumer = OutboxConsumer("t", store, handle, poll_interval_s=10.0)
    try:
        await consumer.start()
        await asyncio.sleep(0.05)  # its first (empty) round is over: parked until a notify
        consumer.notify()
        async with asyncio.timeout(5):
            await consumer.stop()
    finally:
        store.close()


@pytest.mark.parametrize("timeout_s", [0.0, -1.0])
async def test_wait_event_with_no_time_left_does_not_block(timeout_s: float) -> None:
    async with asyncio.timeout(1):
        assert await wait_event(asyncio.Event(), timeout_s) is False


async def test_outbox_consumer_stops_even_when_its_handler_swallows_the_cancel(tmp_path: Path) -> None:
    """On 3.11 a library's own asyncio.wait_for may lose the cancel of a stop (aiosmtplib's,
    reading the server's reply): the handler then returns as if nothing happened."""
    from gsmgw.domain import EventType

    store = Store(f"sqlite:///{tmp_path / 'g.db'}", host="t")
    await store.call(store.migrate)
    entered = asyncio.Event()

    async def handle(ev: OutboxEvent) -> None:
        entered.set()
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # the reply came: the send completes, the cancel is gone

    consumer = OutboxConsumer("t", store, handle, poll_interval_s=0.02)
    try:
        await consumer.start()
        for _ in range(3):
            await store.call(store.events.add_event, EventType.SMS_RECEIVED, payload={})
        consumer.notify()
        await asyncio.wait_for(entered.wait(), 5)
        async with asyncio.timeout(5):
            await consumer.stop()
        assert consumer.handled_total == 1  # the one in hand; the next ones wait for the next start
    finally:
        store.close()


def test_a_store_that_signals_its_commits_stretches_the_idle_poll_to_a_safety_net(tmp_path: Path) -> None:
    sqlite = Store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        assert sqlite.events_signalled  # one process owns the file: every commit is seen
        assert idle_poll_s(sqlite, 0.5) == SIGNALLED_POLL_S
        assert idle_poll_s(sqlite, 60.0) == 60.0  # a longer poll the admin set stays
    finally:
        sqlite.close()

    class OtherHosts:  # PostgreSQL with several hosts: the poll is how their events are seen
        events_signalled = False

    assert idle_poll_s(OtherHosts(), 0.5) == 0.5
    assert idle_poll_s(object(), 2.0) == 2.0  # a stand-in without the flag
