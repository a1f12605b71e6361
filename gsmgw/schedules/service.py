"""Recurring messages: a schedule (RRULE or cron, in a time zone) that queues a message
at each occurrence through the intake service, like any door.

Never twice: each occurrence is submitted with the idempotency key
``schedule:<id>:<occurrence UTC>`` under the schedule owner's API key, and the
store's unique (key, idempotency key) makes a second submit of it, after a crash
or from another host, a replay that queues nothing. A host acts on a schedule only
while it holds its claim (a compare-and-set in the store), and the cursor (the last
occurrence handled) only moves forward. After downtime the ``missed`` policy
decides: ``once`` queues the latest missed occurrence, ``skip`` none
(:func:`gsmgw.schedules.rules.plan`).

The clock is injectable (``clock``), so tests make time pass without sleeping.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gsmgw.config import Config
from gsmgw.errors import AdmissionError, ConflictError, ValidationError
from gsmgw.intake import IntakeService, checks
from gsmgw.intake.types import Caller, Recipient, SendRequest
from gsmgw.schedules.rules import (
    MISSED_POLICIES,
    Recurrence,
    RuleError,
    parse_recurrence,
    plan,
    zone,
)
from gsmgw.store import Store, new_id
from gsmgw.waits import wait_event

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 200
RETRY_LATER_S = 60.0  # an occurrence refused for now (quota, full queue) is tried again after this
EVAL_TIMEOUT_S = 2.0  # a new schedule's rule must evaluate within this long
MAX_EVALUATIONS = 2  # rules evaluated at once (each in a thread)
TICK_CONCURRENCY = 16  # schedules queued at once in a tick


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def occurrence_key(schedule_id: str, occurrence: dt.datetime) -> str:
    """The idempotency key of one occurrence: the same for every host and every retry."""
    return f"schedule:{schedule_id}:{occurrence.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"


@dataclass(frozen=True, slots=True)
class ScheduleSpec:
    """A schedule as plain values (a door checks shape; the service checks meaning)."""

    to: Any
    rrule: str | None = None
    cron: str | None = None
    timezone: str = "UTC"
    start: str | dt.datetime | None = None
    text: str | None = None
    template: str | None = None
    variables: Mapping[str, Any] | None = None
    sim: str | None = None
    priority: str | int | None = None
    transactional: bool = False
    missed: str = "once"
    name: str = ""


def recurrence_of(row: Mapping[str, Any]) -> Recurrence:
    """A stored schedule's recurrence, anchored at its cursor once that is an occurrence."""
    anchor = row["cursor_at"] if (row.get("runs") or 0) + (row.get("skipped") or 0) > 0 else None
    return Recurrence(row["kind"], row["expr"], zone(row["timezone"]), row["start_at"], anchor=anchor)


class Scheduler:
    """Runs the recurring schedules of a store (on every host; the claims share the work)."""

    def __init__(self, store: Store, intake: IntakeService, config: Callable[[], Config], *,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.store = store
        self.intake = intake
        self.config = config
        self.clock = clock
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one tick at a time on this host
        self._task: asyncio.Task[None] | None = None
        self.occurrences_queued = 0
        self._evaluating = 0

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self.config().schedules.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="schedules")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
                wait_s = await self._sleep_s()
            except Exception:
                log.exception("schedules: tick failed")
                wait_s = self.config().schedules.poll_interval_s
            await wait_event(self._wake, wait_s)
            self._wake.clear()

    async def _sleep_s(self) -> float:
        cfg = self.config().schedules
        nxt = await self.store.call(self.store.schedules.next_due_at)
        if nxt is None:
            return cfg.poll_interval_s
        return min(cfg.poll_interval_s, max(0.05, (nxt - self.clock()).total_seconds()))

    # --- the work ---------------------------------------------------------------------------

    async def tick(self) -> int:
        """Queue every occurrence that is due now; the number queued."""
        async with self._lock:
            now = self.clock()
            queued = 0
            seen: set[str] = set()
            # Several at once: on SQLite their commits then share fsyncs (group commit).
            gate = asyncio.Semaphore(TICK_CONCURRENCY)
            while True:  # in pages of 100, each schedule once per tick
                due = await self.store.call(self.store.schedules.due_schedules, now, exclude=seen)
                if not due:
                    return queued
                seen.update(due)
                async def one(sid: str) -> int:
                    async with gate:
                        try:
                            return await self._run_one(sid, now)
                        except Exception as exc:
                            log.exception("schedule %s: failed", sid)
                            await self.store.call(self.store.schedules.release_schedule, sid,
                                                  f"internal error: {exc}")
                            return 0

                queued += sum(await asyncio.gather(*(one(sid) for sid in due)))

    async def _run_one(self, sid: str, now: dt.datetime) -> int:
        cfg = self.config().schedules
        row = await self.store.call(self.store.schedules.claim_schedule, sid, now, cfg.claim_s)
        if row is None:
            return 0  # another host has it, or it was paused or deleted meanwhile
        rec = recurrence_of(row)
        # Off the event loop: a rule that matches rarely makes dateutil search a while.
        p = await asyncio.to_thread(plan, rec, row["cursor_at"], now, row["missed"], cfg.grace_s)
        caller, why = await self._owner(row)
        queued = 0
        error: str | None = None
        runs, skipped = 0, p.skipped
        last_run: tuple[dt.datetime, str] | None = None
        for i, occ in enumerate(p.send):
            if caller is None:
                error = why
                break
            outcome = await self._submit(row, caller, occ, rec)
            if outcome == "later":
                return queued  # due again in RETRY_LATER_S (the missed policy applies if that is late)
            if outcome.startswith("error:"):
                error, skipped = outcome[6:], skipped + 1
            else:
                queued, runs, last_run = queued + 1, runs + 1, (occ, outcome)
            if i < len(p.send) - 1:  # more to come: book this one now (a crash loses nothing)
                await self.store.call(
                    self.store.schedules.advance_schedule, sid, cursor_at=occ,
                    next_run_at=await asyncio.to_thread(rec.after, occ), runs=runs, skipped=skipped - p.skipped,
                    last_run_at=last_run[0] if last_run else None, last_batch_id=last_run[1] if last_run else None,
                    error=error, release=False)
                runs, skipped = 0, p.skipped
        if caller is None and p.send:
            # The owner's key was revoked or lost the send scope: the schedule stops.
            log.warning("schedule %s: paused: %s", sid, why)
            await self.store.call(self.store.schedules.update_schedule, sid, None, paused=True, last_error=why,
                                  claim_host=None, claim_until=None)
            return 0
        if p.skipped:
            log.info("schedule %s: %d missed occurrence(s) skipped (missed = %s)", sid, p.skipped, row["missed"])
        await self.store.call(self.store.schedules.advance_schedule, sid, cursor_at=p.cursor,
                              next_run_at=await asyncio.to_thread(rec.after, p.cursor), runs=runs, skipped=skipped,
                              last_run_at=last_run[0] if last_run else None,
                              last_batch_id=last_run[1] if last_run else None, error=error)
        self.occurrences_queued += queued
        return queued

    async def _owner(self, row: Mapping[str, Any]) -> tuple[Caller | None, str]:
        key = await self.store.call(self.store.schedules.owner_key, row["api_key_id"])
        if key is None or key["revoked_at"] is not None:
            return None, "the API key that owns this schedule was revoked"
        caller = Caller(id=key["id"], name=key["name"], scopes=frozenset(key["scopes"].split(",")),
                        rate_per_s=key["rate_per_s"], daily_quota=key["daily_quota"])
        if not caller.may("send"):
            return None, "the API key that owns this schedule lacks the send scope"
        return caller, ""

    async def _submit(self, row: Mapping[str, Any], caller: Caller, occ: dt.datetime, rec: Recurrence) -> str:
        """Queue one occurrence: its batch id, "later" (try again), or "error:<why>" (skipped)."""
        msg = json.loads(row["message"])
        recipients = msg["to"]
        if not msg.get("transactional"):
            out = await self.intake.opted_out([r["to"] for r in recipients])
            if out:
                log.info("schedule %s: %d recipient(s) opted out, left out", row["id"], len(out))
                recipients = [r for r in recipients if r["to"] not in out]
            if not recipients:
                return "error:every recipient opted out (sent STOP)"
        local = occ.astimezone(rec.tz)
        builtins = {"date": f"{local:%Y-%m-%d}", "time": f"{local:%H:%M}"}
        if msg.get("template") is not None:
            to: Any = [Recipient(r["to"], r.get("variables")) for r in recipients]
            variables: Any = {**builtins, **(msg.get("variables") or {})}
        else:
            to, variables = [r["to"] for r in recipients], None
        req = SendRequest(to=to, text=msg.get("text"), template=msg.get("template"), variables=variables,
                          priority=msg.get("priority"), sim=msg.get("sim"),
                          transactional=bool(msg.get("transactional")),
                          idempotency_key=occurrence_key(row["id"], occ), door="schedule", schedule_id=row["id"])
        try:
            result = await self.intake.submit(caller, req)
        except ConflictError:
            return "replayed"  # queued before (same key): never twice
        except AdmissionError as exc:
            log.warning("schedule %s: occurrence %s not queued yet (%s): retrying in %.0f s", row["id"],
                        occ.isoformat(), exc, RETRY_LATER_S)
            # The cursor stays: the due time moves, and the claim is let go.
            await self.store.call(self.store.schedules.update_schedule, row["id"], None,
                                  last_error=f"{exc.code}: {exc}", claim_host=None, claim_until=None,
                                  next_run_at=self.clock() + dt.timedelta(seconds=RETRY_LATER_S))
            return "later"
        except ValidationError as exc:
            log.warning("schedule %s: occurrence %s refused: %s", row["id"], occ.isoformat(), exc.message)
            return f"error:{exc.code}: {exc.message}"
        if not result.replayed:
            log.info("schedule %s: occurrence %s queued: batch %s, %d message(s)", row["id"], occ.isoformat(),
                     result.batch_id, len(result.messages))
        return result.batch_id

    # --- what the doors call ------------------------------------------------------------------

    async def create(self, caller: Caller, spec: ScheduleSpec) -> dict[str, Any]:
        """Check and store a schedule owned by ``caller``; its view. ValidationError if bad."""
        cfg = self.config()
        now = self.clock()
        if not isinstance(spec.name, str) or len(spec.name) > MAX_NAME_CHARS:
            raise ValidationError("invalid_field", f"name must be at most {MAX_NAME_CHARS} characters", field="name")
        name = checks.well_formed(spec.name, "name", "invalid_field") if spec.name else ""
        if spec.missed not in MISSED_POLICIES:
            raise ValidationError("invalid_field", "missed must be \"once\" or \"skip\"", field="missed")
        start = checks.parse_time(spec.start, "start") if spec.start is not None else now
        if isinstance(spec.start, dt.datetime) and spec.start.tzinfo is None:
            raise ValidationError("invalid_time", "start needs a time zone", field="start")
        rec = await self._evaluate(spec, start, now)
        message = await self._check_message(spec, cfg)
        n = len(await self.store.call(self.store.schedules.list_schedules, caller.id,
                                      limit=cfg.schedules.max_per_key + 1))
        if n >= cfg.schedules.max_per_key:
            raise ValidationError("too_many_schedules",
                                  f"this key has {n} schedules, the most schedules.max_per_key allows")
        cursor = max(now, start) - dt.timedelta(microseconds=1)
        row = {
            "id": new_id(), "api_key_id": caller.id, "name": name, "kind": rec.kind, "expr": rec.expr,
            "timezone": spec.timezone, "start_at": start, "message": json.dumps(message, ensure_ascii=False),
            "missed": spec.missed, "paused": False, "cursor_at": cursor, "next_run_at": rec.after(cursor),
            "runs": 0, "skipped": 0, "created_at": now, "updated_at": now,
        }
        stored = await self.store.call(self.store.schedules.create_schedule, row)
        self.wake()
        return self.view(stored)

    async def _evaluate(self, spec: ScheduleSpec, start: dt.datetime, now: dt.datetime) -> Recurrence:
        """The checked recurrence, evaluated off the event loop and within EVAL_TIMEOUT_S.

        dateutil searches for a rule's next match up to the year 9999 and cannot be
        interrupted: a rule that matches only very rarely (or, at FREQ=MINUTELY, never)
        could hold a thread for many seconds. Such a rule is refused once the time is up;
        its thread ends by itself, and at most MAX_EVALUATIONS run at once.
        """
        field = "rrule" if spec.rrule is not None else "cron"
        if self._evaluating >= MAX_EVALUATIONS:
            raise AdmissionError("busy", "another schedule's rule is still being evaluated; retry shortly", 5.0)
        self._evaluating += 1
        fut = asyncio.ensure_future(asyncio.to_thread(
            parse_recurrence, rrule_expr=spec.rrule, cron_expr=spec.cron, timezone=spec.timezone, start=start,
            now=now))

        def done(_f: asyncio.Future[Recurrence]) -> None:
            self._evaluating -= 1

        fut.add_done_callback(done)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), EVAL_TIMEOUT_S)
        except RuleError as exc:
            raise ValidationError(f"invalid_{exc.field}", str(exc), field=exc.field) from None
        except TimeoutError:
            fut.add_done_callback(lambda f: f.exception())  # retrieved: nobody waits for it any more
            raise ValidationError(f"invalid_{field}", f"the {field} took too long to evaluate: it matches too rarely "
                                  "(or never); simplify it", field=field) from None

    async def _check_message(self, spec: ScheduleSpec, cfg: Config) -> dict[str, Any]:
        """The message part, checked as intake would check it now; numbers as E.164."""
        d = cfg.dispatch

        def preview_of(text: Any) -> Any:
            return checks.text_preview(text, smart_encoding=d.smart_encoding, max_parts=d.max_parts)

        variables = spec.variables
        if spec.template is not None:  # the built-ins as they will be, for the check
            variables = {"date": "2000-01-01", "time": "00:00", **(checks.variables(spec.variables, "variables"))}
        per = checks.recipients_and_texts(spec.to, spec.text, spec.template, variables,
                                          region=cfg.api.default_region, preview_of=preview_of)
        raw = list(spec.to) if isinstance(spec.to, list | tuple) else [spec.to]
        to = []
        for (number, _t, _p), r in zip(per, raw, strict=True):
            own = checks.variables(r.variables, "variables") if isinstance(r, Recipient) and r.variables else None
            to.append({"to": number, **({"variables": own} if own else {})})
        priority = checks.priority(spec.priority) if spec.priority is not None else None
        transactional = checks.flag(spec.transactional, "transactional", False)
        if spec.sim is not None and (not isinstance(spec.sim, str) or spec.sim not in await self.intake.modem_ids()):
            raise ValidationError("unknown_sim", f"no modem with id {spec.sim!r}", field="sim")
        return {"to": to, "text": spec.text, "template": spec.template,
                "variables": checks.variables(spec.variables, "variables") if spec.variables else None,
                "sim": spec.sim, "priority": priority, "transactional": transactional}

    async def get(self, caller: Caller, schedule_id: str) -> dict[str, Any] | None:
        row = await self.store.call(self.store.schedules.get_schedule, schedule_id,
                                    self.intake.owner_filter(caller))
        if row is None:
            return None
        view = await asyncio.to_thread(self.view, row, upcoming=5)
        view["messages_by_state"] = await self.store.call(self.store.schedules.schedule_message_counts, row["id"])
        return view

    async def list(self, caller: Caller, *, cursor: str | None = None, limit: int = 50) -> dict[str, Any]:
        rows = await self.store.call(self.store.schedules.list_schedules, self.intake.owner_filter(caller),
                                     before_id=cursor, limit=limit)
        items = [self.view(r) for r in rows]
        return {"items": items, "next_cursor": rows[-1]["id"] if len(rows) == limit else None}

    async def set_paused(self, caller: Caller, schedule_id: str, paused: bool) -> dict[str, Any] | None:
        """Pause, or resume: occurrences while paused are not sent (the cursor jumps to now)."""
        owner = self.intake.owner_filter(caller)
        row = await self.store.call(self.store.schedules.get_schedule, schedule_id, owner)
        if row is None:
            return None
        if paused:
            row = await self.store.call(self.store.schedules.update_schedule, schedule_id, owner, paused=True)
        elif row["paused"]:
            now = self.clock()
            rec = recurrence_of(row)
            n, last = await asyncio.to_thread(rec.count_and_latest, row["cursor_at"], now)
            cursor = last or row["cursor_at"]
            row = await self.store.call(self.store.schedules.update_schedule, schedule_id, owner, paused=False,
                                        cursor_at=cursor, next_run_at=await asyncio.to_thread(rec.after, cursor),
                                        skipped=row["skipped"] + n, last_error=None)
            self.wake()
        return self.view(row) if row is not None else None

    async def delete(self, caller: Caller, schedule_id: str) -> bool:
        return bool(await self.store.call(self.store.schedules.delete_schedule, schedule_id,
                                          self.intake.owner_filter(caller)))

    @staticmethod
    def view(row: Mapping[str, Any], *, upcoming: int = 0) -> dict[str, Any]:
        msg = json.loads(row["message"])
        tz = zone(row["timezone"])

        def iso(t: dt.datetime | None) -> str | None:
            return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if t is not None else None

        def local(t: dt.datetime | None) -> str | None:
            return t.astimezone(tz).isoformat() if t is not None else None

        out: dict[str, Any] = {
            "id": row["id"], "name": row["name"], row["kind"]: row["expr"], "timezone": row["timezone"],
            "start": iso(row["start_at"]), "missed": row["missed"], "paused": bool(row["paused"]),
            "to": [r["to"] if "variables" not in r else r for r in msg["to"]],
            "text": msg.get("text"), "template": msg.get("template"), "variables": msg.get("variables"),
            "sim": msg.get("sim"), "priority": msg.get("priority"), "transactional": msg.get("transactional", False),
            "next_run_at": iso(None if row["paused"] else row["next_run_at"]),
            "next_run_local": local(None if row["paused"] else row["next_run_at"]),
            "last_run_at": iso(row["last_run_at"]), "last_run_local": local(row["last_run_at"]),
            "last_batch_id": row["last_batch_id"], "runs": row["runs"], "skipped": row["skipped"],
            "last_error": row["last_error"], "created_at": iso(row["created_at"]),
        }
        if upcoming and row["next_run_at"] is not None and not row["paused"]:
            rec = recurrence_of(row)
            nxt = [row["next_run_at"], *rec.between(row["next_run_at"], row["next_run_at"] + dt.timedelta(days=3660),
                                                    limit=upcoming - 1)]
            out["upcoming_local"] = [local(t) for t in nxt]
        return out


__all__ = ["ScheduleSpec", "Scheduler", "occurrence_key", "recurrence_of"]
