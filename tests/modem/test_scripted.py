"""Driver paths the emulator does not model, against a scripted peer on a real pty.

The peer answers from a table of real wire strings (Quectel EC2x AT manual
AT+QPINC, asterisk-chan-quectel PR #75); anything else gets ERROR.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from gsmgw.config import ModemConfig
from gsmgw.domain import ModemState
from gsmgw.modem import Modem, StateChanged
from tests.at.conftest import Peer
from tests.modem.conftest import FAST, wait_for

EC25_LOCKED = {
    "AT+CGMI": "Quectel",
    "AT+CGMM": "EC25",
    "AT+CGMR": "Revision: EC25EFAR06A04M4G",  # gammu #492
    "AT+CPIN?": "+CPIN: SIM PIN",
}


class AutoResponder:
    def __init__(self, peer: Peer, table: dict[str, str]) -> None:
        self.peer = peer
        self.table = table
        self.commands: list[str] = []
        self.task = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        while True:
            raw = await self.peer.expect(b"\r", timeout_s=30)
            command = raw.decode().strip("\r\n")
            self.commands.append(command)
            if command in self.table:
                answer = self.table[command]
                self.peer.write(f"\r\n{answer}\r\n\r\nOK\r\n".encode() if answer else b"\r\nOK\r\n")
            elif command in ("AT", "ATE0", "ATV1", "AT+CMEE=1"):
                self.peer.write(b"\r\nOK\r\n")
            else:
                self.peer.write(b"\r\nERROR\r\n")

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    p = Peer()
    try:
        yield p
    finally:
        p.unplug()


@pytest.fixture
async def run_modem(peer: Peer) -> AsyncIterator[object]:
    started: list[tuple[Modem, asyncio.Task[None], AutoResponder]] = []

    async def start(table: dict[str, str], **settings: object) -> tuple[Modem, AutoResponder, list[StateChanged]]:
        responder = AutoResponder(peer, table)
        events: list[StateChanged] = []
        modem = Modem(
            ModemConfig(id="scripted", port=peer.path, **{**FAST, **settings}),  # type: ignore[arg-type]
            on_event=lambda e: events.append(e) if isinstance(e, StateChanged) else None,
        )
        task = asyncio.create_task(modem.run())
        started.append((modem, task, responder))
        return modem, responder, events

    yield start
    for modem, task, responder in started:
        await modem.stop()
        await asyncio.wait_for(task, 3.0)
        await responder.close()


async def test_quectel_one_pin_attempt_left_is_not_risked(run_modem) -> None:  # type: ignore[no-untyped-def]
    modem, responder, events = await run_modem({**EC25_LOCKED, 'AT+QPINC="SC"': '+QPINC: "SC",1,10'}, pin="1234")
    await wait_for(lambda: modem.state is ModemState.FAILED)
    assert modem.quirks.family == "quectel"
    assert 'AT+QPINC="SC"' in responder.commands
    assert not any(c.startswith('AT+CPIN="') for c in responder.commands)
    assert "1 PIN attempt" in events[-1].reason
    assert modem.identity.firmware == "EC25EFAR06A04M4G"


async def test_quectel_three_attempts_pin_sent_once(run_modem) -> None:  # type: ignore[no-untyped-def]
    table = {**EC25_LOCKED, 'AT+QPINC="SC"': '+QPINC: "SC",3,10'}
    modem, responder, _ = await run_modem(table, pin="1234", backoff_max_s=0.05)
    # The scripted SIM refuses the PIN with plain ERROR (not in the table).
    await wait_for(lambda: modem.state is ModemState.FAILED)
    await wait_for(lambda: responder.commands.count("AT+CPIN?") >= 3)
    assert responder.commands.count('AT+CPIN="1234"') == 1


async def test_quectel_prefers_direct_status_reports(run_modem) -> None:  # type: ignore[no-untyped-def]
    table = {
        **EC25_LOCKED,
        "AT+CPIN?": "+CPIN: READY",
        "AT+CGSN": "866714043053668",
        "AT+CMGF=0": "",
        "AT+CPMS=\"SM\",\"SM\",\"SM\"": "+CPMS: 0,50,0,50,0,50",
        "AT+CNMI=2,1,0,1,0": "",
        "AT+CEREG?": "+CEREG: 0,1",  # luci-app-modeminfo #45: LTE-only registration
        "AT+CREG?": "+CREG: 0,0",
        "AT+CIMI": "460022670845816",
        "AT+QCCID": "+QCCID: 89860318740228643657",
        "AT+COPS?": '+COPS: 0,2,"25099",7',
        "AT+CSQ": "+CSQ: 30,99",
        "AT+CPMS?": '+CPMS: "SM",0,50,"SM",0,50,"SM",0,50',
    }
    modem, responder, _ = await run_modem(table)
    await modem.wait_ready(3.0)
    assert modem.features.cnmi == "AT+CNMI=2,1,0,1,0"
    assert "AT+CNMI=2,1,0,2,0" not in responder.commands
    assert modem.identity.iccid == "89860318740228643657"
    assert modem.registration is not None and modem.registration.kind == "CEREG"
    assert modem.signal_dbm == -53
