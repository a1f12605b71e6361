"""The modem pool: one driver task and one send worker per modem.

Each worker claims the most urgent message its SIM may send (a database claim
under a lease), encodes it, and hands all its parts to the driver in one go. A
slow or failing modem only ever holds its own claim, so nothing else waits
behind it (no head-of-line blocking).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gsmgw.config import Config, ModemConfig
from gsmgw.domain import MessageState, ModemIdentity, ModemState, SendOutcome, SendOutcomeKind
from gsmgw.errors import CodecError, ModemError
from gsmgw.modem.identify import identify_port
from gsmgw.pool.discovery import HotplugWatcher, candidate_ports, identity_matches
from gsmgw.pool.limits import Limits, SimLimiter, quiet_wait_s
from gsmgw.pool.retry import ErrorClass, backoff_s, classify_cms
from gsmgw.sms import StatusReport, decode_pdu, encode_submit
from gsmgw.store import ClaimedMessage, PartResult, Store, utcnow

log = logging.getLogger(__name__)
msglog = logging.getLogger("gsmgw.messages")


def _local_minutes() -> float:
    now = dt.datetime.now().astimezone()
    return now.hour * 60 + now.minute + now.second / 60


class Driver(Protocol):
    """What the pool needs of a modem driver (gsmgw.modem.Modem satisfies it)."""

    state: ModemState
    identity: ModemIdentity

    async def run(self) -> None: ...
    async def stop(self) -> None: ...
    async def send_pdus(self, parts: list[tuple[str, int]]) -> list[SendOutcome]: ...


DriverFactory = Callable[[ModemConfig, Callable[[Any], None]], Driver]


class NoPortYet:
    """Stands in for the driver of a modem known by IMEI/ICCID until its port is found."""

    state = ModemState.DISCONNECTED
    identity = ModemIdentity()

    async def run(self) -> None:  # pragma: no cover - never started
        return None

    async def stop(self) -> None:
        return None

    async def send_pdus(self, parts: list[tuple[str, int]]) -> list[SendOutcome]:
        raise ModemError("no port found yet for this modem")


@dataclass(slots=True)
class Prepared:
    """A claimed message, encoded, ready for AT+CMGS."""

    claim: ClaimedMessage
    pdus: list[tuple[str, int]]
    # True once its parts are committed as 'sending' (then a crash makes them unknown).
    marked: bool = False


@dataclass
class ModemSlot:
    cfg: ModemConfig
    driver: Driver
    limiter: SimLimiter
    enabled: bool
    # The port the driver uses now (found by discovery for imei/iccid modems).
    port: str = ""
    driver_task: asyncio.Task[None] | None = None
    # When the driver was last seen not READY (monotonic), for re-discovery.
    down_since: float | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Set whenever the worker holds no claim; shutdown waits on it.
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    on_event: Callable[[Any], None] | None = None
    # Set while the worker holds a claim; shutdown waits for it.
    claim_id: str | None = None
    # The next message, claimed while this one is on the air (its lease is renewed too).
    next_claim_id: str | None = None
    resting_until: float = 0.0
    # Unknown outcomes and modem-class errors in a row; reset by a good send.
    consecutive_failures: int = 0
    sent_parts: int = 0
    failed_parts: int = 0
    last_error: str = ""
    state_reason: str = ""

    @property
    def id(self) -> str:
        return self.cfg.id

    @property
    def busy(self) -> bool:
        """The worker holds a claim (a send may be on the air)."""
        return not self.idle.is_set()


def default_driver_factory(cfg: ModemConfig, on_event: Callable[[Any], None]) -> Driver:
    from gsmgw.logs import AtTraceLogger
    from gsmgw.modem import Modem, ModemSettings

    settings = ModemSettings(
        port=cfg.port,
        modem_id=cfg.id,
        baudrate=cfg.baudrate,
        pin=cfg.pin or None,
        command_timeout_s=cfg.command_timeout_s,
        prompt_timeout_s=cfg.prompt_timeout_s,
        send_timeout_s=cfg.send_timeout_s,
        registration_timeout_s=cfg.registration_timeout_s,
        health_interval_s=cfg.health_interval_s,
        max_consecutive_timeouts=cfg.max_consecutive_timeouts,
        sms_storage=cfg.sms_storage,
        # Raw AT traffic only at the trace level, redacted line by line.
        trace=AtTraceLogger(cfg.id, secrets=(cfg.pin,)) if AtTraceLogger.enabled() else None,
    )
    return Modem(settings, on_event=on_event)


class Pool:
    def __init__(
        self,
        cfg: Config,
        store: Store,
        *,
        driver_factory: DriverFactory = default_driver_factory,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self._driver_factory = driver_factory
        self._clock = clock
        self.slots: dict[str, ModemSlot] = {}
        self._stopping = False
        self._maintenance: asyncio.Task[None] | None = None
        self._status_q: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._status_task: asyncio.Task[None] | None = None
        self._rescan = asyncio.Event()
        self._discovery_task: asyncio.Task[None] | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._hotplug: HotplugWatcher | None = None
        self.sent_total = 0
        # Short-lived tasks started from driver callbacks (report handling...).
        self._bg: set[asyncio.Task[None]] = set()
        from gsmgw.pool.inbound import InboundProcessor

        self.inbound = InboundProcessor(self)

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
        slot_ref: list[ModemSlot] = []

        def on_event(ev: Any) -> None:
            if slot_ref:
                self._on_driver_event(slot_ref[0], ev)

        driver: Driver = self._driver_factory(mcfg, on_event) if mcfg.port else NoPortYet()
        limits = Limits(mcfg.max_per_minute, mcfg.max_per_hour, mcfg.max_per_day)
        slot = ModemSlot(cfg=mcfg, driver=driver, limiter=SimLimiter(limits), enabled=mcfg.enabled,
                         port=mcfg.port)
        slot.on_event = on_event
        slot.idle.set()
        slot_ref.append(slot)
        self.slots[mcfg.id] = slot
        self._status_q.put_nowait(
            (mcfg.id, {"port": mcfg.port, "state": ModemState.DISCONNECTED.value, "enabled": slot.enabled})
        )
        if mcfg.port:
            slot.driver_task = asyncio.create_task(driver.run(), name=f"modem-{mcfg.id}")
        else:
            slot.down_since = self._clock() - self.cfg.discovery.rediscover_after_s
            self._rescan.set()
        slot.tasks.append(asyncio.create_task(self._worker(slot), name=f"worker-{mcfg.id}"))

    async def stop(self, *, drain_timeout_s: float = 90.0) -> None:
        """Stop claiming; let in-flight sends finish (or time out); stop drivers."""
        self._stopping = True
        for slot in self.slots.values():
            slot.wake.set()
        idle = [s.idle.wait() for s in self.slots.values()]
        try:
            await asyncio.wait_for(asyncio.gather(*idle), timeout=drain_timeout_s)
        except TimeoutError:
            log.error("sends still in flight after %.0f s; their parts stay 'sending' "
                      "and are settled as unknown at next start", drain_timeout_s)
        await self.inbound.stop()
        for slot in self.slots.values():
            with contextlib.suppress(Exception):
                await slot.driver.stop()
        if self._hotplug is not None:
            self._hotplug.stop()
        tasks = [t for s in self.slots.values() for t in s.tasks] + list(self._bg)
        tasks += [s.driver_task for s in self.slots.values() if s.driver_task is not None]
        if self._discovery_task is not None:
            tasks.append(self._discovery_task)
        if self._listen_task is not None:
            tasks.append(self._listen_task)
        for t in [*tasks, self._maintenance]:
            if t is not None:
                t.cancel()
        await asyncio.gather(*[t for t in [*tasks, self._maintenance] if t], return_exceptions=True)
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

    def set_enabled(self, modem_id: str, enabled: bool) -> bool:
        slot = self.slots.get(modem_id)
        if slot is None:
            return False
        slot.enabled = enabled
        slot.wake.set()
        self._status_q.put_nowait((modem_id, {"enabled": enabled}))
        return True

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
                    "signal_csq": getattr(slot.driver, "csq", None),
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

    # --- driver events ------------------------------------------------------------

    def _on_driver_event(self, slot: ModemSlot, ev: Any) -> None:
        kind = type(ev).__name__
        if kind == "StateChanged":
            new = getattr(ev, "new", None)
            slot.state_reason = str(getattr(ev, "reason", "") or "")
            log.debug("modem %s: %s -> %s %s", slot.id, getattr(ev, "old", "?"), new, slot.state_reason)
            self._status_q.put_nowait(
                (slot.id, {"state": str(getattr(new, "value", new)), "state_reason": slot.state_reason})
            )
            slot.wake.set()
            if new is ModemState.READY:
                self.inbound.on_modem_ready(slot)
            self.inbound.on_event(slot, ev)
        elif kind == "Identified":
            ident = getattr(ev, "identity", None)
            if isinstance(ident, ModemIdentity):
                self._status_q.put_nowait(
                    (
                        slot.id,
                        {
                            "manufacturer": ident.manufacturer,
                            "model": ident.model,
                            "firmware": ident.firmware,
                            "imei": ident.imei,
                            "imsi": ident.imsi,
                            "iccid": ident.iccid,
                            "operator": ident.operator,
                            "own_number": ident.own_number,
                        },
                    )
                )
        elif kind == "StatusReportReceived":  # +CDS: the PDU came with the URC
            self._spawn(self._handle_report(slot, ev.pdu_hex, ev.tpdu_length, None), f"report-{slot.id}")
        elif kind == "StatusReportIndication":  # +CDSI: stored, read it then delete it
            self._spawn(self._read_stored_report(slot, ev.index, ev.storage), f"report-{slot.id}-{ev.index}")
        elif kind in ("SmsIndication", "SmsReceived", "StorageFull"):
            # StorageFull: Quectel +QIND "smsfull" / Huawei ^SMMEMFULL: drain at once.
            self.inbound.on_event(slot, ev)
        elif kind == "Health":
            self.inbound.on_event(slot, ev)
            csq = getattr(ev, "csq", None)
            self._status_q.put_nowait(
                (slot.id, {"signal_csq": csq, "registration": str(getattr(ev, "registration", ""))})
            )

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def _read_stored_report(self, slot: ModemSlot, index: int, storage: str | None) -> None:
        # A +CDSI may point at "SR" (status report storage), not the SMS storage.
        try:
            stored = await self.inbound.read_announced(slot, index, storage)
        except ModemError as exc:
            log.warning("modem %s: could not read status report at %d: %s", slot.id, index, exc)
            return
        if stored is None:
            return
        if await self._handle_report(slot, stored.pdu_hex, stored.tpdu_length, index):
            try:
                await slot.driver.delete_sms(index, storage)  # type: ignore[attr-defined]
            except ModemError as exc:
                log.warning("modem %s: could not delete status report at %d: %s", slot.id, index, exc)

    async def _handle_report(self, slot: ModemSlot, pdu_hex: str, tpdu_length: int | None,
                             index: int | None) -> bool:
        """Decode and record one status report; True once it is committed."""
        try:
            rep = decode_pdu(pdu_hex, tpdu_length=tpdu_length)
        except CodecError as exc:
            log.warning("modem %s: undecodable status report %s: %s", slot.id, pdu_hex[:80], exc)
            return index is not None  # garbage in storage: delete it rather than re-read forever
        if not isinstance(rep, StatusReport):
            log.info("modem %s: expected a status report, got %s", slot.id, rep.type)
            return False
        match = await self.store.call(
            self.store.record_status_report,
            slot.id,
            tp_mr=rep.tp_mr,
            recipient=rep.recipient,
            status=rep.status,
            category=str(rep.category),
            meaning=rep.status_meaning,
            scts=rep.scts,
            discharge_at=rep.discharge_time,
            window_s=self.cfg.dispatch.status_report_window_s,
        )
        if match.message_id is None:
            log.info("modem %s: status report for tp_mr=%d to %s matched no message (kept)",
                     slot.id, rep.tp_mr, rep.recipient)
        elif match.new_state is not None:
            msglog.info("message %s -> %s (status report 0x%02X on %s)", match.message_id,
                        match.new_state.value, rep.status, slot.id,
                        extra={"message_id": match.message_id, "modem_id": slot.id,
                               "state": match.new_state.value})
        return True

    async def _status_writer(self) -> None:
        while True:
            modem_id, values = await self._status_q.get()
            try:
                await self.store.call(self.store.upsert_modem, modem_id, **values)
            except Exception:  # a status row is not worth crashing the pool for
                log.exception("could not record status of modem %s", modem_id)
            finally:
                self._status_q.task_done()

    # --- the send loop ----------------------------------------------------------------

    async def _sleep(self, slot: ModemSlot, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(slot.wake.wait(), timeout=max(0.0, timeout_s))
        slot.wake.clear()

    async def _claim(self, slot: ModemSlot, *, mark_sending: bool = False) -> ClaimedMessage | None:
        try:
            return await self.store.call(
                self.store.claim_next, slot.id, lease_s=self.cfg.store.lease_s, group=slot.cfg.group,
                mark_sending=mark_sending,
            )
        except Exception:
            log.exception("claim failed for modem %s", slot.id)
            return None

    def _can_send(self, slot: ModemSlot) -> bool:
        return (
            not self._stopping
            and slot.enabled
            and slot.driver.state is ModemState.READY
            and slot.resting_until <= self._clock()
        )

    async def _abandon(self, message_id: str, why: str) -> MessageState | None:
        """Close a claim its worker could not finish: parts left 'sending' may have
        been written, so they become unknown; the rest go back to the queue."""
        msg = await self.store.call(self.store.get_message, message_id)
        if msg is None or msg["state"] != MessageState.SENDING.value:
            return None
        written = [PartResult(p["seq"], MessageState.UNKNOWN, error_code="unknown", error_text=why)
                   for p in msg["parts"] if p["state"] == MessageState.SENDING.value]
        return await self.store.call(self.store.settle_claim, message_id, written)

    async def _release(self, prepared: Prepared | None) -> None:
        """Give a claimed, unwritten message back to the queue (no attempt counted)."""
        if prepared is not None:
            await self.store.call(self.store.settle_claim, prepared.claim.id, [], uncount_attempt=True)

    async def _worker(self, slot: ModemSlot) -> None:
        """Send loop of one modem.

        Pipelined so that the modem never waits for the database: while one message
        is on the air, the next is claimed and encoded; when the result comes, the
        previous message is settled and the next one marked ``sending`` in one
        commit, and its ``AT+CMGS`` follows at once. At any moment at most one
        message per modem has parts in ``sending`` (the crash-safety bound).
        """
        poll_s = self.cfg.dispatch.poll_interval_s
        prepared: Prepared | None = None
        try:
            while not self._stopping:
                if not self._can_send(slot):
                    await self._release(prepared)
                    prepared = None
                    now = self._clock()
                    wait = slot.resting_until - now if slot.resting_until > now else poll_s
                    await self._sleep(slot, wait)
                    continue
                quiet = quiet_wait_s(slot.cfg.quiet_hours, _local_minutes())
                if quiet > 0:
                    await self._release(prepared)
                    prepared = None
                    await self._sleep(slot, min(quiet, poll_s * 10))
                    continue
                if prepared is None:
                    wait = slot.limiter.wait_s(self._clock())
                    if wait > 0:
                        await self._sleep(slot, min(wait, poll_s * 10))
                        continue
                    slot.wake.clear()
                    claim = await self._claim(slot, mark_sending=True)
                    if claim is None:
                        await self._sleep(slot, poll_s)
                        continue
                    prepared = await self._prepare(slot, claim)
                    if prepared is None:
                        continue
                    prepared.marked = True
                slot.idle.clear()
                slot.claim_id = prepared.claim.id
                try:
                    prepared = await self._send(slot, prepared)
                except Exception:
                    # Never leave a claim dangling: settle this worker's own claims now
                    # (parts that may have been written become unknown), not other modems'.
                    log.exception("unexpected error sending on %s", slot.id)
                    prepared = None
                    for claim_id in (slot.claim_id, slot.next_claim_id):
                        if claim_id is not None:
                            with contextlib.suppress(Exception):
                                await self._abandon(claim_id, f"internal error on {slot.id} during the send")
                finally:
                    slot.claim_id = slot.next_claim_id = None
                    slot.idle.set()
        finally:
            if prepared is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._release(prepared))

    async def _prepare(self, slot: ModemSlot, claim: ClaimedMessage) -> Prepared | None:
        """Encode a claimed message; a message that cannot be encoded fails here."""
        dcfg = self.cfg.dispatch
        remaining = claim.valid_until - utcnow()
        try:
            encoded = encode_submit(
                claim.to_number,
                claim.text,
                smsc=slot.cfg.smsc or None,
                status_report=claim.delivery_report,
                flash=claim.flash,
                # TP-VP (relative) tops out at 63 weeks; a longer life is kept by the queue.
                validity=min(max(remaining, dt.timedelta(minutes=5)), dt.timedelta(weeks=63)),
                concat_ref=claim.concat_ref,
                concat_16bit=False,
                max_parts=255,
                smart_encoding=dcfg.smart_encoding,
            )
            if len(encoded.parts) != claim.parts_total:
                raise CodecError(
                    f"text now encodes into {len(encoded.parts)} parts, {claim.parts_total} were queued"
                )
        except CodecError as exc:
            await self.store.call(
                self.store.settle_claim,
                claim.id,
                [PartResult(s, MessageState.FAILED, error_code="encoding", error_text=str(exc))
                 for s in claim.pending_seqs],
            )
            return None
        pdus = [(encoded.parts[s - 1].pdu, encoded.parts[s - 1].tpdu_length) for s in claim.pending_seqs]
        return Prepared(claim=claim, pdus=pdus)

    async def _send(self, slot: ModemSlot, prepared: Prepared) -> Prepared | None:
        """Send one prepared message; returns the next one, prepared (and maybe marked)."""
        dcfg = self.cfg.dispatch
        claim = prepared.claim
        seqs = claim.pending_seqs
        if claim.valid_until <= utcnow():
            await self.store.call(
                self.store.settle_claim, claim.id,
                [PartResult(s, MessageState.EXPIRED, error_code="expired",
                            error_text="validity ended before it could be sent") for s in seqs],
            )
            return None
        # Per-SIM limits count parts. A claim is never held while a limit says wait:
        # it goes back to the queue, where another SIM may take it.
        wait = slot.limiter.wait_s(self._clock(), len(seqs))
        if wait == float("inf"):
            await self.store.call(
                self.store.settle_claim,
                claim.id,
                [PartResult(s, MessageState.FAILED, error_code="limit",
                            error_text="more parts than this SIM's limits allow at once") for s in seqs],
            )
            return None
        if wait > 0:
            await self._release(prepared)
            return None
        if not prepared.marked:
            await self.store.call(self.store.mark_parts_sending, claim.id, seqs, slot.id)
        send = asyncio.create_task(slot.driver.send_pdus(prepared.pdus), name=f"send-{slot.id}")
        nxt: Prepared | None = None
        if (not self._stopping and len(seqs) < 8
                and slot.limiter.wait_s(self._clock(), len(seqs) + 1) == 0):
            # Claim and encode the next message while this one is on the air.
            next_claim = await self._claim(slot)
            if next_claim is not None:
                slot.next_claim_id = next_claim.id
                nxt = await self._prepare(slot, next_claim)
        try:
            outcomes = await send
        except ModemError as exc:
            # Raised only when nothing was written: requeue at once, elsewhere if possible.
            slot.last_error = str(exc)
            await self.store.call(self.store.settle_claim, claim.id, [], uncount_attempt=True)
            await self._release(nxt)
            return None
        results, retry_at = self._results(slot, claim, outcomes)
        used = sum(1 for o in outcomes if o.kind is not SendOutcomeKind.ERROR)
        if used:
            slot.limiter.record(self._clock(), used)
        self._note_health(slot, outcomes)
        then_mark = None
        if nxt is not None:
            if self._can_send(slot) and slot.limiter.wait_s(self._clock(), len(nxt.claim.pending_seqs)) == 0:
                then_mark = (nxt.claim.id, nxt.claim.pending_seqs, slot.id)
                nxt.marked = True
            elif not self._can_send(slot):
                await self._release(nxt)
                nxt = None
        final = await self.store.call(
            self.store.settle_claim, claim.id, results, retry_at=retry_at,
            report_window_s=dcfg.status_report_window_s, then_mark=then_mark,
        )
        if final in (MessageState.SENT, MessageState.DELIVERED):
            self.sent_total += 1
        msglog.info("message %s -> %s on %s", claim.id, final.value, slot.id,
                    extra={"message_id": claim.id, "modem_id": slot.id, "state": final.value})
        if final is MessageState.QUEUED:
            self.notify_work()
        return nxt

    def _results(
        self, slot: ModemSlot, claim: ClaimedMessage, outcomes: list[SendOutcome]
    ) -> tuple[list[PartResult], dt.datetime | None]:
        dcfg = self.cfg.dispatch
        results: list[PartResult] = []
        retry_at: dt.datetime | None = None
        resend_unknown = claim.resend_unknown or dcfg.unknown_policy == "resend"
        for seq, out in zip(claim.pending_seqs, outcomes, strict=False):
            if out.kind is SendOutcomeKind.OK:
                results.append(PartResult(seq, MessageState.SENT, tp_mr=out.tp_mr))
                slot.sent_parts += 1
                msglog.info("message %s part %d sent on %s (tp_mr=%s)", claim.id, seq, slot.id, out.tp_mr,
                            extra={"message_id": claim.id, "modem_id": slot.id})
                continue
            slot.failed_parts += 1
            if out.kind is SendOutcomeKind.UNKNOWN:
                slot.last_error = out.detail or "no final result after the PDU was written"
                if resend_unknown:
                    retry_at = utcnow()
                    results.append(PartResult(seq, MessageState.QUEUED, error_code="unknown_resent",
                                              error_text=slot.last_error))
                else:
                    results.append(PartResult(seq, MessageState.UNKNOWN, error_code="unknown",
                                              error_text=slot.last_error))
                continue
            klass, meaning = classify_cms(out.cms_code)
            code = f"cms:{out.cms_code}" if out.cms_code is not None else "error"
            text = f"{meaning}" + (f" ({out.detail})" if out.detail else "")
            slot.last_error = f"{code} {text}"
            if klass is ErrorClass.PERMANENT or claim.attempts >= dcfg.max_attempts:
                results.append(PartResult(seq, MessageState.FAILED, error_code=code, error_text=text))
            else:
                if klass is ErrorClass.MODEM:
                    # This SIM is the problem (it is rested): the retry may go elsewhere now.
                    retry_at = utcnow()
                else:
                    retry_at = utcnow() + dt.timedelta(
                        seconds=backoff_s(claim.attempts, initial_s=dcfg.retry_backoff_initial_s,
                                          max_s=dcfg.retry_backoff_max_s)
                    )
                results.append(PartResult(seq, MessageState.QUEUED, error_code=code, error_text=text))
        return results, retry_at

    def _note_health(self, slot: ModemSlot, outcomes: list[SendOutcome]) -> None:
        dcfg = self.cfg.dispatch
        bad_modem = any(
            o.kind is SendOutcomeKind.UNKNOWN
            or (o.kind is SendOutcomeKind.ERROR and classify_cms(o.cms_code)[0] is ErrorClass.MODEM)
            for o in outcomes
        )
        if bad_modem:
            # A modem that hangs or refuses for its own reasons is rested, with growing
            # pauses, so that the queue moves to the other SIMs meanwhile.
            slot.consecutive_failures += 1
            rest = backoff_s(slot.consecutive_failures, initial_s=dcfg.retry_backoff_initial_s,
                             max_s=dcfg.retry_backoff_max_s)
            slot.resting_until = max(slot.resting_until, self._clock() + rest)
            log.warning("modem %s rested for %.1f s after %d failure(s) in a row: %s",
                        slot.id, rest, slot.consecutive_failures, slot.last_error)
        elif outcomes and all(o.ok for o in outcomes):
            slot.consecutive_failures = 0

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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rescan.wait(), timeout=min(interval, dcfg.rediscover_after_s))
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
        assert slot.on_event is not None
        slot.driver = self._driver_factory(dataclasses.replace(slot.cfg, port=port), slot.on_event)
        slot.port = port
        slot.down_since = None
        self._status_q.put_nowait((slot.id, {"port": port}))
        slot.driver_task = asyncio.create_task(slot.driver.run(), name=f"modem-{slot.id}")

    async def _maintain(self) -> None:
        """Expire overdue messages and settle claims whose lease ran out (other hosts)."""
        while True:
            await asyncio.sleep(max(self.cfg.dispatch.poll_interval_s, 1.0))
            try:
                # Renew our own leases first so that a long multipart send is never
                # mistaken for a dead host's claim.
                for slot in self.slots.values():
                    for claim_id in (slot.claim_id, slot.next_claim_id):
                        if claim_id is not None:
                            await self.store.call(self.store.renew_lease, claim_id, self.cfg.store.lease_s)
                for mid in await self.store.call(self.store.expire_due):
                    msglog.info("message %s -> expired (validity ended before it was sent)", mid,
                                extra={"message_id": mid, "state": MessageState.EXPIRED.value})
                await self.store.call(self.store.recover, only_expired_leases=True)
            except Exception:
                log.exception("pool maintenance failed")

    # --- reload (issue 9) ------------------------------------------------------------

    # ModemConfig fields that only the pool reads: a change applies to the running
    # slot. Any other change (port, PIN, baud rate, device timeouts...) restarts the
    # modem's driver, after its in-flight send.
    _LIVE_MODEM_FIELDS = frozenset({
        "enabled", "group", "quiet_hours", "max_per_minute", "max_per_hour", "max_per_day", "smsc",
    })

    async def apply_config(self, cfg: Config, *, drain_timeout_s: float = 90.0) -> dict[str, list[str]]:
        """Apply a reloaded config without dropping the queue.

        Modems whose id is new are started; modems whose id is gone stop claiming,
        finish their in-flight send (or its timeout), then stop; modems whose
        driver settings changed are restarted the same way; limits, enabled flags,
        groups, quiet hours and dispatch settings change in place. Returns the ids
        per kind of change: ``added``, ``removed``, ``restarted``, ``updated``.
        """
        import dataclasses

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
            if diff <= self._LIVE_MODEM_FIELDS:
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
        self._status_q.put_nowait((slot.id, {"state": ModemState.DISCONNECTED.value,
                                             "state_reason": "removed from the config",
                                             "enabled": False}))
        log.info("modem %s stopped (config reload)", slot.id)

    async def _claims_of(self, modem_id: str) -> list[dict[str, Any]]:
        """This host's claims (messages in 'sending') on one modem."""
        rows = await self.store.call(self.store.list_messages, state=MessageState.SENDING.value, limit=1000)
        return [r for r in rows if r.get("modem_id") == modem_id and r.get("lease_owner") == self.store.host]

    async def _release_claims_of(self, modem_id: str) -> None:
        """Settle what a worker stopped after the drain timeout left behind."""
        for row in await self._claims_of(modem_id):
            # A part already handed to the modem may have left: unknown, never resent
            # blindly (design rule 6). Parts never written go back to the queue.
            final = await self._abandon(row["id"], "the modem was stopped (config reload) during the send")
            if final is not None:
                msglog.info("message %s -> %s (modem %s removed)", row["id"], final.value, modem_id,
                            extra={"message_id": row["id"], "modem_id": modem_id, "state": final.value})
