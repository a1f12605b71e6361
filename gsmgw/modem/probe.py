"""Probe one port: bring the modem up once and report what works (``gsmgw probe``)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from gsmgw.at.channel import TraceHook
from gsmgw.at.parsers import parse_cpms_test
from gsmgw.config import ModemConfig
from gsmgw.domain import ModemIdentity, ModemState
from gsmgw.modem.device import Features, Modem
from gsmgw.modem.events import Health, StateChanged
from gsmgw.waits import wait_event


@dataclass
class ProbeReport:
    port: str
    state: ModemState
    reason: str = ""
    identity: ModemIdentity = field(default_factory=ModemIdentity)
    quirks: str = "generic"
    features: Features = field(default_factory=Features)
    health: Health | None = None
    elapsed_s: float = 0.0
    transitions: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return self.state is ModemState.READY

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["state"] = str(self.state)
        d["ready"] = self.ready
        return d


_TERMINAL = (ModemState.READY, ModemState.FAILED)


async def probe(settings: ModemConfig, *, timeout_s: float | None = None,
                trace: TraceHook | None = None) -> ProbeReport:
    """Run bring-up until READY, FAILED or ``timeout_s``; never retries a PIN."""
    # One attempt: no reconnect loop worth waiting for, no periodic health poll.
    settings = replace(settings, health_interval_s=3600.0, backoff_initial_s=3600.0, backoff_max_s=3600.0)
    budget_s = timeout_s if timeout_s is not None else settings.registration_timeout_s + settings.sim_ready_timeout_s + 30
    report = ProbeReport(port=settings.port, state=ModemState.DISCONNECTED)
    changed = asyncio.Event()
    stopping = False

    def on_state(event: StateChanged) -> None:
        if stopping:
            return  # run() ends with DISCONNECTED "stopped": keep what the probe reached
        report.transitions.append(f"{event.old} -> {event.new}: {event.reason}")
        report.state, report.reason = event.new, event.reason
        changed.set()

    def on_health(event: Health) -> None:
        if not stopping:
            report.health = event

    modem = Modem(settings, trace=trace)
    listeners = [modem.events.register(StateChanged, on_state), modem.events.register(Health, on_health)]
    started = time.monotonic()
    task = asyncio.create_task(modem.run(), name=f"modem probe {settings.port}")
    try:
        deadline = started + budget_s
        while report.state not in _TERMINAL and not task.done():
            # After a failed attempt run() sleeps for the (huge) backoff: that is the end.
            if modem.attempts:
                report.reason = modem.last_error
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                report.reason = f"gave up after {budget_s:g} s in state {report.state}"
                break
            changed.clear()
            await wait_event(changed, min(remaining, 0.05))
        report.identity = modem.identity
        report.quirks = modem.quirks.family
        report.features = modem.features
    finally:
        stopping = True
        await modem.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for listener in listeners:
            listener.remove()
    report.elapsed_s = time.monotonic() - started
    return report


def suggest_config(report: ProbeReport, *, pin: str | None = None) -> str:
    """A ``[[modem]]`` block for gsmgw.toml (keys of gsmgw.config.ModemConfig)."""
    ident = report.identity
    model = (ident.model or "modem").lower().replace(" ", "-").replace("_", "-")
    tail = (ident.imei or ident.iccid or "x")[-4:]
    lines = ["[[modem]]", f'id = "{model}-{tail}"']
    if ident.imei:
        lines.append(f'imei = "{ident.imei}"          # matched whatever ttyUSB number it gets')
        lines.append(f'# port = "{report.port}"    # or pin it to this port instead')
    else:
        lines.append(f'port = "{report.port}"')
    if ident.iccid:
        lines.append(f'# iccid = "{ident.iccid}"   # or follow the SIM instead of the modem')
    lines.append(f'pin = "{pin or ""}"' + ("" if pin else "                  # set if the SIM asks for one"))
    lines.append(f'sms_storage = "{_storage_choice(report)}"')
    lines.append("max_per_minute = 10          # operator fair-use limits; 0 = unlimited")
    lines.append("max_per_day = 1000")
    lines.append("send_timeout_s = 60.0")
    lines.append("health_interval_s = 30.0")
    return "\n".join(lines)


def _storage_choice(report: ProbeReport) -> str:
    """SIM storage if <mem1> offers it (or nothing is known), else the phone's, else MT."""
    try:
        offered = parse_cpms_test(report.features.storages)
    except ValueError:
        offered = []
    mem1 = offered[0] if offered else []
    if not mem1 or "SM" in mem1:
        return "SM"
    return "ME" if "ME" in mem1 else "MT"
