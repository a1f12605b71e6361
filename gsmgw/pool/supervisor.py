"""The modem pool: one driver task and one send worker per modem, and everything
that keeps them going: discovery and hot-plug, config reload, lease maintenance,
and the modems' status rows.

The send loop itself is :mod:`gsmgw.pool.pipeline`; status reports are
:mod:`gsmgw.pool.reports`; inbound SMS are :mod:`gsmgw.pool.inbound`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from gsmgw.config import Config, ModemConfig
from gsmgw.domain import MessageState, ModemState
from gsmgw.modem import (
    Health,
    Identified,
    Listener,
    StateChanged,
    StatusReportIndication,
    StatusReportReceived,
)
from gsmgw.modem.identify import identify_port
from gsmgw.pool import pacing
from gsmgw.pool.discovery import HotplugWatcher, candidate_ports, identity_matches
from gsmgw.pool.driver import Driver, DriverFactory, NoPortYet, default_driver_factory
from gsmgw.pool.inbound import InboundProcessor
from gsmgw.pool.limits import Limits, SimLimiter
from gsmgw.pool.pipeline import SendPipeline
from gsmgw.pool.reports import StatusReports
from gsmgw.pool.slot import ModemSlot
from gsmgw.store import Store
from gsmgw.waits import wait_event

log = logging.getLogger(__name__)
msglog = logging.getLogger("gsmgw.messages")

# ModemConfig fields that only the pool reads: a change applies to the running
# slot. Any other change (port, PIN, baud rate, device timeouts...) restarts the
# modem's driver, after its in-flight send.
LIVE_MODEM_FIELDS = frozenset({
    "enabled", "group", "quiet_hours", "max_per_minute", "max_per_hour", "max_per_day", "smsc",
    # SIM care (issue 20): read afresh at every claim.
    "pace_min_s", "pace_max_s", "pace_mode", "max_per_month", "max_recipients_per_day",
    "max_recipients_per_month", "warmup_start_per_day", "warmup_days", "cost_per_part_micros",
})


# A modem's status row is written again after this long even if nothing changed.
STATUS_REFRESH_S = 600.0


# After a send's due time: its result's settle, and the next send's mark, in the store.
SETTLE_GUARD_S = 0.02


class Pool:
    def __init__(
        self,
        cfg: Config,
        store: Store,
        *,
        driver_factory: DriverFactory = default_driver_factory,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], dt.datetime] | None = None,
    ) -> None:
        """``wall`` is the UTC clock of SIM care's calendar and quiet hours (tests inject one)."""
        self.cfg = cfg
        self.store = store
        self._driver_factory = driver_factory
        self._clock = clock
        self.slots: dict[str, ModemSlot] = {}
        self.pipeline = SendPipeline(lambda: self.cfg, store, clock=clock, notify_work=self.notify_work,
                                     wall=wall)
        self.inbound = InboundProcessor(self)
        self.reports = StatusReports(lambda: self.cfg, store, read=self.inbound.read_announced)
        self._maintenance: asyncio.Task[None] | None = None
        # Claim id -> when its lease was last set (monotonic), for renewals.
        self._renewed: dict[str, float] = {}
        self._status_q: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        # modem id -> (the status values last queued, when: monotonic), see _status.
        self._status_written: dict[str, tuple[dict[str, Any], float]] = {}
        self._status_task: asyncio.Task[None] | None = None
        self._rescan = asyncio.Event()
        self._discovery_task: asyncio.Task[None] | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._hotplug: HotplugWatcher | None = None
        # Short-lived tasks started from driver events (report handling...).
        self._bg: set[asyncio.Task[None]] = set()

    @property
    def sent_total(self) -> int:
        """Messages sent since start (the status endpoint shows it)."""
        return self.pipeline.sent_total

    # --- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        self._status_task = asyncio.create_task(self._status_writer(), name="pool-status")
        await self.inbound.start()
        for mcfg in self.cfg.modem:
            self._add(mcfg)
        self._maintenance = asyncio.create_task(self._maintain(), name="pool-maintenance")
        self._discovery_task = asyncio.create_task(self._discover_loop(), name="pool-discovery")
        self._listen_task = asyncio.create_task(self.store.listen_for_work(self.notify_work), name="pool-listen")

    def _add(self, mcfg: ModemConfig) -> None:
        driver: Driver = self._driver_factory(mcfg) if mcfg.port else NoPortYet(mcfg.id)
        limits = Limits(mcfg.max_per_minute, mcfg.max_per_hour, mcfg.max_per_day)
        slot = ModemSlot(cfg=mcfg, driver=driver, limiter=SimLimiter(limits), enabled=mcfg.enabled,
                         port=mcfg.port)
        slot.idle.set()
        self.slots[mcfg.id] = slot
        self._status(mcfg.id, port=mcfg.port, state=ModemState.DISCONNECTED.value, enabled=slot.enabled)
        if mcfg.port:
            self._start_driver(slot)
        else:
            slot.down_since = self._clock() - self.cfg.discovery.rediscover_after_s
            self._rescan.set()
        slot.tasks.append(asyncio.create_task(self.pipeline.run(slot), name=f"worker-{mcfg.id}"))

    def _start_driver(self, slot: ModemSlot) -> None:
        slot.driver_task = asyncio.create_task(self._run_driver(slot, slot.driver), name=f"modem-{slot.id}")

    async def _run_driver(self, slot: ModemSlot, driver: Driver) -> None:
        """Run one driver with this pool listening to it; the listeners go with it,
        so a replaced or retired driver never reaches the slot again."""
        listeners = self._listen(slot, driver) + self.inbound.listen(slot, driver)
        try:
            await driver.run()
        finally:
            for listener in listeners:
                listener.remove()

    async def stop(self, *, drain_timeout_s: float = 90.0) -> None:
        """Stop claiming; let in-flight sends finish (or time out); stop drivers."""
        self.pipeline.stopping = True
        for slot in self.slots.values():
            slot.wake.set()
        idle = [s.idle.wait() for s in self.slots.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*idle), timeout=drain_timeout_s)
        except TimeoutError:
            log.error("sends still in flight after %.0f s; stopped, their parts are settled as unknown",
                      drain_timeout_s)
        await self.inbound.stop()
        for slot in self.slots.values():
            with contextlib.suppress(Exception):
                await slot.driver.stop()
        if self._hotplug is not None:
            self._hotplug.stop()
        tasks = [t for s in self.slots.values() for t in s.tasks] + list(self._bg)
        tasks += [s.driver_task for s in self.slots.values() if s.driver_task is not None]
        tasks += [t for t in (self._discovery_task, self._listen_task, self._maintenance) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Flush the last modem states.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._status_q.join(), timeout=5.0)
        if self._status_task:
            self._status_task.cancel()
            await asyncio.gather(self._status_task, return_exceptions=True)

    # --- external controls ------------------------------------------------------

    def notify_work(self) -> None:
        """New messages were committed: wake idle workers at once."""
        for slot in self.slots.values():
            slot.wake.set()

    def quiet_wait_s(self, length_s: float, after_s: float = 0.0) -> float:
        """Seconds from now until a window of ``length_s``, starting no sooner than
        ``after_s`` from now, in which no send on the air is due to answer (each modem's
        smoothed time per part says when; a result's settle and the next send's mark take
        up to SETTLE_GUARD_S after it). Background store work (the prune's batches on
        SQLite) starts there, so that a send's settle seldom queues behind it. A send
        already past its due time is left out: when it answers cannot be told."""
        now = self._clock()
        start = now + max(0.0, after_s)
        dues = sorted(d for slot in self.slots.values()
                      if (d := slot.send_due) is not None and d + SETTLE_GUARD_S > start)
        for due in dues:
            if due - SETTLE_GUARD_S >= start + length_s:
                break  # the window fits before this one
            start = max(start, due + SETTLE_GUARD_S)
        return start - now

    def set_enabled(self, modem_id: str, enabled: bool) -> bool:
        slot = self.slots.get(modem_id)
        if slot is None:
            return False
        slot.enabled = enabled
        slot.wake.set()
        self._status(modem_id, enabled=enabled)
        return True

    async def restart(self, modem_id: str, *, drain_timeout_s: float = 30.0) -> bool:
        """Close one modem's port and bring it up again (the console's "restart").

        It takes no new message meanwhile and finishes the one on the air first, so
        nothing is cut off mid-send. False if there is no such modem, it has no port
        yet (discovery is still looking), or its send did not finish in time.
        """
        slot = self.slots.get(modem_id)
        if slot is None or not slot.port:
            return False
        was_enabled = slot.enabled
        slot.enabled = False  # the worker checks this before every claim
        slot.wake.set()
        try:
            async with asyncio.timeout(drain_timeout_s):
                while not (slot.idle.is_set() and not await self._claims_of(slot.id)):
                    await slot.idle.wait()
                    await asyncio.sleep(0.05)
        except TimeoutError:
            log.warning("modem %s: not restarted, a send is still in flight after %.0f s",
                        modem_id, drain_timeout_s)
            return False
        else:
            log.info("modem %s: restarting (port closed and opened again)", modem_id)
            await self._attach(slot, slot.port)
            return True
        finally:
            self.set_enabled(modem_id, was_enabled)

    def snapshot(self) -> list[dict[str, Any]]:
        now = self._clock()
        out = []
        for slot in self.slots.values():
            ident = slot.driver.identity
            out.append(
                {
                    "id": slot.id,
                    "host": self.store.host,
                    "port": slot.port,
                    "state": slot.driver.state.value,
                    "state_reason": slot.state_reason,
                    "enabled": slot.enabled,
                    "busy": slot.busy,
                    "resting": slot.resting_until > now,
                    "group": slot.cfg.group,
                    "imei": ident.imei,
                    "iccid": ident.iccid,
                    "imsi": ident.imsi,
                    "operator": ident.operator,
                    "model": ident.model,
                    "manufacturer": ident.manufacturer,
                    "own_number": ident.own_number,
                    "signal_csq": slot.driver.csq,
                    # SMS storage of the SIM at the last health poll (None until then).
                    "storage_used": slot.storage_used,
                    "storage_total": slot.storage_total,
                    "sent_parts": slot.sent_parts,
                    "failed_parts": slot.failed_parts,
                    "last_error": slot.last_error,
                    "limits": {
                        "per_minute": slot.cfg.max_per_minute,
                        "per_hour": slot.cfg.max_per_hour,
                        "per_day": slot.cfg.max_per_day,
                        "used_minute": slot.limiter.used(now, 60.0),
                        "used_hour": slot.limiter.used(now, 3600.0),
                        "used_day": slot.limiter.used(now, 86400.0),
                    },
                }
            )
        return out

    async def care_status(self) -> dict[str, Any]:
        """SIM care for the status API: per modem its caps (used/left), next paced send,
        warm-up day and cost today and this month; and cost sums per SIM and API key."""
        now = self.pipeline.wall()
        tz = self.cfg.sim_care.timezone
        policies = {sid: pacing.CarePolicy.of(slot.cfg, self.cfg) for sid, slot in self.slots.items()}
        active = [sid for sid, p in policies.items() if p.active]
        cares = {sid: self.pipeline.care_for(policies[sid]) for sid in active}
        usage = await self.store.call(self.store.simcare.usage, active, cares) if active else {}
        (d0, d1), (m0, m1) = pacing.period_bounds(now, tz)
        cost_on = bool(self.cfg.cost.rate) or any(s.cfg.cost_per_part_micros for s in self.slots.values())
        today = month = None
        if cost_on:
            today, month = await self.store.call(
                self.store.simcare.cost_by_day, [(pacing.day_key(now, tz), d0, d1), (pacing.month_keys(now, tz)[0], m0, m1)])
        modems: dict[str, Any] = {}
        for sid in self.slots:
            view: dict[str, Any] = pacing.status(policies[sid], usage[sid], now) if sid in usage else {}
            if today is not None and month is not None:
                view["cost"] = {"today_micros": today["by_sim"].get(sid, 0), "month_micros": month["by_sim"].get(sid, 0)}
            modems[sid] = view or None
        cost = ({"currency": self.cfg.cost.currency, "today": today, "month": month} if cost_on else None)
        return {"modems": modems, "cost": cost, "timezone": tz}

    # --- driver events ------------------------------------------------------------

    def _listen(self, slot: ModemSlot, driver: Driver) -> list[Listener[Any]]:
        def on_state(ev: StateChanged) -> None:
            slot.state_reason = ev.reason
            log.debug("modem %s: %s -> %s %s", slot.id, ev.old, ev.new, ev.reason)
            self._status(slot.id, state=ev.new.value, state_reason=ev.reason)
            slot.wake.set()

        def on_identified(ev: Identified) -> None:
            ident = ev.identity
            self._status(slot.id, manufacturer=ident.manufacturer, model=ident.model,
                         firmware=ident.firmware, imei=ident.imei, imsi=ident.imsi, iccid=ident.iccid,
                         operator=ident.operator, own_number=ident.own_number)

        def on_health(ev: Health) -> None:
            slot.storage_used, slot.storage_total = ev.storage_used, ev.storage_total
            self._status(slot.id, signal_csq=ev.csq, registration=ev.registration)

        def on_report(ev: StatusReportReceived) -> None:  # +CDS: the PDU came with the URC
            self._spawn(self.reports.record(slot, ev.pdu_hex, ev.tpdu_length, None), f"report-{slot.id}")

        def on_stored_report(ev: StatusReportIndication) -> None:  # +CDSI: stored; read, then delete
            self._spawn(self.reports.read_stored(slot, ev.index, ev.storage), f"report-{slot.id}-{ev.index}")

        events = driver.events
        return [
            events.register(StateChanged, on_state),
            events.register(Identified, on_identified),
            events.register(Health, on_health),
            events.register(StatusReportReceived, on_report),
            events.register(StatusReportIndication, on_stored_report),
        ]

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    def _status(self, modem_id: str, **values: Any) -> None:
        """Queue a change of the modem's status row (written in order by one task).

        Values equal to what was last queued for the modem are not written again
        (every health poll reports the same signal and registration most of the
        time: a write and an fsync each, issue 17), unless the row has not been
        written for ``STATUS_REFRESH_S``."""
        now = time.monotonic()
        last, at = self._status_written.get(modem_id, ({}, -1e9))
        if now - at < STATUS_REFRESH_S and all(k in last and last[k] == v for k, v in values.items()):
            return
        self._status_written[modem_id] = ({**last, **values}, now)
        self._status_q.put_nowait((modem_id, values))

    async def _status_writer(self) -> None:
        while True:
            modem_id, values = await self._status_q.get()
            try:
                await self.store.call(self.store.modems.upsert_modem, modem_id, **values)
            except Exception:  # a status row is not worth crashing the pool for
                log.exception("could not record status of modem %s", modem_id)
                self._status_written.pop(modem_id, None)  # write it all again next time
            finally:
                self._status_q.task_done()

    # --- discovery and hot-plug ------------------------------------------------------

    def _wants_discovery(self, slot: ModemSlot, now: float) -> bool:
        """An imei/iccid-matched modem with no port, or whose port has stayed down."""
        if not (slot.cfg.imei or slot.cfg.iccid) or slot.cfg.port or slot.busy:
            return False
        if slot.driver.state in (ModemState.READY, ModemState.PROBING, ModemState.REGISTERING):
            slot.down_since = None
            return False
        if slot.down_since is None:
            slot.down_since = now
        return now - slot.down_since >= self.cfg.discovery.rediscover_after_s

    async def _discover_loop(self) -> None:
        dcfg = self.cfg.discovery
        self._hotplug = HotplugWatcher(self._rescan.set)
        udev = self._hotplug.start()
        interval = dcfg.rescan_interval_s if not udev else max(dcfg.rescan_interval_s, 300.0)
        while True:
            await wait_event(self._rescan, min(interval, dcfg.rediscover_after_s))
            self._rescan.clear()
            try:
                await self._discover_once()
            except Exception:
                log.exception("discovery failed")

    async def _discover_once(self) -> None:
        now = self._clock()
        wanted = [s for s in self.slots.values() if self._wants_discovery(s, now)]
        if not wanted:
            return
        dcfg = self.cfg.discovery
        in_use = [s.port for s in self.slots.values()
                  if s.port and s.driver.state is not ModemState.DISCONNECTED]
        for port in candidate_ports(dcfg.port_globs, exclude=in_use):
            ident = await identify_port(port, timeout_s=dcfg.identify_timeout_s)
            if ident is None:
                continue
            for slot in wanted:
                if identity_matches(slot.cfg.imei, slot.cfg.iccid, ident):
                    log.info("modem %s found on %s (IMEI %s)", slot.id, port, ident.imei)
                    await self._attach(slot, port)
                    wanted.remove(slot)
                    break
            if not wanted:
                return

    async def _attach(self, slot: ModemSlot, port: str) -> None:
        """(Re)start a modem's driver on a newly found port."""
        old_task = slot.driver_task
        await slot.driver.stop()
        if old_task is not None:
            old_task.cancel()
            await asyncio.gather(old_task, return_exceptions=True)
        slot.driver = self._driver_factory(dataclasses.replace(slot.cfg, port=port))
        slot.port = port
        slot.down_since = None
        self._status(slot.id, port=port)
        self._start_driver(slot)

    # --- maintenance ---------------------------------------------------------------

    async def _renew_leases(self) -> None:
        lease_s = self.cfg.store.lease_s
        now = self._clock()
        held = {cid for slot in self.slots.values() for cid in (slot.claim_id, slot.next_claim_id) if cid}
        for cid in list(self._renewed):
            if cid not in held:
                del self._renewed[cid]
        for cid in held:
            # First seen here: the claim set its lease at most one tick ago.
            since = self._renewed.setdefault(cid, now)
            if now - since >= lease_s / 3:
                await self.store.call(self.store.claims.renew_lease, cid, lease_s)
                self._renewed[cid] = now

    async def _maintain(self) -> None:
        """The pool's one periodic look at the store (issue 17), every ``poll_interval_s``:
        renew this host's leases when a third of them has gone; then one cheap read
        says whether a queued message is due (a retry, a scheduled send, another
        host's work without a NOTIFY: the waiting workers are woken, since idle
        workers do not poll the store themselves), whether a validity ended, and
        whether a lease ran out. The expiry and recovery passes (writes) run only
        then, at most once a second."""
        last_sweep = -1e9
        while True:
            poll_s = self.cfg.dispatch.poll_interval_s
            await asyncio.sleep(poll_s)
            try:
                # Renew our own leases first so that a long multipart send is never
                # mistaken for a dead host's claim.
                await self._renew_leases()
                due, expire, recover = await self.store.call(self.store.messages.pending_work)
                if due and not self.pipeline.stopping and any(
                    not s.busy and s.enabled and s.driver.state is ModemState.READY for s in self.slots.values()
                ):
                    self.notify_work()
                now = time.monotonic()
                if not (expire or recover) or now - last_sweep < max(poll_s, 1.0):
                    continue
                last_sweep = now
                if expire:
                    for mid in await self.store.call(self.store.messages.expire_due):
                        msglog.info("message %s -> expired (validity ended before it was sent)", mid,
                                    extra={"message_id": mid, "state": MessageState.EXPIRED.value})
                if recover:
                    await self.store.call(self.store.claims.recover, only_expired_leases=True)
            except Exception:
                log.exception("pool maintenance failed")

    # --- reload --------------------------------------------------------------------

    async def apply_config(self, cfg: Config, *, drain_timeout_s: float = 90.0) -> dict[str, list[str]]:
        """Apply a reloaded config without dropping the queue.

        Modems whose id is new are started; modems whose id is gone stop claiming,
        finish their in-flight send (or its timeout), then stop; modems whose
        driver settings changed are restarted the same way; limits, enabled flags,
        groups, quiet hours and dispatch settings change in place. Returns the ids
        per kind of change: ``added``, ``removed``, ``restarted``, ``updated``.
        """
        old_by_id = {s.id: s.cfg for s in self.slots.values()}
        new_by_id = {m.id: m for m in cfg.modem}
        changes: dict[str, list[str]] = {"added": [], "removed": [], "restarted": [], "updated": []}
        self.cfg = cfg  # dispatch settings, lease_s: read afresh by the workers
        for mid, old in old_by_id.items():
            new = new_by_id.get(mid)
            if new is None:
                changes["removed"].append(mid)
                continue
            if new == old:
                continue
            diff = {f.name for f in dataclasses.fields(ModemConfig)
                    if getattr(old, f.name) != getattr(new, f.name)}
            if diff <= LIVE_MODEM_FIELDS:
                changes["updated"].append(mid)
                self._update_slot(self.slots[mid], new)
            else:
                changes["restarted"].append(mid)
        retiring = [self.slots[mid] for mid in changes["removed"] + changes["restarted"]]
        await asyncio.gather(*(self._retire(s, drain_timeout_s) for s in retiring))
        for mid in changes["restarted"]:
            self._add(new_by_id[mid])
        for mid, mcfg in new_by_id.items():
            if mid not in old_by_id:
                changes["added"].append(mid)
                self._add(mcfg)
        log.info("config applied: %s", ", ".join(f"{k} {v}" for k, v in changes.items() if v) or "no modem changes")
        self.notify_work()
        return changes

    def _update_slot(self, slot: ModemSlot, new: ModemConfig) -> None:
        slot.cfg = new
        # The limiter keeps its history: sends already made still count.
        slot.limiter.limits = Limits(new.max_per_minute, new.max_per_hour, new.max_per_day)
        if slot.enabled != new.enabled:
            self.set_enabled(slot.id, new.enabled)
        slot.wake.set()

    async def _retire(self, slot: ModemSlot, drain_timeout_s: float) -> None:
        """Stop one slot the way stop() stops them all: no new claim, finish, stop."""
        slot.enabled = False  # the worker checks this before every claim
        slot.wake.set()
        # Wait until the worker is idle AND holds no claim: it may have claimed just
        # before `enabled` changed (it sends that one), and it hands back a message it
        # prepared ahead (parts already marked 'sending', nothing written) itself.
        try:
            async with asyncio.timeout(drain_timeout_s):
                while True:
                    await slot.idle.wait()
                    if slot.idle.is_set() and not await self._claims_of(slot.id):
                        break
                    await asyncio.sleep(0.05)
        except TimeoutError:
            log.error("modem %s: send still in flight after %.0f s; stopping it anyway "
                      "(its parts are settled as unknown)", slot.id, drain_timeout_s)
        # The worker first (it releases a claim it prepared ahead), then the driver.
        # Cancel until done: on Python 3.11 asyncio.wait_for() swallows a cancel that
        # races with the event it waits for (the wake-up set just above).
        for t in slot.tasks:
            while not t.done():
                t.cancel()
                await asyncio.wait([t], timeout=0.1)
        await asyncio.gather(*slot.tasks, return_exceptions=True)
        # The driver ends its run() on stop(); a driver stuck anyway is cancelled.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(slot.driver.stop(), timeout=15.0)
        if slot.driver_task is not None:
            slot.driver_task.cancel()
            await asyncio.gather(slot.driver_task, return_exceptions=True)
        self.slots.pop(slot.id, None)
        # The worker may have been cancelled while a claim was being committed (it
        # checks `enabled` before the claim, and is idle until it returns), or, after
        # the drain timeout, in the middle of a send: settle what it left now rather
        # than when its lease runs out.
        await self._release_claims_of(slot.id)
        self._status(slot.id, state=ModemState.DISCONNECTED.value, state_reason="removed from the config",
                     enabled=False)
        log.info("modem %s stopped (config reload)", slot.id)

    async def _claims_of(self, modem_id: str) -> list[dict[str, Any]]:
        """This host's claims (messages in 'sending') on one modem."""
        return await self.store.call(self.store.claims.claims_of, modem_id)

    async def _release_claims_of(self, modem_id: str) -> None:
        """Settle what a worker stopped after the drain timeout left behind."""
        for row in await self._claims_of(modem_id):
            # A part already handed to the modem may have left: unknown, never resent
            # blindly (design rule 6). Parts never written go back to the queue.
            final = await self.pipeline.abandon(row["id"], "the modem was stopped (config reload) during the send")
            if final is not None:
                msglog.info("message %s -> %s (modem %s removed)", row["id"], final.value, modem_id,
                            extra={"message_id": row["id"], "modem_id": modem_id, "state": final.value})


__all__ = ["LIVE_MODEM_FIELDS", "Pool"]
