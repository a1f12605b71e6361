"""The network side of one emulated modem: registration, periodic radio noise, and SMS or
status reports arriving from the simulated network (routed per +CNMI, TS 27.005 §3.4.1).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gsmgw.emulator.storage import StoredSms
from gsmgw.sms import encode_deliver

if TYPE_CHECKING:
    from gsmgw.emulator.modem import EmulatedModem


class Radio:
    def __init__(self, modem: EmulatedModem) -> None:
        self.m = modem
        self.pending_from_network: list[str] = []
        """SMS-DELIVER PDUs the SC holds back (modem away, or memory full until RP-SMMA)."""
        self.noise_task: asyncio.Task[None] | None = None

    # --- registration -----------------------------------------------------------

    @property
    def registered(self) -> bool:
        m = self.m
        return m.registration in (1, 5) and m.cfun == 1

    async def register(self) -> None:
        m = self.m
        if m.cfun != 1 or m.sim_state != "READY":
            return
        target = m.behaviour.registration
        if target in (1, 5):
            self.set_registration(2)
            if m.behaviour.registration_delay_s:
                await asyncio.sleep(m.behaviour.registration_delay_s)
        if m.cfun == 1 and m.sim_state == "READY":
            self.set_registration(target)

    def set_registration(self, stat: int, *, announce: bool = True) -> None:
        m = self.m
        changed = stat != m.registration
        m.registration = stat
        if changed and announce:
            if m.creg_n:
                m.urc(self.creg_urc("+CREG", m.creg_n))
            for name, n in m.cgreg_n.items():
                if n:
                    m.urc(self.creg_urc(name, n))
        if self.registered and self.pending_from_network:
            pending, self.pending_from_network = self.pending_from_network, []
            for pdu in pending:
                self.deliver_from_network(pdu)

    def creg_urc(self, name: str, n: int) -> str:
        m = self.m
        if n == 2 and self.registered:
            return f'{name}: {m.registration},"1A2B","00C0FFEE"'
        return f"{name}: {m.registration}"

    def rssi(self) -> int:
        return self.m.behaviour.rssi if self.registered else 99

    # --- periodic noise ---------------------------------------------------------

    def start_noise(self) -> None:
        m = self.m
        if m.personality.periodic_urcs and self.noise_task is None:
            self.noise_task = m.spawn(self._periodic_noise(), name=f"emu-noise-{m.number}")

    async def _periodic_noise(self) -> None:
        m = self.m
        interval = m.personality.periodic_urc_interval_s
        while interval > 0:
            await asyncio.sleep(interval)
            if m.curc:
                for line in m.personality.periodic_urcs:
                    m.urc(line.format(rssi=self.rssi()), force=True)

    # --- traffic from the network -------------------------------------------------

    def inject_sms(self, from_number: str, text: str) -> None:
        m = self.m
        parts = encode_deliver(from_number, text, scts=datetime.now(UTC), smsc=m.network.smsc)
        for pdu in [parts] if isinstance(parts, str) else parts:
            self.deliver_from_network(pdu)

    def deliver_from_network(self, pdu: str) -> bool:
        m = self.m
        if not m.attached or not self.registered:
            self.pending_from_network.append(pdu)
            return True  # the SC stores and forwards it once the SIM is back
        tpdu_length = StoredSms(0, pdu).tpdu_length
        mt = m.cnmi[1]
        if mt in (2, 3):
            m.indication(f"+CMT: ,{tpdu_length}", m.pdu_out(pdu))
            m.sms.await_ack(lambda: self.store_inbound(pdu))
            return True
        return self.store_inbound(pdu)

    def store_inbound(self, pdu: str, *, status_report: bool = False) -> bool:
        m = self.m
        mem = m.mem[2]
        storage = m.storages[mem]
        index = storage.store(StoredSms(0, pdu, is_status_report=status_report))
        if index is None:
            # TS 27.005 §3.4.1: no +CMTI is possible; the network is told "memory
            # capacity exceeded" (TS 24.011 RP-ERROR cause 22) and the SMS is lost to us.
            if m.personality.storage_full_urc:
                m.urc(m.personality.storage_full_urc.format(mem=mem))
            return False
        if m.behaviour.transient_read_error is not None:
            m.sms.unsettled.add((mem, index))
        if status_report:
            if m.cnmi[3] == 2:
                m.indication(f'+CDSI: "{mem}",{index}')
        elif m.cnmi[1] in (1, 2, 3):
            m.indication(f'+CMTI: "{mem}",{index}')
        return True

    def deliver_status_report(self, pdu: str) -> None:
        m = self.m
        if not m.attached:
            return
        ds = m.cnmi[3]
        if ds == 1:
            tpdu_length = StoredSms(0, pdu).tpdu_length
            m.indication(f"+CDS: {tpdu_length}", m.pdu_out(pdu))
            m.sms.await_ack(lambda: None)
        elif ds == 2:
            self.store_inbound(pdu, status_report=True)

    def memory_available(self) -> None:
        """TS 24.011 RP-SMMA: once memory frees up the network retries what it held back."""
        if self.pending_from_network and self.registered:
            pending, self.pending_from_network = self.pending_from_network, []
            for pdu in pending:
                self.deliver_from_network(pdu)
