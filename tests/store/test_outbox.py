"""The outbox: consumers' cursors in the store (read_after / advance) and the runner
(gsmgw.outbox.OutboxConsumer), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest

from gsmgw.outbox import OutboxConsumer, capped_backoff
from gsmgw.store import OutboxEvent, Store
from gsmgw.store import tables as t

WAIT_S = 10.0


async def add(store: Store, n: int, type_: str = "test:event") -> None:
    for i in range(n):
        await store.call(store.events.add_event, type_, payload={"n": i})


class Recorder:
    """A handler that records what it was given and fails on chosen attempts."""

    def __init__(self, fail_first: dict[int, int] | None = None) -> None:
        self.attempts: dict[int, int] = {}
        self.seen: list[OutboxEvent] = []
        self.fail_first = fail_first or {}  # event position (0-based) -> failures before success
        self.changed = asyncio.Event()

    async def __call__(self, ev: OutboxEvent) -> None:
        self.attempts[ev.id] = self.attempts.get(ev.id, 0) + 1
        try:
            pos = ev.data().get("n", -1)
            if self.attempts[ev.id] <= self.fail_first.get(pos, 0):
                raise ConnectionError(f"receiver down (attempt {self.attempts[ev.id]})")
            self.seen.append(ev)
        finally:
            self.changed.set()

    async def wait_for(self, n: int) -> None:
        async def until() -> None:
            while len(self.seen) < n:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), WAIT_S)


def consumer(store: Store, name: str, handler: Any, **kw: Any) -> OutboxConsumer:
    kw.setdefault("backoff", capped_backoff(0.01, 0.05))
    kw.setdefault("poll_interval_s", 0.05)
    kw.setdefault("start_at", "oldest")
    return OutboxConsumer(name, store, handler, **kw)


# --- the runner ---------------------------------------------------------------------------


async def test_a_failing_handler_is_retried_and_each_event_is_seen_once_in_order(store: Store) -> None:
    await add(store, 4)
    rec = Recorder(fail_first={1: 2})  # the second event fails twice, then goes through
    c = consumer(store, "mqtt", rec)
    await c.start()
    try:
        await rec.wait_for(4)
        await wait_cursor(store, "mqtt", rec.seen[-1].id)  # advanced after the push, not before
    finally:
        await c.stop()
    assert [ev.data()["n"] for ev in rec.seen] == [0, 1, 2, 3]
    ids = [ev.id for ev in rec.seen]
    assert ids == sorted(ids) and len(set(ids)) == 4
    assert rec.attempts[ids[1]] == 3 and all(rec.attempts[i] == 1 for i in ids if i != ids[1])
    assert c.failed_total == 2


async def test_two_consumers_have_separate_cursors(store: Store) -> None:
    await add(store, 3)
    a, b = Recorder(), Recorder(fail_first={0: 1_000_000})  # b's receiver never answers
    ca, cb = consumer(store, "mqtt", a), consumer(store, "email", b, backoff=lambda _n: 0.05)
    await ca.start()
    await cb.start()
    try:
        await a.wait_for(3)
        await wait_cursor(store, "mqtt", a.seen[-1].id)
        await asyncio.wait_for(_until(lambda: cb.failed_total >= 2), WAIT_S)
    finally:
        await ca.stop()
        await cb.stop()
    last = a.seen[-1].id
    assert await store.call(store.events.cursor, "mqtt") == last
    assert await store.call(store.events.cursor, "email") == a.seen[0].id - 1  # not past its first event
    assert b.seen == []


async def test_a_restart_resumes_after_the_last_advanced_event(store: Store) -> None:
    await add(store, 2)
    first = Recorder()
    c = consumer(store, "smpp", first)
    await c.start()
    try:
        await first.wait_for(2)
        await wait_cursor(store, "smpp", first.seen[-1].id)
    finally:
        await c.stop()
    await add(store, 2, "test:later")
    again = Recorder()
    c = consumer(store, "smpp", again)
    await c.start()
    try:
        await again.wait_for(2)  # a replayed earlier event would come first
    finally:
        await c.stop()
    assert [ev.type for ev in again.seen] == ["test:later", "test:later"]
    assert again.seen[0].id == first.seen[-1].id + 1


async def test_a_stop_finishes_the_event_in_hand_so_a_restart_does_not_repeat_it(store: Store) -> None:
    """A stop that comes while the handler waits for its receiver's acknowledgement (an
    MQTT PUBACK) lets it finish and moves the cursor past it: after a restart the event
    does not come again. The cancel came first, and a graceful restart published it
    twice. A handler still busy after the grace is cancelled, and its event comes again."""
    await add(store, 2)
    entered, release = asyncio.Event(), asyncio.Event()
    handled: list[int] = []

    async def slow_ack(ev: OutboxEvent) -> None:
        entered.set()
        await release.wait()
        handled.append(ev.id)

    c = consumer(store, "mqtt", slow_ack)
    await c.start()
    await asyncio.wait_for(entered.wait(), WAIT_S)
    stopping = asyncio.create_task(c.stop())
    await asyncio.sleep(0.1)
    assert not stopping.done()  # it waits for the event in hand ...
    release.set()
    await asyncio.wait_for(stopping, WAIT_S)
    assert len(handled) == 1  # ... and takes no next one
    assert await store.call(store.events.cursor, "mqtt") == handled[0]

    again = Recorder()
    c = consumer(store, "mqtt", again)
    await c.start()
    try:
        await again.wait_for(1)
    finally:
        await c.stop()
    assert again.seen[0].id == handled[0] + 1  # the second event, not the first again

    await add(store, 1)
    hang_entered = asyncio.Event()

    async def hangs(ev: OutboxEvent) -> None:
        hang_entered.set()
        await asyncio.Event().wait()  # a receiver that never answers

    c = consumer(store, "mqtt", hangs)
    await c.start()
    await asyncio.wait_for(hang_entered.wait(), WAIT_S)
    t0 = time.monotonic()
    await asyncio.wait_for(c.stop(grace_s=0.2), WAIT_S)
    assert 0.15 <= time.monotonic() - t0 < 2.0  # the grace, then the cancel
    assert await store.call(store.events.cursor, "mqtt") == again.seen[-1].id  # it comes again


async def test_types_filter_and_the_cursor_still_moves_past_other_events(store: Store) -> None:
    await add(store, 2, "sms:received")
    await add(store, 3, "modem:online")
    rec = Recorder()
    c = consumer(store, "mail", rec, types=["sms:*"])
    await c.start()
    try:
        await rec.wait_for(2)
        await asyncio.wait_for(_until_async(lambda: _cursor_is_max(store, "mail")), WAIT_S)
    finally:
        await c.stop()
    assert [ev.type for ev in rec.seen] == ["sms:received", "sms:received"]


async def test_a_new_consumer_starts_after_the_history_by_default(store: Store) -> None:
    await add(store, 3, "test:old")
    rec = Recorder()
    c = OutboxConsumer("late-door", store, rec, poll_interval_s=0.05)
    await c.start()
    try:
        await add(store, 1, "test:new")
        c.notify()
        await rec.wait_for(1)
    finally:
        await c.stop()
    assert [ev.type for ev in rec.seen] == ["test:new"]


# --- the repository -------------------------------------------------------------------------


def test_advance_is_a_compare_and_set(store: Store) -> None:
    for _ in range(3):
        store.events.add_event("test:event")
    read = store.events.read_after("door", limit=10, gap_wait_s=0)
    assert read.cursor == 0 and [e.id for e in read.events] == [1, 2, 3] and read.through_id == 3
    assert store.events.advance("door", 0, 2) is True
    assert store.events.advance("door", 0, 3) is False  # another host moved it first
    assert store.events.cursor("door") == 2
    with pytest.raises(ValueError):
        store.events.advance("door", 2, 1)
    assert [e.id for e in store.events.read_after("door", limit=10, gap_wait_s=0).events] == [3]


def test_read_after_waits_out_a_young_gap_and_steps_over_an_old_one(store: Store) -> None:
    store.events.add_event("test:a")
    now = dt.datetime.now(dt.UTC)
    with store.engine.begin() as conn:  # id 2 taken by a transaction that has not committed (yet)
        conn.execute(t.events.insert().values(id=3, type="test:c", payload="{}", created_at=now))
    read = store.events.read_after("door", limit=10, gap_wait_s=30, now=now)
    if not store.is_sqlite:
        # PostgreSQL's gap rule: no transaction that could take id 2 is open, so the gap
        # is passed at once (an open one holds it: tests/store/test_outbox_gaps.py).
        for _ in range(1000):  # another database's transaction open just then: a few rounds
            if read.events:
                break
            time.sleep(0.01)
            read = store.events.read_after("door", limit=10, gap_wait_s=30, now=now)
        assert [e.id for e in read.events] == [1, 3]
        return
    assert [e.id for e in read.events] == [1] and read.through_id == 1 and not read.more
    later = now + dt.timedelta(seconds=31)
    read = store.events.read_after("door", limit=10, gap_wait_s=30, now=later)
    assert [e.id for e in read.events] == [1, 3]


def test_read_after_pages_and_says_when_there_is_more(store: Store) -> None:
    for _ in range(5):
        store.events.add_event("test:event")
    read = store.events.read_after("door", limit=2, gap_wait_s=0)
    assert [e.id for e in read.events] == [1, 2] and read.more
    assert store.events.advance("door", read.cursor, read.through_id)
    read = store.events.read_after("door", limit=10, gap_wait_s=0)
    assert [e.id for e in read.events] == [3, 4, 5] and not read.more


def test_max_event_id(store: Store) -> None:
    assert store.events.max_id() == 0
    for _ in range(4):
        store.events.add_event("test:event")
    assert store.events.max_id() == 4
    assert store.events.ensure_cursor("fresh", start="latest") == 4
    assert store.events.ensure_cursor("fresh", start="oldest") == 4  # created once, then kept


def test_the_webhook_fanout_shares_the_main_cursor(store: Store) -> None:
    for _ in range(3):
        store.events.add_event("test:event")
    start = store.events.cursor("main")  # seeded by migration 0002
    fanned = store.webhooks.webhook_fanout(lambda _ev, _msg: [], lambda _ev, _msg: "{}", gap_wait_s=0)
    assert fanned == (3, 0)  # read past, no receiver: nothing queued
    assert store.events.cursor("main") == (start or 0) + 3


# --- helpers -------------------------------------------------------------------------------------


async def wait_cursor(store: Store, name: str, event_id: int) -> None:
    """Until the consumer's cursor is at ``event_id`` (it moves just after the push)."""
    async def at() -> bool:
        return await store.call(store.events.cursor, name) == event_id

    await asyncio.wait_for(_until_async(at), WAIT_S)


async def _until(cond: Any) -> None:
    while not cond():
        await asyncio.sleep(0.01)


async def _until_async(cond: Any) -> None:
    while not await cond():
        await asyncio.sleep(0.01)


async def _cursor_is_max(store: Store, name: str) -> bool:
    return await store.call(store.events.cursor, name) == await store.call(store.events.max_id)
