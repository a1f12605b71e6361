"""Issue 16, must show: for each quirk, the whole gateway over a real pty.

One emulated module with the quirk is the gateway's only modem. 20 messages go out and
5 come in (one of them in three parts, injected by the simulated network). Every message
must leave exactly once, every inbound message must be in the inbox exactly once, the
SIM storage must end empty, and /readyz must never say ready while the modem is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from gsmgw.domain import ModemState
from gsmgw.emulator import PERSONALITIES, Behaviour, FakeModemPool
from gsmgw.emulator.personality import Personality, with_quirks
from tests.helpers import Client, running_gateway
from tests.inbound.helpers import inbound_config, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

LONG = "Drei Teile, bitte genau einmal: " + "abcdefghij" * 36  # 3 parts, GSM 7-bit
INBOUND = [("+447700900801", "one"), ("+447700900802", "two"), ("+447700900803", LONG),
           ("+447700900804", "four"), ("+447700900805", "five")]

# (id, personality, behaviour): one per behaviour of issue 16.
CASES: list[tuple[str, Personality, Behaviour]] = [
    ("wavecom-cpin-without-ok", PERSONALITIES["wavecom_fastrack"], Behaviour()),
    ("sim800-sms-ready-after-boot", PERSONALITIES["simcom_sim800"], Behaviour(sms_ready_delay_s=1.5)),
    ("huawei-urc-storm-command-not-support", PERSONALITIES["huawei_e1550"], Behaviour()),
    ("transient-321-on-first-read", PERSONALITIES["simcom_sim800"], Behaviour(transient_read_error=321)),
    ("crcrlf-lower-hex-padded-ident",
     with_quirks(PERSONALITIES["quectel_ec25"], ["crcrlf", "lower-hex", "ident-spaces"]), Behaviour()),
]


async def _watch_readyz(c: Client, gw: Any, seen: list[tuple[int, ModemState, ModemState]],
                        stop: asyncio.Event) -> None:
    """Poll /readyz; note the modem state just before and just after each answer."""
    while not stop.is_set():
        before = gw.pool.slots["sim1"].driver.state
        status, _ = await c.request("GET", "/readyz", key=None)
        seen.append((status, before, gw.pool.slots["sim1"].driver.state))
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(("personality", "behaviour"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_quirky_module_end_to_end(tmp_path: Path, personality: Personality, behaviour: Behaviour) -> None:
    # Registration takes a moment on every module here, so "not ready yet" is observable.
    behaviour = dataclasses.replace(behaviour, registration_delay_s=0.5, send_latency_s=0.01)
    async with FakeModemPool(count=1, directory=tmp_path / "ports", report_delay_s=0.01,
                             personalities=[personality], behaviours=[behaviour]) as fake:
        sim = fake.modems[0].modem
        cfg = inbound_config(tmp_path, [str(fake.modems[0].path)], sweep_interval_s=3600.0)
        async with running_gateway(cfg) as (gw, c):
            seen: list[tuple[int, ModemState, ModemState]] = []
            stop = asyncio.Event()
            watcher = asyncio.create_task(_watch_readyz(c, gw, seen, stop))
            try:
                started = time.monotonic()
                await gw.pool.slots["sim1"].driver.wait_ready(15)
                ready_after_s = time.monotonic() - started
                await wait_until(lambda: any(s == 200 for s, _, _ in seen), what="/readyz 200")

                ids = []
                for i in range(20):
                    status, body = await c.request("POST", "/api/v1/messages",
                                                   json={"to": f"+4477009001{i:02d}", "text": f"quirk {i}"})
                    assert status == 202, body
                    ids.append(body["id"])
                for text_from, text in INBOUND:
                    sim.inject_sms(text_from, text)
                for mid in ids:
                    await c.wait_state(mid, {"delivered"}, timeout_s=20)
                await wait_until(lambda: _inbox_size(gw) >= 5, timeout_s=10, what="5 inbound messages")
                await wait_until(lambda: sim.storages[sim.mem[0]].used == 0, what="SIM storage drained")
                await asyncio.sleep(0.3)  # a duplicate read or resend would have shown by now
            finally:
                stop.set()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

            # Nothing sent twice: one SMS-SUBMIT per message, each destination once.
            destinations = [r.destination for r in sim.sent]
            assert sorted(destinations) == sorted(f"+4477009001{i:02d}" for i in range(20))
            # Every inbound message exactly once, the long one reassembled.
            status, inbox = await c.request("GET", "/api/v1/inbox?limit=50")
            assert status == 200, inbox
            got = sorted((m["from"], m["text"], m["complete"]) for m in inbox["items"])
            assert got == sorted((f, t, True) for f, t in INBOUND)
            # Healthy only when a modem is ready: never 200 while it was not.
            assert [s for s in seen if s[0] == 200 and ModemState.READY not in s[1:]] == []
            assert any(s[0] == 503 for s in seen) or ready_after_s < 0.05
            driver = gw.pool.slots["sim1"].driver
            assert driver.attempts == 0, driver.last_error  # never escalated to a reconnect or reboot


def _inbox_size(gw: Any) -> int:
    return len(gw.store.inbound.list_inbound(limit=50))
