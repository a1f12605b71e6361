"""The readiness evaluator (pure): ok / degraded / fail, each with the reasons an operator acts on."""

from __future__ import annotations

import pytest

from gsmgw.health import ModemView, ReadinessTracker, evaluate

GRACE_S = 120.0


def _ready(mid: str) -> ModemView:
    return ModemView(mid, "ready")


@pytest.mark.parametrize(
    ("modems", "none_ready_s", "store_problem", "warnings", "status", "needles"),
    [
        ([_ready("sim1"), _ready("sim2")], 0.0, None, [], "ok", []),
        # One of two down past the grace period: still sending, but less than configured.
        ([_ready("sim1"), ModemView("sim2", "disconnected", reason="port: /dev/x is missing", not_ready_s=300)],
         0.0, None, [], "degraded", ["sim2 disconnected: port: /dev/x is missing", "300 s"]),
        # ...within the grace period it is not reported (a re-registration is normal).
        ([_ready("sim1"), ModemView("sim2", "registering", not_ready_s=5)], 0.0, None, [], "ok", []),
        # None ready, within the grace: degraded with every modem's cause.
        ([ModemView("sim1", "sim_locked", reason="SIM PIN required", not_ready_s=10)], 10.0, None, [],
         "degraded", ["no modem ready yet", "sim1 sim_locked: SIM PIN required"]),
        # None ready past the grace: fail.
        ([ModemView("sim1", "failed", reason="recovery exhausted; no network: not registered", not_ready_s=200),
          ModemView("sim2", "disconnected", reason="port: /dev/y is locked by another program", not_ready_s=200)],
         200.0, None, [], "fail", ["no modem ready for 200 s", "recovery exhausted", "locked by another program"]),
        # A disabled modem is the operator's choice, not a fault.
        ([_ready("sim1"), ModemView("sim2", "disconnected", enabled=False, not_ready_s=999)], 0.0, None, [],
         "ok", []),
        ([ModemView("sim1", "ready", enabled=False)], 999.0, None, [], "degraded", ["every modem is disabled"]),
        ([], 999.0, None, [], "degraded", ["no [[modem]] configured"]),
        # The store outranks everything.
        ([_ready("sim1")], 0.0, "the store /x.db was removed while the gateway was running", [], "fail",
         ["store: the store /x.db was removed"]),
        ([_ready("sim1")], 0.0, None, ["only 100 KiB free"], "degraded", ["store: only 100 KiB free"]),
    ],
)
def test_evaluate(modems: list[ModemView], none_ready_s: float, store_problem: str | None,
                  warnings: list[str], status: str, needles: list[str]) -> None:
    r = evaluate(modems=modems, none_ready_s=none_ready_s, grace_s=GRACE_S, store_problem=store_problem,
                 store_warnings=warnings)
    assert r.status == status, r
    text = " | ".join(r.reasons)
    for needle in needles:
        assert needle in text, text
    if status == "ok":
        assert r.reasons == ()
    assert r.to_dict() == {"status": status, "reasons": list(r.reasons)}


def test_tracker_counts_from_start_and_from_the_last_ready_moment() -> None:
    t = ReadinessTracker(started_at=1000.0)
    down = {"id": "sim1", "state": "disconnected", "enabled": True,
            "state_reason": "port: /dev/x is missing", "last_error": ""}
    views, none_ready_s = t.update([down], now=1050.0)
    assert none_ready_s == 50.0 and views[0].not_ready_s == 50.0
    assert views[0].reason == "port: /dev/x is missing"
    views, none_ready_s = t.update([{**down, "state": "ready", "state_reason": "registered"}], now=1100.0)
    assert none_ready_s == 0.0 and views[0].not_ready_s == 0.0
    views, none_ready_s = t.update([{**down, "last_error": "cms:500 unknown error"}], now=1130.0)
    assert none_ready_s == 30.0 and views[0].not_ready_s == 30.0
    assert views[0].reason == "port: /dev/x is missing; last error: cms:500 unknown error"
