"""Inbound SMS: indications and sweeps → decode → reassemble → commit → delete.

Per modem, one lock serialises everything that reads or deletes SIM storage
(+CMTI reads, the periodic AT+CMGL sweep), so an index is never deleted by one
path after the other has seen it refilled. Every part is committed to the store
(with a unique dedup key) *before* ``AT+CMGD``; a crash in between leaves the
part on the SIM, the next sweep reads it again, and the dedup key makes that a
no-op followed by the delete. Reassembly state lives in the store too, so full
SIM storage is drained at once and a half-received long message survives a
restart; a message whose parts do not all come within
``inbound.reassembly_timeout_s`` is stored with what arrived, marked incomplete.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from gsmgw.config import Config, InboundConfig
from gsmgw.domain import EventType, ModemState
from gsmgw.errors import ATError, CMSError, CodecError, ModemError
from gsmgw.isotime import utc_now_iso
from gsmgw.modem import (
    Health,
    Listener,
    SmsIndication,
    SmsReceived,
    StateChanged,
    StorageFull,
    StoredSms,
)
from gsmgw.modem.sequences import CMS_READ_TRANSIENT
from gsmgw.pool.driver import Driver
from gsmgw.pool.optout import KeywordMatcher, join_parts, parse_balance, part_dedup_key
from gsmgw.pool.reports import StatusReports
from gsmgw.pool.slot import ModemSlot
from gsmgw.sms import Deliver, StatusReport, decode_pdu, preview
from gsmgw.store import InboundPart, IngestResult, NewMessage, Store, StoredInbound
from gsmgw.waits import wait_event

log = logging.getLogger(__name__)
msglog = logging.getLogger("gsmgw.messages")

# TS 27.005 §3.1 <stat>: 2 STO UNSENT, 3 STO SENT are drafts, not inbound.
_STORED_OUTGOING = (2, 3)

READ_RETRY_DELAYS_S = (0.05, 0.15, 0.4, 1.0)
"""Pauses between reads of an index a +CMTI/+CDSI just announced while it reads as empty or
with a transient error (some modules announce before the write completes: +CMS ERROR: 321).
After the last one the sweep takes over."""


class PoolView(Protocol):
    """What the inbound processor uses of its pool (:class:`gsmgw.pool.Pool`)."""

    cfg: Config
    store: Store
    slots: dict[str, ModemSlot]
    reports: StatusReports

    def notify_work(self) -> None: ...


class InboundProcessor:
    """Created by the pool; listens to each driver for what arrives (SMS, full
    storage) and for the modem going online or offline."""

    def __init__(self, pool: PoolView) -> None:
        self.pool = pool
        self._locks: dict[str, asyncio.Lock] = {}
        self._wake: dict[str, asyncio.Event] = {}
        # modem id -> (the slot it serves, its task): a modem restarted by a config
        # reload is a new slot under the same id and gets fresh loops.
        self._loops: dict[str, tuple[ModemSlot, asyncio.Task[None]]] = {}
        self._balance_loops: dict[str, tuple[ModemSlot, asyncio.Task[None]]] = {}
        self._bg: set[asyncio.Task[Any]] = set()
        self._housekeeping: asyncio.Task[None] | None = None
        self._running = False
        self._storage_full: set[str] = set()
        self._balance_low: set[str] = set()
        self._matcher_for: InboundConfig | None = None
        self._matcher = KeywordMatcher((), ())
        # Latest balance per modem: {"text", "value", "checked_at"}.
        self.balances: dict[str, dict[str, Any]] = {}
        self.duplicates_total = 0
        self.sweeps_total = 0
        self.read_retries_total = 0  # extra AT+CMGR reads of announced indices
        # (modem id, storage, index) -> monotonic time it was last deleted: an indication
        # older than that was served by a sweep already and needs no retries.
        self._deleted_at: dict[tuple[str, str, int], float] = {}

    # --- plumbing -----------------------------------------------------------------

    @property
    def cfg(self) -> InboundConfig:
        cfg: InboundConfig = self.pool.cfg.inbound
        return cfg

    @property
    def store(self) -> Store:
        return self.pool.store

    def matcher(self) -> KeywordMatcher:
        cfg = self.cfg
        if self._matcher_for is not cfg:
            self._matcher = KeywordMatcher(cfg.stop_keywords, cfg.start_keywords)
            self._matcher_for = cfg
        return self._matcher

    def _lock(self, slot: ModemSlot) -> asyncio.Lock:
        return self._locks.setdefault(slot.id, asyncio.Lock())

    def _spawn(self, coro: Any, name: str) -> None:
        if not self._running:
            coro.close()
            return
        task = asyncio.create_task(coro, name=name)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    def _current(self, slot: ModemSlot) -> bool:
        return self._running and self.pool.slots.get(slot.id) is slot

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        self._housekeeping = asyncio.create_task(self._housekeep(), name="inbound-housekeeping")

    async def stop(self) -> None:
        self._running = False
        tasks = [task for _slot, task in [*self._loops.values(), *self._balance_loops.values()]]
        tasks += list(self._bg)
        if self._housekeeping is not None:
            tasks.append(self._housekeeping)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loops.clear()
        self._balance_loops.clear()
        self._housekeeping = None

    def _on_modem_ready(self, slot: ModemSlot) -> None:
        """Sweep now (indications may have been lost while it was away), then periodically."""
        if not self._running:
            return
        self._wake.setdefault(slot.id, asyncio.Event()).set()
        self._ensure_loop(self._loops, slot, self._sweep_loop, "inbound-sweep")
        if self.cfg.balance_ussd:
            self._ensure_loop(self._balance_loops, slot, self._balance_loop, "inbound-balance")

    @staticmethod
    def _ensure_loop(loops: dict[str, tuple[ModemSlot, asyncio.Task[None]]], slot: ModemSlot, fn: Any, name: str) -> None:
        entry = loops.get(slot.id)
        if entry is not None and entry[0] is slot and not entry[1].done():
            return
        if entry is not None:
            entry[1].cancel()  # it served a slot that has been replaced
        loops[slot.id] = (slot, asyncio.create_task(fn(slot), name=f"{name}-{slot.id}"))

    @staticmethod
    def _forget_loop(loops: dict[str, tuple[ModemSlot, asyncio.Task[None]]], slot: ModemSlot) -> None:
        entry = loops.get(slot.id)
        if entry is not None and entry[0] is slot:
            del loops[slot.id]

    def listen(self, slot: ModemSlot, driver: Driver) -> list[Listener[Any]]:
        """Register this processor's listeners on ``driver`` (which serves ``slot``);
        the caller removes them when the driver's run ends."""

        def on_sms_indication(ev: SmsIndication) -> None:  # +CMTI: "SM",3
            self._spawn(self._read_index(slot, ev.storage, ev.index, time.monotonic()),
                        f"inbound-{slot.id}-{ev.index}")

        def on_sms_received(ev: SmsReceived) -> None:  # +CMT: ,24 then the PDU (nothing to delete)
            self._spawn(self._direct(slot, ev.pdu_hex, ev.tpdu_length), f"inbound-{slot.id}-cmt")

        def on_health(ev: Health) -> None:
            if ev.storage_used is not None and ev.storage_total:
                if ev.storage_used >= ev.storage_total:
                    self._on_storage_full(slot, "")
                else:
                    self._storage_full.discard(slot.id)

        def on_storage_full(ev: StorageFull) -> None:
            # Quectel +QIND "smsfull" / Huawei ^SMMEMFULL: drain at once.
            self._on_storage_full(slot, ev.storage)

        def on_state(ev: StateChanged) -> None:
            if ev.new is ModemState.READY:
                self._on_modem_ready(slot)
            if ev.new is ModemState.READY and ev.old is not ModemState.READY:
                self._event(EventType.MODEM_ONLINE, slot, {"state": "ready"})
            elif ev.old is ModemState.READY and ev.new is not ModemState.READY:
                self._event(EventType.MODEM_OFFLINE, slot, {"state": ev.new.value, "reason": ev.reason})

        events = driver.events
        return [
            events.register(SmsIndication, on_sms_indication),
            events.register(SmsReceived, on_sms_received),
            events.register(Health, on_health),
            events.register(StorageFull, on_storage_full),
            events.register(StateChanged, on_state),
        ]

    def _on_storage_full(self, slot: ModemSlot, storage: str) -> None:
        if slot.id not in self._storage_full:
            self._storage_full.add(slot.id)
            log.warning("modem %s: SMS storage %s full; draining it", slot.id, storage or "")
            self._event(EventType.SIM_STORAGE_FULL, slot, {"storage": storage})
        self._wake.setdefault(slot.id, asyncio.Event()).set()

    def _event(self, type_: EventType, slot: ModemSlot, payload: dict[str, Any]) -> None:
        payload = {"sim": slot.id, **payload}
        self._spawn(self.store.call(self.store.events.add_event, type_, modem_id=slot.id, payload=payload),
                    f"event-{type_}-{slot.id}")

    # --- reading SIM storage ------------------------------------------------------------

    async def _sweep_loop(self, slot: ModemSlot) -> None:
        wake = self._wake.setdefault(slot.id, asyncio.Event())
        while self._current(slot):
            if slot.driver.state is ModemState.READY:
                wake.clear()
                try:
                    await self.sweep(slot)
                except ModemError as exc:
                    log.info("modem %s: inbound sweep failed: %s", slot.id, exc)
                except Exception:
                    log.exception("modem %s: inbound sweep failed", slot.id)
            else:
                # Not ready: a wake-up now would spin this loop. _on_modem_ready() wakes it
                # again when the modem is back, and that sweep runs at once.
                wake.clear()
            await wait_event(wake, max(0.01, self.cfg.sweep_interval_s))
        self._forget_loop(self._loops, slot)

    async def sweep(self, slot: ModemSlot) -> int:
        """``AT+CMGL=4``: process and delete every inbound SMS in storage; returns how many."""
        async with self._lock(slot):
            stored = await slot.driver.list_sms(4)
            self.sweeps_total += 1
            n = 0
            for sms in stored:
                if await self._process_stored(slot, sms, from_sweep=True):
                    n += 1
        if n:
            log.info("modem %s: sweep took %d SMS from storage", slot.id, n)
        return n

    async def read_announced(self, slot: ModemSlot, index: int, storage: str | None) -> StoredSms | None:
        """``AT+CMGR`` of an index a +CMTI/+CDSI just announced, read again on a transient
        answer (empty slot, plain ERROR, +CMS ERROR 321/302/314/500...) with short pauses.

        Returns the stored SMS, or None once the pauses are used up; the sweep is then
        woken, so the message waits at most one AT+CMGL for another chance. Raises
        ModemError for anything else (not ready, port lost): the sweep after recovery
        finds it.
        """
        for attempt, pause_s in enumerate((*READ_RETRY_DELAYS_S, None)):
            try:
                stored = await slot.driver.read_sms(index, storage)
            except ATError as exc:
                transient = not isinstance(exc, CMSError) and exc.final == "ERROR"
                transient = transient or (isinstance(exc, CMSError) and exc.code in CMS_READ_TRANSIENT)
                if not transient:
                    raise
                why = str(exc)
            else:
                if stored is not None:
                    if attempt:
                        self.read_retries_total += attempt
                        log.info("modem %s: %s/%d readable after %d retries", slot.id, storage, index, attempt)
                    return stored
                why = "empty slot"
            if pause_s is None:
                break
            log.debug("modem %s: %s/%d not readable yet (%s); again in %.2f s", slot.id, storage, index, why, pause_s)
            await asyncio.sleep(pause_s)
        self.read_retries_total += len(READ_RETRY_DELAYS_S)
        log.warning("modem %s: %s/%d announced but not readable (%s); the sweep will look again",
                    slot.id, storage, index, why)
        self._wake.setdefault(slot.id, asyncio.Event()).set()
        return None

    async def _read_index(self, slot: ModemSlot, storage: str, index: int, announced_at: float) -> None:
        async with self._lock(slot):
            deleted_at = self._deleted_at.get((slot.id, (storage or "").upper(), index), 0.0)
            if deleted_at > announced_at:
                return  # a sweep took it while this read waited for the lock
            try:
                stored = await self.read_announced(slot, index, storage or None)
            except (ModemError, ValueError) as exc:
                # The sweep will find it: it stays on the SIM.
                log.warning("modem %s: could not read SMS %s/%d: %s", slot.id, storage, index, exc)
                return
            if stored is not None:
                await self._process_stored(slot, stored, from_sweep=False)

    async def _process_stored(self, slot: ModemSlot, sms: StoredSms, *, from_sweep: bool) -> bool:
        """Commit one stored PDU, then delete it. True if it was deleted."""
        if sms.stat in _STORED_OUTGOING:
            return False
        try:
            decoded = decode_pdu(sms.pdu_hex, tpdu_length=sms.tpdu_length)
        except CodecError as exc:
            log.warning("modem %s: undecodable PDU at %s/%d (kept as an event, deleted): %s",
                        slot.id, sms.storage, sms.index, exc)
            await self.store.call(self.store.inbound.record_undecodable, slot.id, sms.pdu_hex, str(exc))
            return await self._delete(slot, sms)
        if isinstance(decoded, StatusReport):
            if not from_sweep:
                return False
            # A report whose +CDSI was lost. The pool's own reader may be deleting it
            # right now: record it, and delete only if the slot still holds this PDU.
            if not await self.pool.reports.record(slot, sms.pdu_hex, sms.tpdu_length, sms.index):
                return False
            again = await slot.driver.read_sms(sms.index, sms.storage)
            if again is None or again.pdu_hex != sms.pdu_hex:
                return False
            return await self._delete(slot, sms)
        if not isinstance(decoded, Deliver):
            return False
        await self.ingest(slot, decoded, sms.pdu_hex)
        return await self._delete(slot, sms)

    async def _delete(self, slot: ModemSlot, sms: StoredSms) -> bool:
        try:
            await slot.driver.delete_sms(sms.index, sms.storage)
        except ModemError as exc:
            # Committed already: the next sweep deletes it (the dedup key stops a second row).
            log.warning("modem %s: could not delete SMS %s/%d: %s", slot.id, sms.storage, sms.index, exc)
            return False
        if len(self._deleted_at) > 4096:
            self._deleted_at.clear()  # only recent deletions matter
        self._deleted_at[(slot.id, str(sms.storage).upper(), sms.index)] = time.monotonic()
        return True

    async def _direct(self, slot: ModemSlot, pdu_hex: str, tpdu_length: int) -> None:
        try:
            decoded = decode_pdu(pdu_hex, tpdu_length=tpdu_length)
        except CodecError as exc:
            await self.store.call(self.store.inbound.record_undecodable, slot.id, pdu_hex, str(exc))
            return
        if isinstance(decoded, Deliver):
            await self.ingest(slot, decoded, pdu_hex)

    # --- committing ------------------------------------------------------------------------

    async def ingest(self, slot: ModemSlot, d: Deliver, pdu_hex: str) -> IngestResult:
        """Commit one decoded part (assembling its message when it is the last one)."""
        cfg = self.cfg
        c = d.concat
        if c is not None and not (c.total >= 1 and 1 <= c.sequence <= c.total):
            c = None  # a broken concatenation IE: keep the part as a message of its own
        receiver = slot.driver.identity.iccid or slot.id
        part = InboundPart(
            modem_id=slot.id,
            dedup_key=part_dedup_key(receiver, d),
            sender=d.originator,
            scts=d.scts,
            encoding=str(d.encoding),
            text=d.text,
            user_data=d.user_data.hex(),
            pdu=pdu_hex,
            concat_ref=c.reference if c else None,
            concat_bits=c.bits if c else None,
            concat_total=c.total if c else 1,
            concat_seq=c.sequence if c else 1,
        )
        result: IngestResult = await self.store.call(
            self.store.inbound.ingest_inbound_part, part, join=join_parts, classify=self.matcher().classify,
            reply_window_s=cfg.reply_window_s,
        )
        if result.duplicate:
            self.duplicates_total += 1
            log.debug("modem %s: part from %s already stored", slot.id, d.originator)
        elif result.message is not None:
            await self._after_message(result.message)
        return result

    async def _after_message(self, msg: StoredInbound) -> None:
        msglog.info("inbound %s from %s on %s (%d/%d parts%s)", msg.id, msg.sender, msg.modem_id,
                    msg.parts_received, msg.parts_total, "" if msg.complete else ", incomplete",
                    extra={"inbound_id": msg.id, "modem_id": msg.modem_id})
        if msg.optout is None or not msg.optout_changed:
            return
        action, keyword = msg.optout
        log.info("%s opted %s (%r)", msg.sender, "out" if action == "stop" else "back in", keyword)
        reply = self.cfg.stop_reply if action == "stop" else self.cfg.start_reply
        if reply and msg.sender.startswith("+") and msg.sender[1:].isdigit():
            try:
                pv = preview(reply)
            except CodecError as exc:
                log.error("opt-out confirmation not sent: %s", exc)
                return
            await self.store.call(
                self.store.messages.enqueue,
                [NewMessage(to_number=msg.sender, text=reply, encoding=str(pv.encoding), parts_total=pv.parts,
                            transactional=True, sim_requested=msg.modem_id, priority=5)],
                default_ttl_s=self.pool.cfg.dispatch.default_ttl_s,
            )
            self.pool.notify_work()

    async def _housekeep(self) -> None:
        """Deliver what arrived of messages whose parts stopped coming; prune old dedup keys."""
        last_prune = 0.0
        while True:
            cfg = self.cfg
            await asyncio.sleep(max(0.01, min(cfg.sweep_interval_s, cfg.reassembly_timeout_s / 4, 60.0)))
            try:
                stale = await self.store.call(
                    self.store.inbound.assemble_stale_inbound, timeout_s=cfg.reassembly_timeout_s,
                    join=join_parts, classify=self.matcher().classify, reply_window_s=cfg.reply_window_s,
                )
                for msg in stale:
                    await self._after_message(msg)
                if time.monotonic() - last_prune > 3600:
                    last_prune = time.monotonic()
                    await self.store.call(self.store.inbound.prune_inbound_parts, older_than_s=cfg.dedup_retention_s)
            except Exception:
                log.exception("inbound housekeeping failed")

    # --- USSD and balance ---------------------------------------------------------------------

    async def ussd(self, modem_id: str, code: str, timeout_s: float | None = None) -> str:
        """Run a USSD request on one modem; KeyError if there is no such modem."""
        slot = self.pool.slots[modem_id]
        reply = await slot.driver.ussd(code, timeout_s or self.cfg.ussd_timeout_s)
        # Issue 19: a USSD reply is an outbox event (MQTT publishes it; webhooks may subscribe).
        await self.store.call(self.store.events.add_event, EventType.USSD_REPLY, modem_id=modem_id,
                              payload={"sim": modem_id, "code": code, "reply": reply})
        return reply

    async def check_balance(self, slot: ModemSlot) -> dict[str, Any]:
        cfg = self.cfg
        text = await self.ussd(slot.id, cfg.balance_ussd)
        value = parse_balance(text, cfg.balance_regex)
        info = {"text": text, "value": value,
                "checked_at": utc_now_iso()}
        self.balances[slot.id] = info
        if value is not None and cfg.balance_low > 0 and value < cfg.balance_low:
            if slot.id not in self._balance_low:
                self._balance_low.add(slot.id)
                log.warning("modem %s: balance %.2f below %.2f", slot.id, value, cfg.balance_low)
                await self.store.call(self.store.events.add_event, EventType.BALANCE_LOW, modem_id=slot.id,
                                      payload={"sim": slot.id, "balance": value, "threshold": cfg.balance_low,
                                               "text": text})
        elif value is not None:
            self._balance_low.discard(slot.id)
        return info

    async def _balance_loop(self, slot: ModemSlot) -> None:
        while self._current(slot) and self.cfg.balance_ussd:
            if slot.driver.state is ModemState.READY:
                try:
                    await self.check_balance(slot)
                except (ModemError, ValueError) as exc:
                    log.warning("modem %s: balance check failed: %s", slot.id, exc)
            await asyncio.sleep(max(0.01, self.cfg.balance_interval_s))
        self._forget_loop(self._balance_loops, slot)
