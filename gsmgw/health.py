"""Readiness: is this gateway able to do its job, and if not, why. Pure: no I/O, no clock.

``/healthz`` is liveness (the process answers). Readiness is what ``/readyz``,
``/health`` (Android compat), ``/api/v1/status`` and ``gsmgw status`` report:

* ``fail``: the store cannot be trusted (removed, replaced, unwritable, the host's
  lease lost), or no modem has been ready for longer than ``[health] modem_grace_s``;
* ``degraded``: it works, but less than configured: a modem not ready past the
  grace period, no modem ready yet (within the grace), none configured or all
  disabled, little disk left;
* ``ok``: otherwise.

Each reason is one sentence an operator can act on; modem reasons carry the
modem's own ``state_reason``/``last_error`` (port missing, port locked by another
program, SIM PIN needed, no network, recovery exhausted).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "degraded", "fail"]
_RANK = {"ok": 0, "degraded": 1, "fail": 2}


@dataclass(frozen=True, slots=True)
class ModemView:
    """What readiness needs to know of one modem."""

    id: str
    state: str
    enabled: bool = True
    reason: str = ""
    # Seconds since it was last ready (or since the gateway started); 0 when ready.
    not_ready_s: float = 0.0

    @property
    def ready(self) -> bool:
        return self.state == "ready"


@dataclass(frozen=True, slots=True)
class Readiness:
    status: Status = "ok"
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reasons": list(self.reasons)}


def _worse(a: Status, b: Status) -> Status:
    return a if _RANK[a] >= _RANK[b] else b


def _why(m: ModemView) -> str:
    return f"{m.id} {m.state}" + (f": {m.reason}" if m.reason else "")


def evaluate(
    *,
    modems: Sequence[ModemView],
    none_ready_s: float,
    grace_s: float,
    store_problem: str | None = None,
    store_warnings: Iterable[str] = (),
) -> Readiness:
    """Readiness from the facts; ``none_ready_s`` is how long no enabled modem has been ready."""
    status: Status = "ok"
    reasons: list[str] = []
    if store_problem:
        status = "fail"
        reasons.append(f"store: {store_problem}")
    for w in store_warnings:
        status = _worse(status, "degraded")
        reasons.append(f"store: {w}")
    enabled = [m for m in modems if m.enabled]
    if not modems:
        status = _worse(status, "degraded")
        reasons.append("no [[modem]] configured: messages are queued but nothing sends them")
    elif not enabled:
        status = _worse(status, "degraded")
        reasons.append("every modem is disabled: messages are queued but nothing sends them")
    elif not any(m.ready for m in enabled):
        details = "; ".join(_why(m) for m in enabled)
        if none_ready_s >= grace_s:
            status = "fail"
            reasons.append(f"no modem ready for {none_ready_s:.0f} s ({details})")
        else:
            status = _worse(status, "degraded")
            reasons.append(f"no modem ready yet ({none_ready_s:.0f} s of {grace_s:.0f} s grace; {details})")
    else:
        for m in enabled:
            if not m.ready and m.not_ready_s >= grace_s:
                status = _worse(status, "degraded")
                reasons.append(f"{_why(m)} (not ready for {m.not_ready_s:.0f} s)")
    return Readiness(status, tuple(reasons))


class ReadinessTracker:
    """Turns successive modem snapshots into ``not_ready_s`` times; the clock is given."""

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self._last_ready: dict[str, float] = {}
        self._any_ready_at: float | None = None

    def update(self, snapshot: Iterable[dict[str, Any]], now: float) -> tuple[list[ModemView], float]:
        views: list[ModemView] = []
        for m in snapshot:
            mid = str(m["id"])
            ready = m.get("state") == "ready"
            if ready:
                self._last_ready[mid] = now
                if m.get("enabled", True):
                    self._any_ready_at = now
            since = self._last_ready.get(mid, self.started_at)
            reason = str(m.get("state_reason") or "")
            last_error = str(m.get("last_error") or "")
            if last_error and last_error not in reason and not ready:
                reason = f"{reason}; last error: {last_error}" if reason else last_error
            views.append(ModemView(id=mid, state=str(m.get("state", "")), enabled=bool(m.get("enabled", True)),
                                   reason=reason, not_ready_s=0.0 if ready else max(0.0, now - since)))
        none_ready_s = max(0.0, now - (self._any_ready_at if self._any_ready_at is not None else self.started_at))
        if any(v.ready and v.enabled for v in views):
            none_ready_s = 0.0
        return views, none_ready_s
