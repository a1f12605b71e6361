"""SIM keep-alive: a prepaid SIM that has sent nothing for ``every_days`` runs its
keep-alive, a USSD code (a balance check counts) or an SMS to a configured number,
so that the operator does not retire it.

Per SIM (modem id) the store keeps when it last proved alive (a keep-alive that
worked, or any SMS it sent), its runs (time, kind, ok/failed, detail), and a claim:
the due check and the claim are one compare-and-set, so two hosts of a shared
store never both fire it. A failed keep-alive logs a warning and writes a
``sim:keepalive-failed`` event (webhooks see it); a SIM whose last success is older
than its operator's ``expiry_days`` gets one ``sim:expiry-risk`` event per quiet
spell. An SMS keep-alive is a normal queued message pinned to its SIM (door
``keepalive``); its outcome is recorded once the message is sent or has failed.

The clock is injectable (``clock``): tests make days pass without sleeping.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from gsmgw.config import Config, KeepAliveConfig
from gsmgw.sms import preview
from gsmgw.store import NewMessage, Store

log = logging.getLogger(__name__)

DAY_S = 86400.0
CLAIM_S = 300.0  # how long a host holds a SIM's keep-alive while it runs (USSD waits up to its timeout)

Ussd = Callable[[str, str], Awaitable[str]]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class SimKeepAlive:
    """One SIM's keep-alive settings: [keepalive] with its [[keepalive.sim]] entry applied."""

    modem: str
    enabled: bool
    every_days: float
    action: Literal["sms", "ussd"]
    sms_to: str
    sms_text: str
    ussd: str
    expiry_days: float


def settings_for(k: KeepAliveConfig, modem_id: str) -> SimKeepAlive:
    e = next((s for s in k.sim if s.modem == modem_id), None)

    def pick(name: str) -> Any:
        v = getattr(e, name) if e is not None else None
        return v if v is not None else getattr(k, name)

    return SimKeepAlive(modem=modem_id, enabled=bool(pick("enabled")), every_days=float(pick("every_days")),
                        action=pick("action"), sms_to=pick("sms_to"), sms_text=pick("sms_text"),
                        ussd=pick("ussd"), expiry_days=float(pick("expiry_days")))


def _iso(t: dt.datetime | None) -> str | None:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if t is not None else None


class KeepAlive:
    """Looks at this host's SIMs every ``keepalive.check_interval_s`` (and on ``tick()``)."""

    def __init__(self, store: Store, config: Callable[[], Config], *,
                 modems: Callable[[], list[dict[str, Any]]], ussd: Ussd,
                 notify_work: Callable[[], None] = lambda: None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.store = store
        self.config = config
        self.modems = modems  # this host's modems (Pool.snapshot)
        self.ussd = ussd  # run a USSD code on a modem (the pool's inbound processor)
        self.notify_work = notify_work
        self.clock = clock
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:  # always: a config reload may turn keep-alive on
            self._task = asyncio.create_task(self._run(), name="keepalive")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("keep-alive check failed")
            # Shorter while an SMS keep-alive waits for its outcome.
            await asyncio.sleep(min(self.config().keepalive.check_interval_s, 60.0 if await self._pending() else 1e9))

    async def _pending(self) -> bool:
        try:
            return bool(await self.store.call(self.store.schedules.keepalive_pending))
        except Exception:
            return False

    async def tick(self) -> list[dict[str, Any]]:
        """Settle SMS keep-alives, fire those due, raise expiry alerts; the runs made."""
        async with self._lock:
            cfg = self.config()
            k = cfg.keepalive
            now = self.clock()
            for s in await self.store.call(self.store.schedules.settle_keepalive_sms, now):
                if s["ok"]:
                    log.info("modem %s: keep-alive SMS done: %s", s["modem_id"], s["detail"])
                else:
                    log.warning("modem %s: keep-alive SMS failed: %s", s["modem_id"], s["detail"])
            runs: list[dict[str, Any]] = []
            for m in self.modems():
                sim = settings_for(k, str(m["id"]))
                if not sim.enabled or m.get("state") != "ready" or not m.get("enabled", True):
                    continue
                claim = await self.store.call(
                    self.store.schedules.claim_keepalive, sim.modem, now,
                    due_before=now - dt.timedelta(days=sim.every_days),
                    retry_before=now - dt.timedelta(seconds=k.retry_after_s), lease_s=CLAIM_S)
                if claim is not None:
                    runs.append(await self._fire(sim, m, now, k))
            await self._expiry(cfg, now)
            return runs

    async def _fire(self, sim: SimKeepAlive, modem: dict[str, Any], now: dt.datetime,
                    k: KeepAliveConfig) -> dict[str, Any]:
        ident = {"iccid": modem.get("iccid") or None, "operator": modem.get("operator") or None}
        if sim.action == "ussd":
            try:
                text = await self.ussd(sim.modem, sim.ussd)
            except Exception as exc:  # ModemError, ATTimeout, a modem gone (KeyError): all a failure
                detail = f"USSD {sim.ussd} failed: {exc or type(exc).__name__}"
                log.warning("modem %s: keep-alive failed: %s", sim.modem, detail)
                await self.store.call(self.store.schedules.record_keepalive, sim.modem, "ussd", False, detail, now,
                                      event={**ident, "code": sim.ussd})
                return {"sim": sim.modem, "kind": "ussd", "ok": False, "detail": detail}
            detail = f"USSD {sim.ussd}: {text}"
            log.info("modem %s: keep-alive done: %s", sim.modem, detail)
            await self.store.call(self.store.schedules.record_keepalive, sim.modem, "ussd", True, detail, now)
            return {"sim": sim.modem, "kind": "ussd", "ok": True, "detail": detail}
        pv = preview(sim.sms_text)
        res = await self.store.call(
            self.store.messages.enqueue,
            [NewMessage(to_number=sim.sms_to, text=sim.sms_text, encoding=str(pv.encoding), parts_total=pv.parts,
                        transactional=True, sim_requested=sim.modem, priority=5, delivery_report=False,
                        valid_until=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=k.sms_ttl_s),
                        door="keepalive")],
            default_ttl_s=k.sms_ttl_s)
        detail = f"SMS to {sim.sms_to} queued"
        await self.store.call(self.store.schedules.record_keepalive, sim.modem, "sms", None, detail, now,
                              message_id=res.message_ids[0])
        self.notify_work()
        log.info("modem %s: keep-alive SMS queued (message %s)", sim.modem, res.message_ids[0])
        return {"sim": sim.modem, "kind": "sms", "ok": None, "detail": detail, "message_id": res.message_ids[0]}

    async def _expiry(self, cfg: Config, now: dt.datetime) -> None:
        sims = [settings_for(cfg.keepalive, m.id) for m in cfg.modem]
        watched = [s for s in sims if s.expiry_days > 0]
        if not watched:
            return
        rows = {r["modem_id"]: r for r in await self.store.call(self.store.schedules.keepalive_rows,
                                                                 [s.modem for s in watched], now)}
        for s in watched:
            r = rows[s.modem]
            base = r["last_success_at"] or r["first_seen_at"]
            quiet_days = (now - base).total_seconds() / DAY_S
            if quiet_days > s.expiry_days and r["expiry_alerted_at"] is None:
                payload = {"sim": s.modem, "last_success_at": _iso(r["last_success_at"]),
                           "quiet_days": round(quiet_days, 2), "expiry_days": s.expiry_days}
                if await self.store.call(self.store.schedules.alert_expiry, s.modem, now, payload):
                    log.warning("modem %s: no successful send or keep-alive for %.1f days, more than the "
                                "operator's expiry period of %g days: the SIM may be retired", s.modem, quiet_days,
                                s.expiry_days)

    async def status(self) -> list[dict[str, Any]]:
        """Per configured SIM: its settings, last success, last run, next due, expiry risk."""
        cfg = self.config()
        now = self.clock()
        sims = [settings_for(cfg.keepalive, m.id) for m in cfg.modem]
        rows = {r["modem_id"]: r for r in await self.store.call(self.store.schedules.keepalive_rows,
                                                                 [s.modem for s in sims], now)}
        out = []
        for s in sims:
            r = rows[s.modem]
            base = r["last_success_at"] or r["first_seen_at"]
            due = base + dt.timedelta(days=s.every_days)
            if r["last_attempt_at"] is not None and (r["last_success_at"] is None
                                                     or r["last_attempt_at"] > r["last_success_at"]):
                due = max(due, r["last_attempt_at"] + dt.timedelta(seconds=cfg.keepalive.retry_after_s))
            last = r["last_run"]
            out.append({
                "sim": s.modem, "enabled": s.enabled, "action": s.action,
                "target": s.ussd if s.action == "ussd" else s.sms_to, "every_days": s.every_days,
                "expiry_days": s.expiry_days or None,
                "last_success_at": _iso(r["last_success_at"]), "last_attempt_at": _iso(r["last_attempt_at"]),
                "next_due_at": _iso(due) if s.enabled else None,
                "pending": r["pending_run_id"] is not None,
                "expiry_risk": bool(s.expiry_days and (now - base).total_seconds() / DAY_S > s.expiry_days),
                "last_run": None if last is None else {
                    "at": _iso(last["at"]), "kind": last["kind"], "ok": last["ok"], "detail": last["detail"],
                    "message_id": last["message_id"], "host": last["host"]},
            })
        return out


__all__ = ["KeepAlive", "SimKeepAlive", "settings_for"]
