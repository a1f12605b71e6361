"""Follow the store's events table for the compatibility surfaces' callbacks.

The native webhooks (``gsmgw.webhooks``) are a durable outbox with their own
cursor. The compatibility layers need something lighter: Kannel's ``dlr-url``
is expanded per delivery report (``%d`` depends on the state reached), and SMS
Gateway for Android's webhook registrations live in memory. Both subscribe here:
one task per app reads events committed after the app started and hands each
to every subscriber; subscribers send their HTTP requests through
:meth:`EventFollower.post`, which is bounded, retried a little and cancelled on
shutdown. Delivery is at most once per event and receiver, like Kannel's own
``dlr-url`` requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from gsmgw import __version__
from gsmgw.api.context import SERVICES
from gsmgw.outbox import WakeGap, idle_poll_s
from gsmgw.waits import wait_event

log = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[None]]


async def latest_event_id(store: Any) -> int:
    """The highest event id: where a follower that starts now begins."""
    return int(await store.call(store.events.max_id))


class EventFollower:
    def __init__(self, store: Any, *, poll_interval_s: float = 0.5, batch: int = 200,
                 timeout_s: float = 10.0, attempts: int = 3, retry_delay_s: float = 1.0,
                 max_in_flight: int = 32) -> None:
        self.store = store
        self.poll_interval_s = poll_interval_s
        self.batch = batch
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.retry_delay_s = retry_delay_s
        self.cursor = 0
        # SQLite commits one writer at a time: ids appear in order, no gap to wait for.
        self.gap_wait_s = 0.0 if getattr(store, "is_sqlite", True) else 5.0
        self._handlers: list[EventHandler] = []
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._posts: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._wake = asyncio.Event()
        self._gap = WakeGap()
        self._unlisten: Any = None
        self.posted_total = 0
        self.failed_total = 0

    @property
    def in_flight(self) -> int:
        """Callbacks started and not finished yet (retries included)."""
        return len(self._posts)

    def subscribe(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    async def start(self) -> None:
        self.cursor = await latest_event_id(self.store)
        if hasattr(self.store, "on_events_committed"):
            self._unlisten = self.store.on_events_committed(self._wake.set)
        self._session = aiohttp.ClientSession(headers={"User-Agent": f"gsmgw/{__version__}"})
        self._task = asyncio.create_task(self._run(), name="compat-event-follower")

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        tasks = [t for t in (self._task, *self._posts) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._posts.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while True:
            try:
                n = await self.run_once()
            except Exception:
                log.exception("compat event round failed")
                n = 0
            if n < self.batch:
                # Woken after a commit that wrote events; the poll is the safety net (and,
                # on PostgreSQL, how other hosts' events are seen).
                await wait_event(self._wake, idle_poll_s(self.store, self.poll_interval_s))
                await asyncio.sleep(self._gap.next_s())
                self._wake.clear()

    async def run_once(self) -> int:
        rows = await self.store.call(self.store.events.list_events, after_id=self.cursor, limit=self.batch,
                                    with_door=True)
        now = dt.datetime.now(dt.UTC)
        for row in rows:
            if int(row["id"]) != self.cursor + 1 and self.gap_wait_s > 0:
                # On PostgreSQL an id taken by a transaction still open may commit
                # after this one: wait a little before stepping over the gap.
                created = row["created_at"]
                created = created if created.tzinfo else created.replace(tzinfo=dt.UTC)
                if (now - created).total_seconds() < self.gap_wait_s:
                    return 0
            self.cursor = max(self.cursor, int(row["id"]))
            for handler in self._handlers:
                try:
                    await handler(row)
                except Exception:
                    log.exception("compat handler failed on event %s (%s)", row["id"], row["type"])
        return len(rows)

    def post(self, method: str, url: str, *, json_body: Any = None, what: str = "callback") -> None:
        """Send one request in the background (a few attempts; 2xx = done)."""
        task = asyncio.create_task(self._post(method, url, json_body, what), name=f"compat-{what}")
        self._posts.add(task)
        task.add_done_callback(self._posts.discard)

    async def _post(self, method: str, url: str, json_body: Any, what: str) -> None:
        async with self._slots:
            for attempt in range(1, self.attempts + 1):
                error = await self._attempt(method, url, json_body)
                if error is None:
                    self.posted_total += 1
                    return
                log.warning("%s %s %s: attempt %d failed (%s)", what, method, url, attempt, error)
                if attempt < self.attempts:
                    await asyncio.sleep(self.retry_delay_s * attempt)
            self.failed_total += 1

    async def _attempt(self, method: str, url: str, json_body: Any) -> str | None:
        if self._session is None:
            return "stopped"
        try:
            async with self._session.request(
                method, url, json=json_body, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            ) as resp:
                await resp.read()
                return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"[:300]


FOLLOWER = web.AppKey("compat_event_follower", EventFollower)


def follower(app: web.Application) -> EventFollower:
    """The app's follower, created (and tied to the app's life) on first use."""
    existing = app.get(FOLLOWER)
    if existing is not None:
        return existing
    svc = app[SERVICES]
    f = EventFollower(svc.store, timeout_s=svc.cfg.webhooks.timeout_s)
    app[FOLLOWER] = f

    async def ctx(_app: web.Application) -> AsyncIterator[None]:
        await f.start()
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await f.stop()

    app.cleanup_ctx.append(ctx)
    return f


__all__ = ["FOLLOWER", "EventFollower", "follower", "latest_event_id"]
