"""The webhook sender: fan events out of the durable outbox, POST them, retry with backoff.

At-least-once: a delivery row is only marked ``delivered`` after a 2xx answer, so
a receiver (or gateway) that is down gets every event once it is back; the event
id in ``X-Gsmgw-Event-Id`` and the body lets a receiver drop repeats. One
receiver is handled in event order, one request at a time: after a failure its
other deliveries wait for the backoff (no hammering a dead receiver), and after
the next success they are due at once. Receivers never wait for each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from gsmgw import __version__
from gsmgw.backoff import backoff_s
from gsmgw.config import Config
from gsmgw.outbox import SIGNALLED_POLL_S, WakeGap
from gsmgw.waits import wait_event
from gsmgw.webhooks import payload
from gsmgw.webhooks.signing import SIGNATURE_HEADER, signature_header

log = logging.getLogger(__name__)


class WebhookSender:
    def __init__(self, cfg: Config | Callable[[], Config], store: Any, *, batch_size: int = 100) -> None:
        self._cfg = cfg if callable(cfg) else (lambda: cfg)
        self.store = store
        self.batch_size = batch_size
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        # Receiver URL -> monotonic time before which it is not tried again.
        self._blocked: dict[str, float] = {}
        # Receivers whose last attempt failed: their next success wakes their backlog.
        self._failing: set[str] = set()
        # When every event is signalled (SQLite, Store.events_signalled), a round reads
        # the outbox only after a signal and claims deliveries only when some may be
        # due: right after a fan-out that queued some, after a round that found some, or when a retry
        # this sender scheduled comes due; otherwise both wait for the safety poll.
        # Monotonic times; 0 = at the next round.
        self._fanout_due = 0.0
        self._claim_due = 0.0
        self._unlisten: Callable[[], None] | None = None
        self._gap = WakeGap()

    @property
    def cfg(self) -> Config:
        return self._cfg()

    async def start(self) -> None:
        # What this host claimed in a previous run and never settled (a crash).
        await self.store.call(self.store.webhooks.release_webhook_leases)
        self._session = aiohttp.ClientSession(
            headers={"User-Agent": f"gsmgw/{__version__}"},
            connector=aiohttp.TCPConnector(limit=32),
        )
        if hasattr(self.store, "on_events_committed"):
            self._unlisten = self.store.on_events_committed(self.notify)
        self._task = asyncio.create_task(self._run(), name="webhook-sender")

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            # Deliveries claimed by the cancelled round go back to the outbox now.
            with contextlib.suppress(Exception):
                await self.store.call(self.store.webhooks.release_webhook_leases)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def notify(self) -> None:
        """New events were committed: look at the outbox now."""
        self._fanout_due = 0.0
        self._wake.set()

    @property
    def _signalled(self) -> bool:
        return bool(getattr(self.store, "events_signalled", False))

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("webhook round failed")
                self._fanout_due = self._claim_due = 0.0
            wait_s = self.cfg.webhooks.poll_interval_s
            if self._signalled:
                wait_s = min(self._fanout_due, self._claim_due) - time.monotonic()
            await wait_event(self._wake, max(0.01, wait_s))
            await asyncio.sleep(self._gap.next_s())  # a burst's commits: one round for them
            self._wake.clear()

    def _targets(self, event: Any, message: Any) -> list[str]:
        cfg = self.cfg
        return payload.targets(cfg.webhooks, event, message) + payload.rule_targets(cfg.rules, event)

    async def run_once(self) -> int:
        """Fan out new events, then attempt due deliveries; returns the attempts made."""
        signalled = self._signalled
        now = time.monotonic()
        if not signalled or now >= self._fanout_due:
            self._fanout_due = now + SIGNALLED_POLL_S
            queued = 0
            while (fanned := await self.store.call(
                self.store.webhooks.webhook_fanout, self._targets, payload.render_event,
                gap_wait_s=0.0 if self.store.is_sqlite else 300.0,  # PostgreSQL: the gap rule's safety net
            )).events:
                queued += fanned.deliveries
                if fanned.events < 500:
                    break  # else a backlog: keep fanning out before sending
            if queued:  # (events no receiver wants queue nothing, and cost no claim)
                self._claim_due = 0.0
        if signalled and now < self._claim_due:
            return 0
        now = time.monotonic()
        self._blocked = {u: until for u, until in self._blocked.items() if until > now}
        wcfg = self.cfg.webhooks
        rows = await self.store.call(
            self.store.webhooks.claim_webhook_deliveries, limit=self.batch_size,
            lease_s=max(60.0, wcfg.timeout_s * 3), exclude_urls=list(self._blocked),
        )
        by_url: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_url.setdefault(r["url"], []).append(r)
        # A full batch: there may be more at once. Else the next claim is due when a
        # blocked receiver's backoff ends, when a retry this round schedules comes due
        # (_deliver_url lowers it), or at the safety poll.
        nxt = time.monotonic() + SIGNALLED_POLL_S
        if self._blocked:
            nxt = min(nxt, *self._blocked.values())
        self._claim_due = 0.0 if len(rows) >= self.batch_size else nxt
        counts = await asyncio.gather(*(self._deliver_url(u, rs) for u, rs in by_url.items()))
        return sum(counts)

    async def _deliver_url(self, url: str, rows: list[dict[str, Any]]) -> int:
        wcfg = self.cfg.webhooks
        attempts = 0
        for i, row in enumerate(rows):
            attempts += 1
            ok, status, error = await self._post(row)
            n = row["attempts"] + 1
            if ok:
                await self.store.call(self.store.webhooks.settle_webhook_delivery, row["id"], ok=True,
                                      status=status, error=None)
                if url in self._failing:
                    # It was failing and answers again: its backlog is due now.
                    self._failing.discard(url)
                    await self.store.call(self.store.webhooks.wake_webhook_target, url)
                    self._claim_due = 0.0
                continue
            delay = backoff_s(n, initial_s=wcfg.retry_initial_s, max_s=wcfg.retry_max_s)
            give_up = wcfg.max_attempts > 0 and n >= wcfg.max_attempts
            retry_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay)
            state = await self.store.call(
                self.store.webhooks.settle_webhook_delivery, row["id"], ok=False, status=status, error=error,
                retry_at=None if give_up else retry_at,
            )
            log.warning("webhook event %s to %s: attempt %d failed (%s); %s", row["event_id"], url, n,
                        error or status, "giving up" if state == "failed" else f"next in {delay:.1f} s")
            self._blocked[url] = time.monotonic() + delay
            self._claim_due = min(self._claim_due, time.monotonic() + delay)
            self._failing.add(url)
            for rest in rows[i + 1:]:
                await self.store.call(self.store.webhooks.settle_webhook_delivery, rest["id"], ok=False, status=None,
                                      error=None, retry_at=retry_at, attempted=False)
            break
        return attempts

    async def _post(self, row: dict[str, Any]) -> tuple[bool, int | None, str | None]:
        assert self._session is not None
        wcfg = self.cfg.webhooks
        body = row["body"].encode()
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Gsmgw-Event-Id": str(row["event_id"]),
            "X-Gsmgw-Event": row["event_type"],
            "X-Gsmgw-Delivery-Attempt": str(row["attempts"] + 1),
            "X-Gsmgw-Timestamp": str(ts),
        }
        if wcfg.signing_secret:
            headers[SIGNATURE_HEADER] = signature_header(wcfg.signing_secret, ts, body)
        try:
            async with self._session.post(
                row["url"], data=body, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=wcfg.timeout_s),
            ) as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    return True, resp.status, None
                return False, resp.status, f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return False, None, f"{type(exc).__name__}: {exc}"[:500]
