"""The send pipeline of one modem: claim → prepare → send → settle.

Each worker claims the most urgent message its SIM may send (a database claim
under a lease), encodes it, and hands all its parts to the driver in one go. A
slow or failing modem only ever holds its own claim, so nothing else waits
behind it (no head-of-line blocking).

Pipelined so that the modem never waits for the database: while one message is
on the air, the next is claimed and encoded; when the result comes, the
previous message is settled and the next one marked ``sending`` in one commit,
and its ``AT+CMGS`` follows at once. At any moment at most one message per
modem has parts in ``sending`` (the crash-safety bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gsmgw.backoff import backoff_s
from gsmgw.config import Config
from gsmgw.domain import MessageState, ModemState, SendOutcome, SendOutcomeKind
from gsmgw.errors import CodecError, ModemError
from gsmgw.pool import pacing
from gsmgw.pool.limits import quiet_wait_s
from gsmgw.pool.retry import ErrorClass, classify_cms
from gsmgw.pool.slot import ModemSlot
from gsmgw.sms import encode_submit
from gsmgw.store import CareRecord, ClaimCare, ClaimedMessage, NextMark, PartResult, Store, utcnow
from gsmgw.waits import wait_event

log = logging.getLogger(__name__)
msglog = logging.getLogger("gsmgw.messages")

# A message of more parts is sent alone: claiming ahead would hold a second
# message for the whole of a long send.
_PREPARE_AHEAD_MAX_PARTS = 8

# An idle worker's own fallback look at the queue (the pool's periodic read of pending work
# wakes it within poll_interval_s when a message becomes claimable).
IDLE_WAIT_S = 30.0


# Weight of the newest send in a modem's smoothed time per part.
_PART_TIME_WEIGHT = 0.3


def _time_parts(slot: ModemSlot, send: asyncio.Task[list[SendOutcome]], elapsed_s: float) -> None:
    """The send has answered (or failed, or was cancelled): nothing of it is due any more,
    and a send whose every part went through updates the modem's smoothed time per part
    (failures and timeouts take their own time, not the network's)."""
    slot.send_due = None
    if send.cancelled() or send.exception() is not None:
        return
    outcomes = send.result()
    if not outcomes or not all(o.ok for o in outcomes):
        return
    x = elapsed_s / len(outcomes)
    prev = slot.part_time_s
    slot.part_time_s = x if prev is None else prev + _PART_TIME_WEIGHT * (x - prev)


def _local_minutes() -> float:
    now = dt.datetime.now().astimezone()
    return now.hour * 60 + now.minute + now.second / 60


@dataclass(slots=True)
class Prepared:
    """A claimed message, encoded, ready for AT+CMGS."""

    claim: ClaimedMessage
    pdus: list[tuple[str, int]]
    # True once its parts are committed as 'sending' (then a crash makes them unknown).
    marked: bool = False


@dataclass(frozen=True, slots=True)
class Settlement:
    """How a claim ends: what its parts became, when a retry is due, and whether
    the attempt counts (a claim handed back unwritten does not)."""

    results: list[PartResult] = field(default_factory=list)
    retry_at: dt.datetime | None = None
    handed_back: bool = False
    why: str = ""

    @classmethod
    def every(cls, seqs: Sequence[int], state: MessageState, code: str, text: str) -> Settlement:
        return cls([PartResult(s, state, error_code=code, error_text=text) for s in seqs], why=text)


# Nothing of the message was written: it goes back to the queue as it was.
HAND_BACK = Settlement(handed_back=True, why="handed back unwritten")


class SendPipeline:
    """The workers' shared logic; :meth:`run` is one modem's send loop."""

    def __init__(self, config: Callable[[], Config], store: Store, *, clock: Callable[[], float],
                 notify_work: Callable[[], None], wall: Callable[[], dt.datetime] | None = None) -> None:
        self._config = config  # read afresh: a reload changes dispatch settings and lease_s
        self.store = store
        self._clock = clock
        # SIM care's calendar and quiet hours read this UTC clock (a test may set its own).
        self.wall_clock: Callable[[], dt.datetime] = wall or utcnow
        self._notify_work = notify_work
        self.stopping = False  # no new claims; set by Pool.stop()
        self.sent_total = 0

    @property
    def cfg(self) -> Config:
        return self._config()

    # --- the loop ------------------------------------------------------------------

    async def run(self, slot: ModemSlot) -> None:
        """Send loop of one modem, until the pool stops (or the task is cancelled)."""
        prepared: Prepared | None = None
        on_air = False  # cancelled while True: prepared's PDU may have been written
        try:
            while not self.stopping:
                pause_s = self._blocked_s(slot)
                if pause_s is not None:
                    # Never hold a claim while this SIM cannot send: another may.
                    await self.release(slot, prepared)
                    prepared = None
                    await self._sleep(slot, pause_s)
                    continue
                if prepared is None:
                    prepared, pause_s = await self._claim_and_prepare(slot)
                    if prepared is None:
                        if pause_s > 0:
                            await self._sleep(slot, pause_s)
                        continue
                on_air = True
                prepared = await self._send_guarded(slot, prepared)
                on_air = False
        finally:
            if prepared is not None:
                with contextlib.suppress(Exception):
                    if on_air:
                        # Cancelled mid-send (the stop's drain timeout ran out): what may have
                        # left the modem is unknown, never back in the queue to be sent again.
                        await asyncio.shield(self.abandon(prepared.claim.id, f"{slot.id} was stopped during the send",
                                                          (slot.id, prepared.claim.attempts)))
                    else:
                        await asyncio.shield(self.release(slot, prepared))

    def can_send(self, slot: ModemSlot) -> bool:
        return (
            not self.stopping
            and slot.enabled
            and slot.driver.state is ModemState.READY
            and slot.resting_until <= self._clock()
        )

    def _blocked_s(self, slot: ModemSlot) -> float | None:
        """How long to sleep when this SIM may not send now (down, disabled, resting,
        quiet hours); ``None`` when it may."""
        poll_s = self.cfg.dispatch.poll_interval_s
        if not self.can_send(slot):
            now = self._clock()
            return slot.resting_until - now if slot.resting_until > now else poll_s
        quiet_s = quiet_wait_s(slot.cfg.quiet_hours, _local_minutes())
        if quiet_s > 0:
            return min(quiet_s, poll_s * 10)
        return None

    async def _sleep(self, slot: ModemSlot, timeout_s: float) -> None:
        await wait_event(slot.wake, max(0.0, timeout_s))
        slot.wake.clear()

    # --- claim and prepare -----------------------------------------------------------

    async def _claim_and_prepare(self, slot: ModemSlot) -> tuple[Prepared | None, float]:
        """The next message, claimed with its parts marked ``sending`` and encoded;
        or ``None`` and how long to wait before asking again."""
        poll_s = self.cfg.dispatch.poll_interval_s
        wait_s = slot.limiter.wait_s(self._clock())
        if wait_s > 0:
            return None, min(wait_s, poll_s * 10)
        slot.wake.clear()
        claim = await self._claim(slot, mark_sending=True)
        if claim is None:
            # Nothing for this SIM: wait for a wake-up (new work, a modem event, or the
            # pool's one periodic read of pending work, every poll_interval_s for all
            # modems) instead of each worker asking the store every poll_interval_s.
            return None, max(poll_s, IDLE_WAIT_S)
        prepared = await self._prepare(slot, claim)
        if prepared is None:
            return None, 0.0  # it failed to encode (and is settled): look again at once
        prepared.marked = True
        return prepared, 0.0

    async def _claim(self, slot: ModemSlot, *, mark_sending: bool = False) -> ClaimedMessage | None:
        care = self._claim_care(slot)
        try:
            return await self.store.call(
                self.store.claims.claim_next, slot.id, lease_s=self.cfg.store.lease_s, group=slot.cfg.group,
                mark_sending=mark_sending,
                **({} if care is None else {"care": care, "now": self.wall_clock()}),
            )
        except Exception:
            log.exception("claim failed for modem %s", slot.id)
            return None

    async def _prepare(self, slot: ModemSlot, claim: ClaimedMessage) -> Prepared | None:
        """Encode a claimed message; a message that cannot be encoded fails here."""
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
                smart_encoding=self.cfg.dispatch.smart_encoding,
            )
            if len(encoded.parts) != claim.parts_total:
                raise CodecError(
                    f"text now encodes into {len(encoded.parts)} parts, {claim.parts_total} were queued"
                )
        except CodecError as exc:
            await self._settle(slot, claim, Settlement.every(claim.pending_seqs, MessageState.FAILED,
                                                             "encoding", str(exc)))
            return None
        pdus = [(encoded.parts[s - 1].pdu, encoded.parts[s - 1].tpdu_length) for s in claim.pending_seqs]
        return Prepared(claim=claim, pdus=pdus)

    async def _prepare_ahead(self, slot: ModemSlot, parts_now: int) -> Prepared | None:
        """Claim and encode the next message while this one is on the air."""
        if (self.stopping or parts_now >= _PREPARE_AHEAD_MAX_PARTS
                or slot.limiter.wait_s(self._clock(), parts_now + 1) != 0
                or pacing.CarePolicy.of(slot.cfg, self.cfg).active):
            return None  # (SIM care counts a send at its settle: one claim at a time)
        claim = await self._claim(slot)
        if claim is None:
            return None
        slot.next_claim_id = claim.id
        return await self._prepare(slot, claim)

    # --- send -------------------------------------------------------------------------

    async def _send_guarded(self, slot: ModemSlot, prepared: Prepared) -> Prepared | None:
        """:meth:`_send` with the slot marked busy. An unexpected error settles this
        worker's own claims now (parts that may have been written become unknown),
        never other modems'."""
        slot.idle.clear()
        slot.claim_id = prepared.claim.id
        try:
            return await self._send(slot, prepared)
        except Exception:
            log.exception("unexpected error sending on %s", slot.id)
            for claim_id, held_as in ((slot.claim_id, (slot.id, prepared.claim.attempts)),
                                      (slot.next_claim_id, None)):
                if claim_id is not None:
                    with contextlib.suppress(Exception):
                        await self.abandon(claim_id, f"internal error on {slot.id} during the send", held_as)
            return None
        finally:
            slot.claim_id = slot.next_claim_id = None
            slot.send_due = None
            slot.idle.set()

    async def _send(self, slot: ModemSlot, prepared: Prepared) -> Prepared | None:
        """Send one prepared message and settle it; returns the next one, prepared
        (and maybe marked). Every way out settles through :meth:`_settle`."""
        claim = prepared.claim
        refusal = self._refusal(slot, claim)
        if refusal is not None:
            await self._settle(slot, claim, refusal)
            return None
        if not prepared.marked and not await self.store.call(
                self.store.claims.mark_parts_sending, claim.id, claim.pending_seqs, slot.id, claim.attempts):
            self._lost(slot, claim)
            return None
        started = self._clock()
        if slot.part_time_s is not None:
            slot.send_due = started + slot.part_time_s * len(prepared.pdus)
        send = asyncio.create_task(slot.driver.send_pdus(prepared.pdus), name=f"send-{slot.id}")
        # Timed when it answers, not when this loop gets back to it (the claim ahead may be slower).
        send.add_done_callback(lambda task: _time_parts(slot, task, self._clock() - started))
        nxt = await self._prepare_ahead(slot, len(claim.pending_seqs))
        try:
            outcomes = await send
        except ModemError as exc:
            # Raised only when nothing was written: requeue at once, elsewhere if possible.
            slot.last_error = str(exc)
            await self._settle(slot, claim, HAND_BACK)
            await self.release(slot, nxt)
            return None
        settlement = self._judge(slot, claim, outcomes)
        used = sum(1 for o in outcomes if o.kind is not SendOutcomeKind.ERROR)
        if used:
            slot.limiter.record(self._clock(), used)
        self._note_health(slot, outcomes)
        return await self._settle(slot, claim, settlement, nxt, care=self._care_record(slot, claim))

    def _refusal(self, slot: ModemSlot, claim: ClaimedMessage) -> Settlement | None:
        """Why a held message may not go now, as its settlement; ``None`` if it may."""
        seqs = claim.pending_seqs
        if claim.valid_until <= utcnow():
            return Settlement.every(seqs, MessageState.EXPIRED, "expired",
                                    "validity ended before it could be sent")
        # Per-SIM limits count parts. A claim is never held while a limit says wait:
        # it goes back to the queue, where another SIM may take it.
        wait_s = slot.limiter.wait_s(self._clock(), len(seqs))
        if wait_s == float("inf"):
            return Settlement.every(seqs, MessageState.FAILED, "limit",
                                    "more parts than this SIM's limits allow at once")
        if wait_s > 0:
            return HAND_BACK
        return None

    # --- settle -----------------------------------------------------------------------

    async def _settle(self, slot: ModemSlot, claim: ClaimedMessage, settlement: Settlement,
                      nxt: Prepared | None = None, care: CareRecord | None = None) -> Prepared | None:
        """Commit how ``claim`` ended (and mark ``nxt`` sending in the same commit
        when it may go at once); returns ``nxt`` if it is still held."""
        then_mark = None
        if nxt is not None:
            if self.can_send(slot) and slot.limiter.wait_s(self._clock(), len(nxt.claim.pending_seqs)) == 0:
                then_mark = NextMark(nxt.claim.id, nxt.claim.pending_seqs, slot.id, nxt.claim.attempts)
            elif not self.can_send(slot):
                await self.release(slot, nxt)
                nxt = None
        final = await self.store.call(
            self.store.claims.settle_claim, claim.id, settlement.results, retry_at=settlement.retry_at,
            report_window_s=self.cfg.dispatch.status_report_window_s, then_mark=then_mark,
            uncount_attempt=settlement.handed_back, held_as=(slot.id, claim.attempts),
            **({} if care is None else {"care": care}),
        )
        if final in (MessageState.SENT, MessageState.DELIVERED):
            self.sent_total += 1
        level = logging.DEBUG if settlement.handed_back else logging.INFO
        msglog.log(level, "message %s -> %s on %s%s", claim.id, final.value, slot.id,
                   f" ({settlement.why})" if settlement.why else "",
                   extra={"message_id": claim.id, "modem_id": slot.id, "state": final.value})
        if final is MessageState.QUEUED and not settlement.handed_back:
            self._notify_work()  # a retry: another SIM may take it now
        if then_mark is not None and nxt is not None:
            if not then_mark.taken:
                self._lost(slot, nxt.claim)
                return None
            nxt.marked = True
        return nxt

    def _lost(self, slot: ModemSlot, claim: ClaimedMessage) -> None:
        """A claim this host no longer holds (another host recovered it after its
        lease ran out): not written, and not handed back either (it is not ours)."""
        if slot.next_claim_id == claim.id:
            slot.next_claim_id = None
        log.warning("message %s: claim on %s was taken over by another host; not sending it", claim.id, slot.id)

    def _judge(self, slot: ModemSlot, claim: ClaimedMessage, outcomes: list[SendOutcome]) -> Settlement:
        """What each part's outcome means: sent, unknown (never resent blindly),
        failed for good, or queued again (with backoff, or at once elsewhere)."""
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
                continue
            if klass is ErrorClass.MODEM:
                # This SIM is the problem (it is rested): the retry may go elsewhere now.
                retry_at = utcnow()
            else:
                retry_at = utcnow() + dt.timedelta(
                    seconds=backoff_s(claim.attempts, initial_s=dcfg.retry_backoff_initial_s,
                                      max_s=dcfg.retry_backoff_max_s)
                )
            results.append(PartResult(seq, MessageState.QUEUED, error_code=code, error_text=text))
        return Settlement(results, retry_at)

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
            rest_s = backoff_s(slot.consecutive_failures, initial_s=dcfg.retry_backoff_initial_s,
                               max_s=dcfg.retry_backoff_max_s)
            slot.resting_until = max(slot.resting_until, self._clock() + rest_s)
            log.warning("modem %s rested for %.1f s after %d failure(s) in a row: %s",
                        slot.id, rest_s, slot.consecutive_failures, slot.last_error)
        elif outcomes and all(o.ok for o in outcomes):
            slot.consecutive_failures = 0

    # --- SIM care (issue 20): pacing, calendar caps, recipient quiet hours, cost ------------

    def wall(self) -> dt.datetime:
        return self.wall_clock()

    def _claim_care(self, slot: ModemSlot) -> ClaimCare | None:
        """What the claim must respect for this SIM; ``None`` when SIM care is off
        (then the claim is exactly what it was without it)."""
        cfg = self.cfg
        policy = pacing.CarePolicy.of(slot.cfg, cfg)
        window = pacing.window_rule(cfg)
        if not policy.active and window is None:
            return None
        return self.care_for(policy, window)

    def care_for(self, policy: pacing.CarePolicy,
                 window: Callable[[str, dt.datetime], dt.datetime | None] | None = None) -> ClaimCare:
        cfg = self.cfg
        now = self.wall_clock()
        month, first, last = pacing.month_keys(now, policy.timezone)
        return ClaimCare(
            day=pacing.day_key(now, policy.timezone), month=month, month_first_day=first, month_last_day=last,
            gate=(lambda usage: pacing.gate(policy, usage, now)) if policy.active else None,
            exempt_priority=cfg.sim_care.exempt_priority, exempt_transactional=cfg.sim_care.exempt_transactional,
            window=window,
        )

    def _care_record(self, slot: ModemSlot, claim: ClaimedMessage) -> CareRecord | None:
        """What this send adds to the SIM's counters and the message's cost."""
        cfg = self.cfg
        policy = pacing.CarePolicy.of(slot.cfg, cfg)
        cost = pacing.part_cost_micros(cfg, slot.cfg, claim.to_number)
        if not policy.active and cost is None:
            return None
        now = self.wall_clock()
        month, _first, _last = pacing.month_keys(now, policy.timezone)
        delay_s = pacing.draw_delay_s(policy)
        return CareRecord(
            modem_id=slot.id, number=claim.to_number, day=pacing.day_key(now, policy.timezone), month=month,
            next_send_at=now + dt.timedelta(seconds=delay_s) if delay_s > 0 else None, at=now,
            cost_per_part_micros=cost, count=policy.active,
        )

    # --- handing claims back -------------------------------------------------------------

    async def release(self, slot: ModemSlot, prepared: Prepared | None) -> None:
        """Give a claimed, unwritten message back to the queue (no attempt counted)."""
        if prepared is not None:
            await self.store.call(self.store.claims.settle_claim, prepared.claim.id, [], uncount_attempt=True,
                                  held_as=(slot.id, prepared.claim.attempts))

    async def abandon(self, message_id: str, why: str, held_as: tuple[str, int] | None = None) -> MessageState | None:
        """Close a claim its worker could not finish: parts left 'sending' may have
        been written, so they become unknown; the rest go back to the queue. Only
        this host's claim (``held_as``: that very claim) is closed."""
        msg = await self.store.call(self.store.messages.get_message, message_id)
        if msg is None or msg["state"] != MessageState.SENDING.value:
            return None
        written = [PartResult(p["seq"], MessageState.UNKNOWN, error_code="unknown", error_text=why)
                   for p in msg["parts"] if p["state"] == MessageState.SENDING.value]
        return await self.store.call(self.store.claims.settle_claim, message_id, written, held_as=held_as)


__all__ = ["HAND_BACK", "IDLE_WAIT_S", "Prepared", "SendPipeline", "Settlement"]
