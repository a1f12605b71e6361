"""A durable consumer of the outbox (the events table), for the doors that push events.

A door that pushes (webhooks, MQTT, e-mail, SMPP ``deliver_sm``) gives a name and a
coroutine that pushes one event; this runner does the rest:

    consumer = OutboxConsumer("mqtt", store, publish, types=["sms:*", "message:*"])
    await consumer.start()
    ...
    consumer.notify()          # new events were committed: look now (else every poll_interval_s)
    await consumer.stop()

- events come in id order, each after every event before it was handled
  (``EventsRepo.read_after``: on PostgreSQL a reader stops before an id gap while
  a transaction that could fill it is open, and passes it as soon as none is, the
  gap rule in ``gsmgw.store.events``; ``gap_wait_s`` is only a safety net);
- the cursor (a ``webhook_cursor`` row under the consumer's name) moves past an
  event only after ``handle`` returned, so a crash or a stop replays at most the
  event in hand: delivery is at least once, and a receiver drops repeats by event id;
- a failing ``handle`` is retried with capped exponential backoff, and the events
  after it wait (order is kept);
- several hosts may run the same consumer: the cursor moves by compare-and-set, so
  it never goes backwards; an event may then be pushed by two hosts (at least once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Literal

from gsmgw.backoff import backoff_s
from gsmgw.store import OutboxEvent, Store
from gsmgw.waits import wait_event

log = logging.getLogger(__name__)

Handler = Callable[[OutboxEvent], Awaitable[None]]
# PostgreSQL: pass an id gap after this long even if the gap rule has not (a safety net).
GAP_NET_S = 300.0
# A consumer is woken by the store after each commit that wrote events (Store.on_events_committed)
# and reads WAKE_GAP_S later (the burst's other commits land meanwhile); within BUSY_FOR_S of
# its previous round it waits BUSY_GAP_S: in a busy minute it reads a few batches a second, not
# one event per commit (each round is a store call: CPU per sent message).
WAKE_GAP_S = 0.05
BUSY_GAP_S = 0.25
BUSY_FOR_S = 1.0


class WakeGap:
    """How long a woken consumer waits before its round (see WAKE_GAP_S)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0.0

    def next_s(self) -> float:
        now = time.monotonic()
        gap = BUSY_GAP_S if now - self._last < BUSY_FOR_S else WAKE_GAP_S
        self._last = now + gap
        return gap


# On SQLite every event is signalled (one process owns the file): the poll is only a safety net.
SIGNALLED_POLL_S = 10.0


def idle_poll_s(store: object, poll_interval_s: float) -> float:
    """How long a caught-up consumer waits for a wake-up before it reads anyway: its own
    ``poll_interval_s``, or at least ``SIGNALLED_POLL_S`` where the store signals every
    commit that wrote events (the read is then only a safety net)."""
    if getattr(store, "events_signalled", False):
        return max(poll_interval_s, SIGNALLED_POLL_S)
    return poll_interval_s


# attempt (1, 2, ...) -> seconds to wait before the next one.
Backoff = Callable[[int], float]


def capped_backoff(initial_s: float = 1.0, max_s: float = 300.0) -> Backoff:
    """``initial_s``, 2×, 4×, … up to ``max_s`` (``gsmgw.backoff``)."""

    def delay_s(attempt: int) -> float:
        return backoff_s(attempt, initial_s=initial_s, max_s=max_s)

    return delay_s


# How long a stop waits for the event in hand to be finished (see OutboxConsumer.stop).
STOP_GRACE_S = 2.0


class OutboxConsumer:
    def __init__(
        self,
        name: str,
        store: Store,
        handle: Handler,
        *,
        types: Collection[str] | None = None,
        backoff: Backoff | None = None,
        poll_interval_s: float = 1.0,
        batch: int = 100,
        gap_wait_s: float | None = None,
        start_at: Literal["oldest", "latest"] = "latest",
    ) -> None:
        """``types``: exact event types or families (``sms:*``), None = all.
        ``gap_wait_s`` defaults to 0 on SQLite (one writer: no gaps to wait for) and
        300 s on PostgreSQL, where it is only the safety net of the gap rule (a
        transaction open that long somewhere on the server). ``start_at``: where a consumer seen for the first time
        begins; "latest" (the default) spares a door switched on later from pushing
        the whole history."""
        if not name or len(name) > 40:
            raise ValueError("an outbox consumer's name is 1-40 characters (webhook_cursor.name)")
        self.name = name
        self.store = store
        self.handle = handle
        self.types = None if types is None else frozenset(types)
        self.backoff = backoff or capped_backoff()
        self.poll_interval_s = poll_interval_s
        self.batch = batch
        self.gap_wait_s = gap_wait_s if gap_wait_s is not None else (0.0 if store.is_sqlite else GAP_NET_S)
        self.start_at = start_at
        self._wake = asyncio.Event()
        self._gap = WakeGap()
        self._task: asyncio.Task[None] | None = None
        self._unlisten: Callable[[], None] | None = None
        self._stopping = asyncio.Event()  # set by stop(): ends the loop at its next turn
        # Consecutive failed rounds (handler or database); resets on success.
        self.failures = 0
        self.handled_total = 0
        self.failed_total = 0

    async def start(self) -> None:
        await self.store.call(self.store.events.ensure_cursor, self.name, start=self.start_at)
        self._unlisten = self.store.on_events_committed(self.notify)
        self._task = asyncio.create_task(self._run(), name=f"outbox-{self.name}")

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop after the event in hand, if it is done within ``grace_s``; else at once.

        The event being handled when the stop comes is finished, and the cursor moved
        past it, when that takes at most ``grace_s``: a gateway stopped or restarted
        between a publish and its acknowledgement does not publish it again after the
        restart (it did: the cancel came before the cursor moved). A handler still
        busy after ``grace_s`` (a receiver that does not answer) is cancelled, and that
        event is not advanced past (it comes again: at least once).

        The cancel alone is not enough: a handler may swallow it (on Python 3.11 a
        library's ``asyncio.wait_for`` loses a cancel that comes as its reply arrives:
        aiosmtplib's, when a stop came while the e-mail door read the server's 250),
        and the loop then ran on and the gateway's stop waited for it for ever. The
        loop also checks ``_stopping`` after every step, so it ends at its next turn.
        """
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        self._wake.set()
        if grace_s > 0:
            await asyncio.wait({task}, timeout=grace_s)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        self._stopping.clear()

    def notify(self) -> None:
        """New events were committed: read now instead of at the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                more = await self.run_once()
            except Exception as exc:
                self.failures += 1
                self.failed_total += 1
                delay_s = self.backoff(self.failures)
                log.warning("outbox consumer %s: %s; retrying in %.1f s", self.name,
                            f"{type(exc).__name__}: {exc}"[:300], delay_s)
                # A notify does not cut a backoff short (the receiver is what failed); a stop does.
                await wait_event(self._stopping, delay_s)
                continue
            self.failures = 0
            if more:
                continue
            await wait_event(self._wake, max(0.01, idle_poll_s(self.store, self.poll_interval_s)))
            await asyncio.sleep(self._gap.next_s())  # let a burst's commits land: one read for them
            self._wake.clear()

    async def run_once(self) -> bool:
        """Handle what can be read now; True if more may be read at once.

        Raises what ``handle`` raised, after moving the cursor past the events
        handled before it.
        """
        store = self.store
        read = await store.call(store.events.read_after, self.name, limit=self.batch,
                                gap_wait_s=self.gap_wait_s, types=self.types)
        cursor = read.cursor
        for ev in read.events:
            if self._stopping.is_set():
                return False
            try:
                await self.handle(ev)
            except Exception:
                # Every event before this one is handled (or not of our types).
                if ev.id - 1 > cursor:
                    await store.call(store.events.advance, self.name, cursor, ev.id - 1)
                raise
            self.handled_total += 1
            if not await store.call(store.events.advance, self.name, cursor, ev.id):
                log.info("outbox consumer %s: the cursor moved under us (another host); re-reading", self.name)
                return True
            cursor = ev.id
        if read.through_id > cursor and not await store.call(
            store.events.advance, self.name, cursor, read.through_id
        ):
            return True
        return read.more


__all__ = ["GAP_NET_S", "SIGNALLED_POLL_S", "STOP_GRACE_S", "WAKE_GAP_S", "Backoff", "Handler", "OutboxConsumer", "WakeGap", "capped_backoff",
           "idle_poll_s"]
