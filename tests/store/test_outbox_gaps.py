"""The outbox's gap rule on PostgreSQL, with real concurrent transactions.

Event ids come from a sequence; a transaction may take an id and commit after one
that took a later id, or roll back and leave a gap for ever. A reader must stop
before a gap while the transaction that may fill it is open, and pass it as soon
as that transaction has ended (not after a fixed wait).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gsmgw.domain import EventType
from gsmgw.store import Store
from gsmgw.store.events import insert_event
from gsmgw.store.records import utcnow

pytestmark = pytest.mark.postgres

# The age safety net, far beyond any of these tests: only the visibility rule may pass a gap.
NET_S = 3600.0


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    s = Store(pg_url, host="test-host")
    s.migrate()
    try:
        yield s
    finally:
        s.close()


class Writer:
    """One connection with (at most) one open transaction that inserts events."""

    def __init__(self, store: Store) -> None:
        self.conn = store.engine.connect()
        self.tx: Any = None
        self.ids: list[int] = []  # inserted in the open transaction, not rolled back
        self.sp: Any = None
        self.sp_ids: list[int] = []  # inserted inside the open savepoint

    def insert(self, n: int = 1) -> None:
        if self.tx is None:
            self.tx = self.conn.begin()
        for _ in range(n):
            insert_event(self.conn, EventType.SMS_SENT, utcnow(), payload={"w": id(self)})
            new = self._last_id()
            (self.sp_ids if self.sp is not None else self.ids).append(new)

    def savepoint(self) -> None:
        if self.tx is None:
            self.tx = self.conn.begin()
        if self.sp is None:
            self.sp = self.conn.begin_nested()

    def end_savepoint(self, commit: bool) -> None:
        if self.sp is None:
            return
        if commit:
            self.sp.commit()
            self.ids += self.sp_ids
        else:
            self.sp.rollback()
        self.sp, self.sp_ids = None, []

    def end(self, commit: bool) -> list[int]:
        """Commit or roll back; the ids that are now committed."""
        if self.tx is None:
            return []
        self.end_savepoint(commit)
        done = list(self.ids)
        (self.tx.commit if commit else self.tx.rollback)()
        self.tx, self.ids = None, []
        return done if commit else []

    def _last_id(self) -> int:
        from sqlalchemy import text

        return int(self.conn.execute(text("SELECT currval(pg_get_serial_sequence('events', 'id'))")).scalar_one())

    def close(self) -> None:
        if self.tx is not None:
            self.tx.rollback()
        self.conn.close()


def read_all(store: Store, consumer: str) -> list[int]:
    """One consumer round: read what is safe, advance past it; the event ids read."""
    got: list[int] = []
    while True:
        read = store.events.read_after(consumer, limit=7, gap_wait_s=NET_S)
        got += [e.id for e in read.events]
        if read.through_id > read.cursor:
            assert store.events.advance(consumer, read.cursor, read.through_id)
        if not read.more:
            return got


def read_until(store: Store, consumer: str, want: list[int], within_s: float = 10.0) -> list[int]:
    """Read rounds until ``want`` was read (or ``within_s`` passed). The server is
    shared: a gap is final once every transaction open when the reader noted it has
    ended, other databases' included, so it may take a few rounds."""
    got: list[int] = []
    deadline = time.monotonic() + within_s
    while True:
        got += read_all(store, consumer)
        if len(got) >= len(want) or time.monotonic() > deadline:
            return got
        time.sleep(0.01)


def test_an_open_lower_id_holds_the_reader_until_it_commits(pg_store: Store) -> None:
    a, b = Writer(pg_store), Writer(pg_store)
    try:
        a.insert()  # id 1, not committed
        b.insert()
        b.end(commit=True)  # id 2 committed
        assert a.ids == [1] and read_all(pg_store, "door") == []
        assert read_all(pg_store, "door") == []  # still open: still held, however often we look
        a.end(commit=True)
        assert read_until(pg_store, "door", [1, 2]) == [1, 2]
    finally:
        a.close()
        b.close()


def test_a_rolled_back_lower_id_is_passed_at_once(pg_store: Store) -> None:
    a, b = Writer(pg_store), Writer(pg_store)
    try:
        a.insert()  # id 1, will roll back
        b.insert()
        b.end(commit=True)  # id 2
        assert read_all(pg_store, "door") == []  # the reader notes the gap while a is open
        a.end(commit=False)
        t0 = time.monotonic()
        assert read_until(pg_store, "door", [2], within_s=10) == [2]
        assert time.monotonic() - t0 < 5.0  # typically ms; the server is shared (see read_until)
        # A gap already final when first seen is passed in the same read (or, if some
        # other transaction on the server was open just then, in one of the next).
        a.insert()  # id 3
        a.end(commit=False)
        b.insert()  # id 4
        b.end(commit=True)
        t0 = time.monotonic()
        assert read_until(pg_store, "door", [4], within_s=10) == [4]
        assert time.monotonic() - t0 < 5.0  # typically ms; the server is shared (see read_until)
    finally:
        a.close()
        b.close()


def test_the_webhook_fanout_waits_for_an_open_transaction_too(pg_store: Store) -> None:
    a, b = Writer(pg_store), Writer(pg_store)
    fan = pg_store.webhooks.webhook_fanout
    try:
        start = pg_store.events.cursor("main")
        a.insert()
        b.insert()
        b.end(commit=True)
        assert fan(lambda _e, _m: [], lambda _e, _m: "{}", gap_wait_s=NET_S).events == 0
        assert pg_store.events.cursor("main") == start
        a.end(commit=False)
        t0 = time.monotonic()
        while pg_store.events.cursor("main") != 2 and time.monotonic() - t0 < 10:
            fan(lambda _e, _m: [], lambda _e, _m: "{}", gap_wait_s=NET_S)
        assert pg_store.events.cursor("main") == 2
        assert time.monotonic() - t0 < 5.0  # typically ms; the server is shared (see read_until)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("seed", range(4))
def test_random_interleavings_deliver_every_committed_event_once_in_order(pg_store: Store, seed: int) -> None:
    """Several writers insert, commit, roll back (savepoints too), while two readers
    with their own cursors read: each reads every committed event exactly once, in
    id order, and never one that was rolled back."""
    rng = random.Random(seed)
    writers = [Writer(pg_store) for _ in range(4)]
    committed: set[int] = set()
    seen: dict[str, list[int]] = {"r1": [], "r2": []}
    try:
        for _ in range(120):
            w = rng.choice(writers)
            roll = rng.random()
            if roll < 0.35:
                w.insert(rng.choice([1, 1, 2]))
            elif roll < 0.45:
                w.savepoint()
                w.insert()
            elif roll < 0.5:
                w.end_savepoint(commit=rng.random() < 0.5)
            elif roll < 0.75:
                committed.update(w.end(commit=rng.random() < 0.7))
            else:
                name = rng.choice(["r1", "r2"])
                seen[name] += read_all(pg_store, name)
                open_ids = [i for x in writers for i in (*x.ids, *x.sp_ids)]
                # Nothing at or after the first still-open id was delivered.
                if open_ids:
                    assert all(i < min(open_ids) for i in seen[name]), (name, seen[name], open_ids)
        for w in writers:
            committed.update(w.end(commit=rng.random() < 0.7))
        for name in seen:
            seen[name] += read_until(pg_store, name, sorted(committed - set(seen[name])), within_s=10)
    finally:
        for w in writers:
            w.close()
    for name, ids in seen.items():
        assert ids == sorted(committed), name
