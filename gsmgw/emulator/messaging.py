"""The SMS service of one emulated modem (TS 27.005): settings, submit, and the commands
that read, write and delete SMS storage.

State that belongs to the service lives here (the next TP-MR, +CMMS's idle deadline,
directly routed messages waiting for +CNMA); the settings a power cycle resets
(+CMGF, +CNMI, <mem1..3>, ...) live on the modem with the others.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gsmgw.emulator.storage import STAT_TEXT, StoredSms
from gsmgw.emulator.syntax import (
    BACKSPACE,
    CTRL_Z,
    ESC,
    MAX_TPDU_LENGTH,
    AtFail,
    Handler,
    Hung,
    int_arg,
    text_mode_time,
    unquote,
)
from gsmgw.errors import CodecError
from gsmgw.sms import Submit, decode_pdu, encode_submit

if TYPE_CHECKING:
    from gsmgw.emulator.modem import EmulatedModem


@dataclass
class SentRecord:
    """An SMS the modem accepted with ``+CMGS: <mr>``."""

    destination: str
    tp_mr: int
    pdu: str
    submit: Any
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class SmsService:
    def __init__(self, modem: EmulatedModem) -> None:
        self.m = modem
        self.next_mr = 0
        self.cmms_deadline = 0.0
        self.pending_acks: list[asyncio.TimerHandle] = []
        self.unsettled: set[tuple[str, int]] = set()
        """(memory, index) just announced whose first +CMGR fails (``Behaviour.transient_read_error``)."""

    def handlers(self) -> dict[str, Handler]:
        return {
            "+CSCA": self._csca,
            "+CMGF": self._cmgf,
            "+CSMS": self._csms,
            "+CPMS": self._cpms,
            "+CNMI": self._cnmi,
            "+CNMA": self._cnma,
            "+CMGS": self._cmgs,
            "+CMSS": self._cmss,
            "+CMGW": self._cmgw,
            "+CMMS": self._cmms_cmd,
            "+CMGL": self._cmgl,
            "+CMGR": self._cmgr,
            "+CMGD": self._cmgd,
            "+CSMP": self._csmp,
        }

    def cancel_acks(self) -> None:
        for h in self.pending_acks:
            h.cancel()
        self.pending_acks.clear()

    # --- settings ------------------------------------------------------------------

    async def _csca(self, kind: str, args: list[str]) -> list[str]:
        m = self.m
        if kind == "test":
            return []
        if kind == "read":
            m.require_sim(sms=True)
            ton = 145 if m.smsc.startswith("+") else 129
            return [f'+CSCA: "{m.smsc}",{ton}']
        if kind == "set" and args and args[0]:
            number = unquote(args[0])
            if not re.fullmatch(r"\+?\d{3,20}", number):
                raise AtFail("CMS", 304 if m.cmgf == 0 else 305)
            m.smsc = number
            return []
        raise AtFail()

    async def _cmgf(self, kind: str, args: list[str]) -> list[str]:
        m = self.m
        if kind == "test":
            return ["+CMGF: (0,1)"]
        if kind == "read":
            return [f"+CMGF: {m.cmgf}"]
        if kind == "set":
            m.cmgf = int_arg(args, 0, 0, hi=1)
            return []
        m.cmgf = 0
        return []

    async def _csms(self, kind: str, args: list[str]) -> list[str]:
        m = self.m
        if kind == "test":
            return ["+CSMS: (0,1)"]
        if kind == "read":
            return [f"+CSMS: {m.csms},1,1,1"]
        if kind == "set":
            m.csms = int_arg(args, 0, hi=1)
            return ["+CSMS: 1,1,1"]
        raise AtFail()

    async def _csmp(self, kind: str, args: list[str]) -> list[str]:
        if kind == "read":
            return ["+CSMP: 17,167,0,0"]
        return []

    async def _cpms(self, kind: str, args: list[str]) -> list[str]:
        m = self.m
        names = m.personality.storages
        quoted = ",".join(f'"{n}"' for n in names)
        if kind == "test":
            return [f"+CPMS: ({quoted}),({quoted}),({quoted})"]
        m.require_sim(sms=True)
        if kind == "read":
            parts = [f'"{mem}",{m.storages[mem].used},{m.storages[mem].capacity}' for mem in m.mem]
            return ["+CPMS: " + ",".join(parts)]
        if kind != "set" or not args or len(args) > 3:
            raise AtFail()
        wanted = [unquote(a).upper() for a in args]
        for i, mem in enumerate(wanted):
            if mem == "":
                continue
            if mem not in m.storages:
                raise AtFail("CMS", 302)
            m.mem[i] = mem
        pairs = [f"{m.storages[mem].used},{m.storages[mem].capacity}" for mem in m.mem]
        return ["+CPMS: " + ",".join(pairs)]

    async def _cnmi(self, kind: str, args: list[str]) -> list[str]:
        m = self.m
        if kind == "test":
            return ["+CNMI: (0-3),(0-3),(0,2),(0-2),(0,1)"]
        if kind == "read":
            return ["+CNMI: " + ",".join(str(v) for v in m.cnmi)]
        if kind != "set":
            raise AtFail()
        values = list(m.cnmi)
        limits = (3, 3, 3, 2, 1)
        for i, _ in enumerate(args[:5]):
            values[i] = int_arg(args, i, values[i], hi=limits[i])
        if len(args) > 5:
            raise AtFail("CMS", 303)
        if values[1] in (2, 3) or values[3] == 1:
            # TS 27.005 §3.4.1: direct routing needs <mode> 1/2; with +CSMS=1 it also
            # needs the TE to acknowledge (+CNMA).
            if values[0] == 0:
                raise AtFail("CMS", 303)
        m.cnmi = values
        if values[0] in (1, 2, 3) and m.ta_buffer:
            buffered, m.ta_buffer = m.ta_buffer, []
            if values[4] == 0:
                # <bfr> 0: flush the TA buffer to the TE (after this command's OK);
                # <bfr> 1: clear it.
                m.held_urcs.extend(buffered)
        return []

    async def _cnma(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return ["+CNMA: (0-2)"]
        if self.m.csms != 1 or not self.pending_acks:
            raise AtFail("CMS", 340)
        if kind == "set":
            int_arg(args, 0, 0, hi=2)
        self.pending_acks.pop(0).cancel()
        return []

    def await_ack(self, on_timeout: Callable[[], None]) -> None:
        """A directly routed +CMT/+CDS waits for +CNMA when +CSMS=1 (TS 27.005 §3.4.4)."""
        m = self.m
        if m.csms != 1:
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def expired() -> None:
            if handle in self.pending_acks:
                self.pending_acks.remove(handle)
            # TS 27.005 §3.4.4: without +CNMA in time the ME sets <mt> and <ds> to 0.
            m.cnmi[1] = 0
            m.cnmi[3] = 0
            on_timeout()

        handle = loop.call_later(m.behaviour.cnma_timeout_s, expired)
        self.pending_acks.append(handle)

    async def _cmms_cmd(self, kind: str, args: list[str]) -> list[str]:
        m = self.m
        if kind == "test":
            return ["+CMMS: (0-2)"]
        if kind == "read":
            if m.cmms == 1 and asyncio.get_running_loop().time() > self.cmms_deadline:
                m.cmms = 0  # TS 27.005 §3.5.6: mode 1 falls back to 0 after 1-5 s idle
            return [f"+CMMS: {m.cmms}"]
        if kind == "set":
            m.cmms = int_arg(args, 0, 0, hi=2)
            self.cmms_deadline = asyncio.get_running_loop().time() + 5.0
            return []
        raise AtFail()

    # --- submit and write ------------------------------------------------------------

    async def _read_text_entry(self) -> tuple[bytes, int]:
        m = self.m
        data = bytearray()
        while True:
            b = await m.getc()
            if b in (CTRL_Z, ESC):
                return bytes(data), b
            if m.echo:
                m.emit(bytes([b]))
            if b == BACKSPACE:
                if data:
                    data.pop()
                continue
            data.append(b)

    async def _cmgs(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return []
        if kind != "set" or not args or args[0] == "":
            raise AtFail()
        self.m.require_sim(sms=True)
        entry = await self._text_entry(args, submit_only=True)
        if entry is None:
            return []  # TS 27.005 §3.5.1: <ESC> quits without sending
        submit, pdu = entry
        return [f"+CMGS: {await self._transmit(submit, pdu)}"]

    async def _cmss(self, kind: str, args: list[str]) -> list[str]:
        """Send a stored message (TS 27.005 §3.5.2); it becomes STO SENT."""
        m = self.m
        if kind == "test":
            return []
        if kind != "set":
            raise AtFail()
        m.require_sim(sms=True)
        storage = m.storages[m.mem[1]]
        slot = storage.slot(int_arg(args, 0, hi=10_000))
        if len(args) > 1 and args[1] != "":
            raise AtFail("CMS", 303)  # a new <da> for a stored PDU is not supported here
        stored = storage.slots[slot]
        if stored is None:
            raise AtFail("CMS", 321)
        try:
            submit = decode_pdu(stored.pdu, tpdu_length=stored.tpdu_length)
        except CodecError:
            raise AtFail("CMS", 304) from None
        if not isinstance(submit, Submit):
            raise AtFail("CMS", 302)  # a received message cannot be sent
        mr = await self._transmit(submit, stored.pdu)
        stored.stat = 3
        return [f"+CMSS: {mr}"]

    async def _cmgw(self, kind: str, args: list[str]) -> list[str]:
        """Write a message to <mem2> (TS 27.005 §3.5.3): ``+CMGW: <index>``, or
        ``+CMS ERROR: 322`` when the memory is full."""
        m = self.m
        if kind == "test":
            return []
        m.require_sim(sms=True)
        storage = m.storages[m.mem[1]]
        if m.cmgf == 0:
            if kind != "set":
                raise AtFail()
            stat = int_arg(args, 1, 2, hi=3)
        else:
            stat_arg = unquote(args[2]).upper() if kind == "set" and len(args) > 2 else "STO UNSENT"
            if stat_arg not in STAT_TEXT[:4]:
                raise AtFail("CMS", 305)
            stat = STAT_TEXT.index(stat_arg)
            if kind != "set":
                args = [""]
        entry = await self._text_entry(args, submit_only=False)
        if entry is None:
            return []
        index = storage.store(StoredSms(stat, entry[1]))
        if index is None:
            raise AtFail("CMS", 322)
        return [f"+CMGW: {index}"]

    async def _text_entry(self, args: list[str], *, submit_only: bool) -> tuple[Any, str] | None:
        """The ``> `` prompt, then a PDU (PDU mode) or text (text mode) up to Ctrl-Z.
        Returns (decoded message, PDU hex with SMSC field) or None after <ESC>."""
        m = self.m
        if m.cmgf == 1:
            destination = unquote(args[0]) if args else ""
            if destination and not re.fullmatch(r"\+?\d{1,20}", destination):
                raise AtFail("CMS", 305)
            if not destination and submit_only:
                raise AtFail("CMS", 305)
        else:
            length = int_arg(args, 0, hi=10_000)
            if not 7 <= length <= MAX_TPDU_LENGTH:
                raise AtFail("CMS", 304)
        m.prompt()
        if m.behaviour.urc_after_prompt:
            m.emit(m.line(m.behaviour.urc_after_prompt))
        raw, terminator = await self._read_text_entry()
        if terminator == ESC:
            return None
        if m.cmgf == 1:
            return self._text_mode_submit(destination or m.number, raw)
        pdu = re.sub(rb"\s", b"", raw).decode("latin-1").upper()
        return self._decode_submit(pdu, length, submit_only=submit_only), pdu

    async def _transmit(self, submit: Any, pdu: str) -> int:
        """The radio part of a submit, with the behaviour's faults; returns TP-MR."""
        m = self.m
        if not m.registered:
            raise AtFail("CMS", 331)
        b = m.behaviour
        b.submits_seen += 1
        if b.drop_port_on_submit:
            await m.drop()
        if b.hang_on_submit:
            if b.hang_after_sending:
                self._accept(submit, pdu)
            raise Hung()
        latency_s = b.submit_latency_s(m.rng)
        if latency_s:
            # The radio round trip: URCs may arrive meanwhile, so release the hold.
            m.urc_hold -= 1
            m.flush_held()
            try:
                await asyncio.sleep(latency_s)
            finally:
                m.urc_hold += 1
        error = b.submit_error()
        if error is not None:
            raise AtFail("CMS", error)
        return self._accept(submit, pdu)

    def _decode_submit(self, pdu: str, length: int, *, submit_only: bool = True) -> Any:
        if not re.fullmatch(r"(?:[0-9A-F]{2})+", pdu):
            raise AtFail("CMS", 304)
        raw = bytes.fromhex(pdu)
        if len(raw) - 1 - raw[0] != length:
            # The <length> of AT+CMGS counts TPDU octets only (TS 27.005 §3.5.1).
            raise AtFail("CMS", 304)
        try:
            submit = decode_pdu(pdu, tpdu_length=length)
        except CodecError:
            raise AtFail("CMS", 304) from None
        if submit_only and not isinstance(submit, Submit):
            raise AtFail("CMS", 304)  # not an SMS-SUBMIT
        return submit

    def _text_mode_submit(self, destination: str, raw: bytes) -> tuple[Any, str]:
        text = raw.decode("latin-1")
        try:
            encoded = encode_submit(destination, text)
            if len(encoded.parts) != 1:
                raise AtFail("CMS", 305)  # text mode sends one SMS; longer text is refused
            pdu = encoded.parts[0].pdu
            raw_pdu = bytes.fromhex(pdu)
            submit = decode_pdu(pdu, tpdu_length=len(raw_pdu) - 1 - raw_pdu[0])
        except CodecError:
            raise AtFail("CMS", 305) from None
        return submit, pdu

    def _accept(self, submit: Any, pdu: str) -> int:
        m = self.m
        tp_mr = self.next_mr
        self.next_mr = (self.next_mr + 1) % 256
        m.sent.append(SentRecord(submit.destination, tp_mr, pdu, submit))
        if m.cmms == 1:
            self.cmms_deadline = asyncio.get_running_loop().time() + 5.0
        m.network.submit(m, submit, tp_mr)
        return tp_mr

    # --- reading and deleting ------------------------------------------------------

    def _stat_token(self, stat: int) -> str:
        return f'"{STAT_TEXT[stat]}"' if self.m.cmgf == 1 else str(stat)

    def _parse_stat(self, args: list[str]) -> int:
        if not args or args[0] == "":
            return 0  # default <stat>: REC UNREAD
        if self.m.cmgf == 1:
            token = unquote(args[0]).upper()
            if token not in STAT_TEXT:
                raise AtFail("CMS", 305)
            return STAT_TEXT.index(token)
        try:
            stat = int(args[0])
        except ValueError:
            raise AtFail("CMS", 304) from None
        if not 0 <= stat <= 4:
            raise AtFail("CMS", 304)
        return stat

    def _entry_lines(self, header: str, sms: StoredSms) -> list[str]:
        """PDU mode: ``<header>,[<alpha>],<length>`` then the PDU (TS 27.005 §3.4.2/§3.4.3).
        Text mode: ``<header>,<oa/da>,[<alpha>],<scts>`` then the text (SMS-DELIVER/SUBMIT)."""
        if self.m.cmgf == 0:
            return [f"{header},,{sms.tpdu_length}", self.m.pdu_out(sms.pdu)]
        try:
            decoded = decode_pdu(sms.pdu, tpdu_length=sms.tpdu_length)
        except CodecError:
            return [f"{header}", ""]
        address = getattr(decoded, "address", "")
        scts = getattr(decoded, "scts", None)
        when = f'"{text_mode_time(scts)}"' if isinstance(scts, datetime) else ""
        return [f'{header},"{address}","",{when}', str(getattr(decoded, "text", ""))]

    async def _cmgl(self, kind: str, args: list[str]) -> list[str]:
        m = self.m
        if kind == "test":
            if m.cmgf == 1:
                return ['+CMGL: ("REC UNREAD","REC READ","STO UNSENT","STO SENT","ALL")']
            return ["+CMGL: (0-4)"]
        m.require_sim(sms=True)
        stat = self._parse_stat(args) if kind == "set" else 0
        storage = m.storages[m.mem[0]]
        lines: list[str] = []
        for index, sms in storage.items():
            self.unsettled.discard((storage.name, index))  # listed: the write has completed
            if stat != 4 and sms.stat != stat:
                continue
            lines += self._entry_lines(f"+CMGL: {index},{self._stat_token(sms.stat)}", sms)
            if sms.stat == 0:
                sms.stat = 1  # listing REC UNREAD marks them read (TS 27.005 §3.4.2)
        return lines

    async def _cmgr(self, kind: str, args: list[str]) -> list[str]:
        m = self.m
        if kind == "test":
            return []
        if kind != "set":
            raise AtFail()
        m.require_sim(sms=True)
        storage = m.storages[m.mem[0]]
        index = int_arg(args, 0, hi=10_000)
        i = storage.slot(index)
        code = m.behaviour.transient_read_error
        if (storage.name, index) in self.unsettled:
            self.unsettled.discard((storage.name, index))
            if code is not None:
                raise AtFail("CMS", code)
        sms = storage.slots[i]
        if sms is None:
            if m.personality.empty_cmgr_ok:
                return []
            raise AtFail("CMS", 321)
        lines = self._entry_lines(f"+CMGR: {self._stat_token(sms.stat)}", sms)
        if sms.stat == 0:
            sms.stat = 1
        return lines

    async def _cmgd(self, kind: str, args: list[str]) -> list[str]:
        m = self.m
        if kind == "test":
            storage = m.storages[m.mem[0]]
            used = ",".join(str(i) for i, _ in storage.items())
            return [f"+CMGD: ({used}),(0-4)"]
        if kind != "set":
            raise AtFail()
        m.require_sim(sms=True)
        storage = m.storages[m.mem[0]]
        index = int_arg(args, 0, hi=10_000)
        delflag = int_arg(args, 1, 0, hi=4)
        if delflag == 0:
            storage.slots[storage.slot(index)] = None
            self.unsettled.discard((storage.name, index))
        else:
            # TS 27.005 §3.5.4 <delflag>: 1 read, 2 read+sent, 3 read+sent+unsent, 4 all.
            doomed = {1: {1}, 2: {1, 3}, 3: {1, 2, 3}, 4: {0, 1, 2, 3}}[delflag]
            for i, sms in enumerate(storage.slots):
                if sms is not None and sms.stat in doomed:
                    storage.slots[i] = None
        m.radio.memory_available()
        return []
