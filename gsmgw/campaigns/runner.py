"""The campaign runner: feeds running campaigns into the queue, a window at a time.

Each round, for each running campaign, it tops the campaign's queued-or-sending
messages up to its window (``[campaigns] window``) from its pending recipients,
in campaign order. Every recipient is submitted through ``IntakeService.submit``
(opt-outs, the owner key's daily quota, queue depth and the dispatcher's pacing
apply) as the key that created the campaign, with the idempotency key
``campaign:<id>:<contact id>``: if the gateway stops between the commit of a
message and the recipient's row being marked, the next run submits it again and
gets the first message back (a replay), so nothing is sent twice across a
restart, or by two hosts of a shared store running the same campaign.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from gsmgw.campaigns.service import idempotency_key
from gsmgw.config import CampaignsConfig
from gsmgw.errors import AdmissionError, ConflictError, ValidationError
from gsmgw.intake import Caller, IntakeService, SendRequest
from gsmgw.store import Store
from gsmgw.store.campaigns import PAUSED, R_OPTED_OUT, R_SUBMITTED, RUNNING

log = logging.getLogger(__name__)

# Submissions of one round that run together (they share group commits on SQLite).
CONCURRENCY = 25
# With no campaign running and none scheduled sooner, the runner looks this seldom (a
# start or resume on this host wakes it at once; one on another host is seen within this).
IDLE_WAIT_S = 30.0


class CampaignRunner:
    def __init__(self, store: Store, intake: IntakeService, config: Callable[[], CampaignsConfig]) -> None:
        self.store = store
        self.intake = intake
        self.config = config
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Campaigns held back until then (monotonic): a full queue or a used-up quota.
        self._backoff: dict[str, float] = {}
        # Whether the last round found a running campaign (else the runner idles).
        self._running = False

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="campaign-runner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                fed = await self.run_once()
            except Exception:
                log.exception("campaign runner round failed")
                fed = 0
            if fed:
                continue  # room was found: look again at once (the queue drains meanwhile)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(await self.next_wait_s()):
                    await self._wake.wait()
            self._wake.clear()

    async def next_wait_s(self) -> float:
        """How long to wait for a wake-up before the next round: the poll interval while a
        campaign runs, else until the next scheduled start (at most IDLE_WAIT_S)."""
        poll = self.config().poll_interval_s
        if self._running:
            return poll
        try:
            start = await self.store.call(self.store.campaigns.next_start_at)
        except Exception:
            log.exception("campaign runner: reading the next scheduled start failed")
            return poll
        if start is None:
            return IDLE_WAIT_S
        return max(poll, min(IDLE_WAIT_S, (start - dt.datetime.now(dt.UTC)).total_seconds()))

    async def run_once(self) -> int:
        """One round over the running campaigns; how many recipients were fed."""
        fed = 0
        now = asyncio.get_running_loop().time()
        due = await self.store.call(self.store.campaigns.due_campaigns)
        self._running = bool(due)
        for camp in due:
            if self._backoff.get(camp["id"], 0.0) > now:
                continue
            fed += await self.feed(camp)
        return fed

    async def feed(self, camp: dict[str, Any]) -> int:
        cid = camp["id"]
        room = camp["queue_window"] - await self.store.call(self.store.campaigns.in_flight, cid)
        if room <= 0:
            return 0
        batch = await self.store.call(self.store.campaigns.next_pending, cid, room)
        if not batch:
            if await self.store.call(self.store.campaigns.finish_if_done, cid):
                log.info("campaign %s completed", cid)
            return 0
        key = await self.store.call(self.store.campaigns.owner_key, camp["api_key_id"])
        if key is None or not ({"send", "admin"} & set(key["scopes"])):
            await self._pause(cid, "the API key that created the campaign was revoked or may not send")
            return 0
        caller = Caller(id=key["id"], name=key["name"], scopes=frozenset(key["scopes"]),
                        rate_per_s=key["rate_per_s"], daily_quota=key["daily_quota"])
        opted = await self.intake.opted_out(r["number"] for r in batch)
        outcomes: list[tuple[str, str, str | None]] = [
            (r["contact_id"], R_OPTED_OUT, None) for r in batch if r["number"] in opted]
        todo = [r for r in batch if r["number"] not in opted]
        stop: list[BaseException] = []
        sem = asyncio.Semaphore(CONCURRENCY)

        async def one(r: dict[str, Any]) -> None:
            async with sem:
                if stop:
                    return
                try:
                    outcome = await self._submit(caller, camp, r)
                except (AdmissionError, ValidationError) as exc:
                    stop.append(exc)
                    return
                outcomes.append(outcome)

        await asyncio.gather(*(one(r) for r in todo))
        await self.store.call(self.store.campaigns.mark_recipients, cid, outcomes)
        if stop:
            exc = stop[0]
            if isinstance(exc, AdmissionError):
                # Not the campaign's fault: try again later, where it was.
                self._backoff[cid] = asyncio.get_running_loop().time() + min(max(exc.retry_after_s, 1.0), 60.0)
                await self.store.call(self.store.campaigns.note_error, cid, f"{exc.code}: {exc}")
            else:
                await self._pause(cid, f"{exc.code}: {exc}")
        return sum(1 for _c, s, _m in outcomes if s == R_SUBMITTED)

    async def _submit(self, caller: Caller, camp: dict[str, Any], r: dict[str, Any]) -> tuple[str, str, str | None]:
        key = idempotency_key(camp["id"], r["contact_id"])
        req = SendRequest(to=r["number"], text=r["text"], priority=camp["priority"], sim=camp["sim"],
                          idempotency_key=key, door="campaign", campaign_id=camp["id"])
        try:
            result = await self.intake.submit(caller, req)
        except ValidationError as exc:
            if exc.code == "opted_out":  # STOP came after the check above
                return r["contact_id"], R_OPTED_OUT, None
            raise
        except ConflictError:
            # Submitted before under this key with other defaults (the configuration
            # changed across a restart): it was queued, that message is the one.
            earlier = await self.store.call(self.store.messages.find_by_idempotency_key, caller.id, key)
            if earlier is None:
                raise
            return r["contact_id"], R_SUBMITTED, earlier.message_ids[0]
        return r["contact_id"], R_SUBMITTED, result.messages[0].id

    async def _pause(self, cid: str, why: str) -> None:
        log.warning("campaign %s paused: %s", cid, why)
        await self.store.call(self.store.campaigns.set_state, cid, (RUNNING,), PAUSED, error=why)


__all__ = ["CampaignRunner"]
