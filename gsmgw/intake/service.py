"""The one intake path: every door (native API, SMS Gateway for Android, Kannel,
and later MQTT, e-mail, SMPP) hands its requests here as plain values.

``submit`` validates and normalises (numbers to E.164, text or template to
per-recipient texts and their encoding and parts, times, flags), checks
opt-outs, admits (daily quota, queue depth; the request rate is checked per
request with :meth:`IntakeService.take_request`), routes, and makes the one
durable commit; it returns only once the messages are committed. Errors are
:class:`~gsmgw.errors.ValidationError` (the caller must change the request)
and :class:`~gsmgw.errors.AdmissionError` (the same request may succeed later).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from gsmgw.config import Config
from gsmgw.errors import AdmissionError, ConflictError, UnavailableError, ValidationError
from gsmgw.intake import checks
from gsmgw.intake.admission import DailyQuota, KeyCache, QueueDepth, RateLimiter, utc_midnight
from gsmgw.intake.types import (
    Caller,
    CancelResult,
    IntakeObserver,
    SendRequest,
    SubmitResult,
    SubmittedMessage,
)
from gsmgw.sms import Preview
from gsmgw.store import EnqueueResult, NewMessage, Store

MAX_SECRET_CHARS = 200
MAX_DOOR_CHARS = 16
QUEUE_FULL_RETRY_S = 30.0
STORE_RETRY_S = 60.0

Route = Callable[[str], tuple[str | None, float | None]]


def request_fingerprint(**fields: Any) -> str:
    """sha256 of a request as the service normalised it (E.164 numbers, rendered texts,
    parsed times, flags with their defaults): the same request written differently
    has the same fingerprint. ``ttl_s`` is kept as given, not as the valid_until it
    gives, which moves with the clock between a request and its retry."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
                          .encode()).hexdigest()


def plausible_secret(secret: str | None) -> bool:
    """Could this be an API key at all? (Anything else is refused without a lookup.)"""
    return (secret is not None and 0 < len(secret) <= MAX_SECRET_CHARS and secret.isascii()
            and secret.isprintable())


class IntakeService:
    """Validation, opt-out, admission, routing and the durable commit of outbound messages.

    ``config`` is read on every call, so a reloaded configuration applies at
    once. ``route(number)`` gives the SIM group and its fallback seconds from the
    routing rules; ``local_modems()`` this host's modems (id first) for the
    ``sim`` check, together with those other hosts of a shared store reported.
    """

    def __init__(
        self,
        store: Store,
        config: Callable[[], Config],
        *,
        notify_work: Callable[[], None] = lambda: None,
        route: Route = lambda _number: (None, None),
        local_modems: Callable[[], list[dict[str, Any]]] = list,
        host: str = "local",
        clock: Callable[[], float] = time.monotonic,
        store_problem: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.store = store
        self.config = config
        self.notify_work = notify_work
        self.route = route
        self.local_modems = local_modems
        self.host = host
        self.clock = clock
        # Why the store cannot be trusted now (removed, replaced, unwritable), or None:
        # then nothing is accepted, since an acknowledged message must be durable.
        self.store_problem = store_problem
        self.key_cache = KeyCache()
        self.rate = RateLimiter()
        self.quota = DailyQuota(self._count_since)
        self.depth = QueueDepth(self._queue_depth)
        self._observers: list[IntakeObserver] = []

    def add_observer(self, observer: IntakeObserver) -> None:
        self._observers.append(observer)

    # --- callers ------------------------------------------------------------------

    async def authenticate(self, secret: str | None) -> Caller | None:
        """The caller a presented API key belongs to; None if it is invalid or revoked."""
        if secret is None or not plausible_secret(secret):
            return None
        digest = hashlib.sha256(secret.encode()).digest()
        now = self.clock()
        hit, caller = self.key_cache.get(digest, now)
        if not hit:
            key = await self.store.call(self.store.keys.verify_api_key, secret)
            caller = Caller.of(key) if key is not None else None
            self.key_cache.put(digest, caller, now)
        return caller

    def take_request(self, caller: Caller) -> float:
        """Count one request against the caller's rate: 0.0 if it may proceed, else
        the seconds to wait (the request is then refused: ``rate_limited``)."""
        wait_s = self.rate.take(caller, self.clock())
        if wait_s > 0:
            self._rejected("rate")
        return wait_s

    # --- checks doors also use on their own ----------------------------------------

    def number(self, raw: Any, field: str = "to") -> str:
        """A phone number as E.164 (national numbers in api.default_region)."""
        return checks.normalise_number(raw, self.config().api.default_region, field=field)

    def preview(self, text: Any) -> Preview:
        """Encoding, parts and characters left of ``text``, as it would be sent."""
        return self._text_preview(text)[1]

    async def opted_out(self, numbers: Iterable[str]) -> set[str]:
        """Which of these E.164 numbers sent STOP."""
        wanted = list(numbers)
        if not wanted:
            return set()
        return set(await self.store.call(self.store.optouts.opted_out, wanted))

    async def modem_ids(self) -> set[str]:
        """Modems a message may ask for: this host's, and those other hosts reported."""
        local = {str(m["id"]) for m in self.local_modems()}
        rows = await self.store.call(self.store.modems.list_modems)
        return local | {r["id"] for r in rows if r["host"] != self.host}

    # --- submit -------------------------------------------------------------------

    async def submit(self, caller: Caller, req: SendRequest) -> SubmitResult:
        cfg = self.config()
        d = cfg.dispatch
        per = checks.recipients_and_texts(req.to, req.text, req.template, req.variables,
                                          region=cfg.api.default_region, preview_of=self._text_preview)
        numbers = [n for n, _t, _p in per]
        now = dt.datetime.now(dt.UTC)
        send_at = checks.parse_time(req.send_at, "send_at") if req.send_at is not None else None
        valid_until = checks.parse_time(req.valid_until, "valid_until") if req.valid_until is not None else None
        ttl_s = checks.ttl_s(req.ttl_s)
        if ttl_s is not None:
            valid_until = (send_at or now) + dt.timedelta(seconds=ttl_s)
        if valid_until is not None and valid_until <= (send_at or now):
            raise ValidationError("invalid_time", "the message would expire before it could be sent",
                                  field="valid_until")
        priority = checks.priority(req.priority)
        flash = checks.flag(req.flash, "flash", False)
        delivery_report = checks.flag(req.delivery_report, "delivery_report", d.delivery_reports)
        transactional = checks.flag(req.transactional, "transactional", False)
        resend_unknown = checks.flag(req.resend_unknown, "resend_unknown", d.unknown_policy == "resend")
        callback_url = (checks.callback_url(req.callback_url, cfg.webhooks.allowed_hosts)
                        if req.callback_url is not None else None)
        idem = checks.idempotency_key(req.idempotency_key)
        door, door_data = self._door(req)
        if req.sim is not None and (not isinstance(req.sim, str) or req.sim not in await self.modem_ids()):
            raise ValidationError("unknown_sim", f"no modem with id {req.sim!r}", field="sim")
        fingerprint = None
        if idem is not None:
            fingerprint = request_fingerprint(
                per=[(n, t) for n, t, _p in per], priority=priority, send_at=send_at,
                valid_until=None if ttl_s is not None else valid_until, ttl_s=ttl_s, sim=req.sim, flash=flash,
                delivery_report=delivery_report, transactional=transactional, resend_unknown=resend_unknown,
                callback_url=callback_url, door=door, door_data=door_data)
            # A retry of an accepted request is answered before admission: it was admitted.
            earlier = await self.store.call(self.store.messages.find_by_idempotency_key, caller.id, idem)
            if earlier is not None:
                return self._replay(earlier, fingerprint)
        if (problem := self.store_problem()) is not None:
            raise UnavailableError("store_unavailable", f"the gateway cannot accept messages now: {problem}",
                                   STORE_RETRY_S)
        if not transactional:
            await self.check_optouts(numbers)
        await self.admit(caller, len(numbers))
        warnings = await self._sim_warnings(req.sim)
        routes = {n: self.route(n) for n in set(numbers)}
        items = [
            NewMessage(
                to_number=n, text=text, encoding=str(pv.encoding), parts_total=pv.parts, priority=priority,
                send_at=send_at, valid_until=valid_until, sim_requested=req.sim, flash=flash,
                delivery_report=delivery_report, transactional=transactional, resend_unknown=resend_unknown,
                callback_url=callback_url, route_group=routes[n][0], route_fallback_s=routes[n][1],
                door=door, door_data=door_data, schedule_id=req.schedule_id, campaign_id=req.campaign_id,
            )
            for n, text, pv in per
        ]
        result = await self.store.call(
            self.store.messages.enqueue, items, api_key_id=caller.id, idempotency_key=idem,
            idempotency_fingerprint=fingerprint,
            default_ttl_s=d.default_ttl_s, sticky_s=d.sticky_s, sticky_fallback_s=d.sticky_fallback_s,
        )
        self.notify_work()
        if result.replayed:  # the same key committed by a concurrent request first
            return self._replay(result, fingerprint)
        n = len(result.message_ids)
        self.depth.add(n)
        self.quota.add(caller, n)
        for o in self._observers:
            o.on_accepted(n)
        messages = tuple(SubmittedMessage(id=mid, to=n, encoding=str(pv.encoding), parts=pv.parts)
                         for mid, (n, _t, pv) in zip(result.message_ids, per, strict=True))
        return SubmitResult(batch_id=result.batch_id, messages=messages, replayed=False, warnings=warnings)

    @staticmethod
    def _replay(earlier: EnqueueResult, fingerprint: str | None) -> SubmitResult:
        """The first reply again, exactly; or a conflict if the key now names another request."""
        if earlier.fingerprint is not None and earlier.fingerprint != fingerprint:
            raise ConflictError("idempotency_conflict",
                                "this Idempotency-Key was used for a different request; nothing was queued "
                                "(use a new key for a new request)")
        messages = tuple(SubmittedMessage(id=mid, to=to, encoding=enc, parts=parts)
                         for mid, to, enc, parts in earlier.messages)
        return SubmitResult(batch_id=earlier.batch_id, messages=messages, replayed=True)

    async def _sim_warnings(self, sim: str | None) -> tuple[str, ...]:
        """A message pinned to a SIM that cannot send now is accepted, and says so."""
        if sim is None:
            return ()
        local = {str(m["id"]): m for m in self.local_modems()}
        m = local.get(sim)
        if m is None:  # another host's modem: its last reported state
            rows = await self.store.call(self.store.modems.list_modems)
            m = next((r for r in rows if r["id"] == sim), None)
        if m is None:
            return ()
        state, enabled = str(m.get("state") or "unknown"), bool(m.get("enabled", True))
        if state == "ready" and enabled:
            return ()
        why = m.get("state_reason") or m.get("last_error") or ""
        status = "disabled" if not enabled else state + (f" ({why})" if why else "")
        return (f"sim {sim} is {status}: the message waits in the queue until it can send, "
                "or until it expires",)

    async def check_optouts(self, numbers: Iterable[str]) -> None:
        """Numbers that sent STOP get nothing but transactional messages."""
        blocked = await self.opted_out(numbers)
        if blocked:
            raise ValidationError("opted_out", f"opted out (sent STOP): {', '.join(sorted(blocked))}; "
                                  "mark the message \"transactional\": true if it must still go", field="to")

    async def admit(self, caller: Caller, n: int) -> None:
        """AdmissionError if ``n`` more messages would break the caller's daily quota or
        fill the queue."""
        left = await self.quota.left(caller)
        if left is not None and left < n:
            self._rejected("quota")
            tomorrow = utc_midnight() + dt.timedelta(days=1)
            raise AdmissionError(
                "quota_exceeded",
                f"this key's daily quota of {caller.daily_quota} messages is used up ({max(left, 0)} left)",
                (tomorrow - dt.datetime.now(dt.UTC)).total_seconds())
        depth = await self.depth.get(self.clock())
        if depth + n > self.config().api.max_queue_depth:
            self._rejected("queue_full")
            raise AdmissionError("queue_full", "the outbound queue is full; retry later", QUEUE_FULL_RETRY_S)

    # --- what a caller may see -------------------------------------------------------

    @staticmethod
    def owner_filter(caller: Caller) -> str | None:
        """The key whose objects ``caller`` may read: its own, or None (all) for admin."""
        return None if "admin" in caller.scopes else caller.id

    @staticmethod
    def sees(caller: Caller, row: dict[str, Any]) -> bool:
        """May ``caller`` read this message row? Its own messages; admin all."""
        return "admin" in caller.scopes or row.get("api_key_id") == caller.id

    async def message(self, caller: Caller, message_id: str) -> dict[str, Any] | None:
        """A message the caller may read, else None (whether it exists is not revealed)."""
        row = await self.store.call(self.store.messages.get_message, message_id)
        return row if row is not None and self.sees(caller, row) else None

    async def batch(self, caller: Caller, batch_id: str) -> dict[str, Any] | None:
        """A batch's counts per state and its progress (of the caller's messages; admin all)."""
        b = await self.store.call(self.store.messages.batch_progress, batch_id, owner=self.owner_filter(caller))
        if b is None:
            return None
        total, done = b["total"], b["done"]  # done: final, or sent (its report may never come)
        return {"batch_id": b["batch_id"], "total": total, "by_state": b["counts"], "pending": total - done,
                "done": done, "delivered": b["delivered"], "failed": b["failed"],
                "progress": round(done / total, 4) if total else 1.0, "created_at": b["created_at"]}

    # --- cancel ---------------------------------------------------------------------

    async def cancel(self, caller: Caller, message_id: str) -> CancelResult:
        """Cancel a queued message. A caller may cancel its own messages; an admin any.
        Someone else's message is "no such message" (its existence is not revealed)."""
        if not caller.may("send"):
            return CancelResult(False, None)
        if "admin" not in caller.scopes and await self.message(caller, message_id) is None:
            return CancelResult(False, None)
        done, state = await self.store.call(self.store.messages.cancel, message_id)
        return CancelResult(done, state)

    # --- helpers --------------------------------------------------------------------

    def _text_preview(self, text: Any) -> tuple[str, Preview]:
        d = self.config().dispatch
        return checks.text_preview(text, smart_encoding=d.smart_encoding, max_parts=d.max_parts)

    @staticmethod
    def _door(req: SendRequest) -> tuple[str, str | None]:
        door = req.door
        if not isinstance(door, str) or not 0 < len(door) <= MAX_DOOR_CHARS:
            raise ValueError(f"door must be a name of 1-{MAX_DOOR_CHARS} characters, not {door!r}")
        if req.door_data is None:
            return door, None
        # A programming error, not the caller's: doors build door_data themselves.
        return door, json.dumps(dict(req.door_data), separators=(",", ":"), ensure_ascii=False)

    def _rejected(self, reason: str) -> None:
        for o in self._observers:
            o.on_rejected(reason)

    async def _count_since(self, caller_id: str, since: dt.datetime) -> int:
        return int(await self.store.call(self.store.messages.count_accepted_since, caller_id, since))

    async def _queue_depth(self) -> int:
        return int(await self.store.call(self.store.messages.queue_depth))
