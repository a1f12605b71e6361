"""Modem tests run the real driver against the emulator over a REAL pseudo-terminal.

Timeouts are sub-second so the whole directory stays fast; every test ends by
checking that no task of ours is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gsmgw.config import ModemConfig
from gsmgw.emulator import PERSONALITIES, Behaviour, EmulatedModem, Network, PtyModem
from gsmgw.modem import Modem, StateChanged
from gsmgw.modem.events import ModemEvent
from gsmgw.sms import encode_submit

FAST = dict(
    command_timeout_s=0.5,
    prompt_timeout_s=2.0,  # a send that works must not fail on a loaded CI machine (a stall of 0.5 s was seen)
    send_timeout_s=0.5,
    registration_timeout_s=0.6,
    sim_ready_timeout_s=1.0,
    health_interval_s=0.2,
    backoff_initial_s=0.05,
    backoff_max_s=0.2,
    reboot_wait_s=0.1,
    max_consecutive_timeouts=3,
    list_timeout_s=1.0,
)


@dataclass
class Rig:
    pm: PtyModem
    em: EmulatedModem
    modem: Modem
    events: list[ModemEvent]
    trace: list[tuple[float, str, bytes]]
    task: asyncio.Task[None]
    extra: dict[str, Any] = field(default_factory=dict)

    def states(self) -> list[str]:
        return [str(e.new) for e in self.events if isinstance(e, StateChanged)]

    def written(self) -> bytes:
        return b"".join(b for _, d, b in self.trace if d == "tx")

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def submit_parts(to: str = "+15550000002", text: str = "hello", **kw: Any) -> list[tuple[str, int]]:
    msg = encode_submit(to, text, **kw)
    return [(p.pdu, p.tpdu_length) for p in msg.parts]


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """Poll ``predicate`` (state set by the driver's own tasks) until true or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    for _ in itertools.count():
        if predicate():
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.01)


@pytest.fixture
async def network() -> AsyncIterator[Network]:
    net = Network(report_delay_s=0.05)
    yield net
    await net.aclose()


@pytest.fixture
async def rig_factory(network: Network, tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    rigs: list[Rig] = []
    counter = 0

    async def make(
        personality: str = "simcom_sim800",
        behaviour: Behaviour | None = None,
        sim_pin: str | None = None,
        *,
        wait_ready: bool = True,
        **settings: Any,
    ) -> Rig:
        nonlocal counter
        counter += 1
        em = EmulatedModem(
            network=network,
            number=f"+1555000{counter:04d}",
            behaviour=behaviour or Behaviour(),
            pin=sim_pin,
            personality=PERSONALITIES[personality],
        )
        pm = PtyModem(em, tmp_path / f"ttyGSM{counter}")  # stable symlink, like udev's
        await pm.open()
        events: list[ModemEvent] = []
        trace: list[tuple[float, str, bytes]] = []
        kw = {**FAST, **settings}
        modem = Modem(
            ModemConfig(id=f"m{counter}", port=str(pm.path), **kw),  # type: ignore[arg-type]
            on_event=events.append,
            trace=lambda ts, d, b: trace.append((ts, d, b)),
        )
        task = asyncio.create_task(modem.run(), name=f"modem m{counter}")
        rig = Rig(pm, em, modem, events, trace, task)
        rigs.append(rig)
        if wait_ready:
            await modem.wait_ready(5.0)
        return rig

    yield make
    for rig in rigs:
        await rig.modem.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rig.task, 5.0)
        assert rig.task.done(), "Modem.run() did not end after stop()"
        rig.task.result()  # re-raise anything run() died of
        await rig.pm.close()
        await rig.em.aclose()
    # Tests fail on leaks: nothing of the driver may still be running.
    await asyncio.sleep(0)
    leftovers = [
        t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()
        and (t.get_name().startswith(("at-reader", "modem ", "cnma ")))
    ]
    assert not leftovers, f"tasks left running: {leftovers}"
