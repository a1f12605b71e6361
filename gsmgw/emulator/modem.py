"""One emulated modem: a V.250 / TS 27.007 / TS 27.005 AT interpreter with per-modem state.

The modem is transport-agnostic: :meth:`EmulatedModem.feed` gives it the bytes the
client wrote, and it writes its answers through the sink installed with
:meth:`EmulatedModem.attach` (the pty layer in :mod:`gsmgw.emulator.pty`). It must run
inside an asyncio event loop: it keeps one task interpreting input and one writing
output, so that latencies, trickled output and unsolicited result codes interleave the
way they do on a serial line.

This module is the terminal adapter: power, bytes in and out, command-line syntax,
final result codes and URC timing. What the commands do is elsewhere, by concern:
:mod:`~gsmgw.emulator.commands` (the command table and general commands),
:mod:`~gsmgw.emulator.messaging` (the SMS service over :mod:`~gsmgw.emulator.storage`)
and :mod:`~gsmgw.emulator.radio` (registration and traffic from the network).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from gsmgw.emulator.behaviour import Behaviour
from gsmgw.emulator.commands import build_command_table
from gsmgw.emulator.messaging import SentRecord, SmsService
from gsmgw.emulator.network import Network
from gsmgw.emulator.personality import DEFAULT_PERSONALITY, Personality
from gsmgw.emulator.radio import Radio
from gsmgw.emulator.storage import STAT_TEXT, Storage, StoredSms
from gsmgw.emulator.syntax import (
    BACKSPACE,
    CME_TEXT,
    CMS_TEXT,
    AtFail,
    Dropped,
    Handler,
    Hung,
    Unsupported,
    split_args,
)
from gsmgw.emulator.transcript import Transcript
from gsmgw.sms import encode_deliver

log = logging.getLogger(__name__)

__all__ = ["STAT_TEXT", "AtFail", "EmulatedModem", "SentRecord", "Storage", "StoredSms", "luhn_complete"]

SimState = Literal["READY", "SIM PIN", "SIM PUK", "BLOCKED"]


def luhn_complete(digits: str) -> str:
    """Append the Luhn check digit (IMEI, ICCID)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return digits + str((10 - total % 10) % 10)

class EmulatedModem:
    """A GSM modem with a SIM, attached to a :class:`Network`."""

    def __init__(
        self,
        *,
        network: Network,
        number: str,
        imei: str | None = None,
        iccid: str | None = None,
        imsi: str | None = None,
        operator: str | None = None,
        personality: Personality | None = None,
        behaviour: Behaviour | None = None,
        pin: str | None = None,
        puk: str = "12345678",
        storage_capacity: dict[str, int] | None = None,
        transcript_path: Path | None = None,
        smsc: str | None = None,
        seed: int | None = None,
    ) -> None:
        if not re.fullmatch(r"\+?\d{3,15}", number):
            raise ValueError(f"number must be E.164 digits, got {number!r}")
        if pin is not None and not re.fullmatch(r"\d{4,8}", pin):
            raise ValueError(f"pin must be 4-8 digits, got {pin!r}")
        if not re.fullmatch(r"\d{8}", puk):
            raise ValueError(f"puk must be 8 digits, got {puk!r}")
        self.network = network
        self.number = number
        tail = re.sub(r"\D", "", number)[-8:].rjust(8, "0")
        self.imei = imei or luhn_complete("35" + "40" + "12" + tail)
        self.iccid = iccid or luhn_complete("8901010000" + tail)
        self.imsi = imsi or (network.mcc_mnc + tail.rjust(15 - len(network.mcc_mnc), "0"))
        self.operator = operator or network.operator
        self.personality = personality or DEFAULT_PERSONALITY
        self.behaviour = behaviour or Behaviour()
        self.pin = pin
        self.puk = puk
        self.smsc = smsc or network.smsc
        self.rng = random.Random(seed if seed is not None else int(re.sub(r"\D", "", number)))
        capacity = storage_capacity or {"SM": 30, "ME": 40}
        for mem in capacity:
            if mem not in self.personality.storages:
                raise ValueError(
                    f"storage {mem!r} not offered by {self.personality.key} "
                    f"(has {', '.join(self.personality.storages)})"
                )
        self.storages = {
            mem: Storage(mem, capacity.get(mem, 20), self.personality.first_index)
            for mem in self.personality.storages
        }
        self.sent: list[SentRecord] = []
        self.transcript = Transcript(transcript_path) if transcript_path else None
        self.on_drop: Callable[[], None] | None = None
        """Installed by the transport: called when a behaviour drops the port."""

        self._sink: Callable[[bytes], None] | None = None
        self._inbuf = bytearray()
        self._in_event = asyncio.Event()
        self._outq: list[bytes] = []
        self._out_event = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._main_tasks: list[asyncio.Task[Any]] = []
        self._last_line = ""
        self.sim_state: SimState = "SIM PIN" if pin else "READY"
        self.pin_tries_left = 3
        self.puk_tries_left = 10
        self.ta_buffer: list[str] = []
        """+CNMI <mode> 0: indications buffered in the TA."""
        self.urc_hold = 0
        """While > 0 (a command line or a text entry is under way) URCs are held back."""
        self.held_urcs: list[str] = []
        self.curc = 1
        self.registration = 0
        self.sms_ready = True
        """False from boot until the SMS-ready URC when ``Behaviour.sms_ready_delay_s`` is set."""
        self._no_final = False
        self.sms = SmsService(self)
        self.radio = Radio(self)
        self._sms_commands = frozenset(self.sms.handlers())
        self._reset_settings()
        self.cfun = 1
        if self.behaviour.storage_full:
            self.fill_storage()
        network.attach(self)
        self._handlers: dict[str, Handler] = build_command_table(self)

    # The TP-MR counter and the +CMMS deadline belong to the SMS service; tests poke them here.
    @property
    def _next_mr(self) -> int:
        return self.sms.next_mr

    @_next_mr.setter
    def _next_mr(self, value: int) -> None:
        self.sms.next_mr = value

    @property
    def _cmms_deadline(self) -> float:
        return self.sms.cmms_deadline

    @_cmms_deadline.setter
    def _cmms_deadline(self, value: float) -> None:
        self.sms.cmms_deadline = value

    # ------------------------------------------------------------------ lifecycle

    @property
    def attached(self) -> bool:
        return self._sink is not None

    def attach(self, sink: Callable[[bytes], None]) -> None:
        """Connect the output to a transport and power the modem on (boot URCs follow)."""
        if self._sink is not None:
            raise RuntimeError("modem is already attached")
        self._sink = sink
        self._inbuf.clear()
        self._outq.clear()
        if self.transcript is not None:
            self.transcript.record("event", b"power on")
        self._main_tasks = [
            asyncio.get_running_loop().create_task(self._interpret(), name=f"emu-in-{self.number}"),
            asyncio.get_running_loop().create_task(self._writer(), name=f"emu-out-{self.number}"),
        ]
        self.power_cycle()

    async def detach(self) -> None:
        """Power off: stop interpreting, drop pending output and timers."""
        if self._sink is not None and self.transcript is not None:
            self.transcript.record("event", b"power off")
        self._sink = None
        tasks = [*self._main_tasks, *self._tasks]
        self._main_tasks = []
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.radio.noise_task = None
        self.sms.cancel_acks()
        self.registration = 0

    async def aclose(self) -> None:
        await self.detach()
        self.network.detach(self)
        if self.transcript is not None:
            self.transcript.close()

    def feed(self, data: bytes) -> None:
        """Bytes the client wrote to the port."""
        if self.transcript is not None:
            self.transcript.record("in", data)
        if self._sink is None:
            return
        self._inbuf.extend(data)
        self._in_event.set()

    def fill_storage(self, mem: str | None = None) -> None:
        """Fill a memory with read messages (the 'storage full' behaviour)."""
        parts = encode_deliver("+15559990000", "old message", scts=datetime.now(UTC), smsc=self.smsc)
        pdu = parts[0] if isinstance(parts, list) else parts
        for name in [mem] if mem else list(self.storages):
            storage = self.storages[name]
            while storage.store(StoredSms(1, pdu)) is not None:
                pass

    def spawn(self, coro: Awaitable[Any], *, name: str | None = None) -> asyncio.Task[Any]:
        """A background task of this modem: cancelled at power-off, failures logged."""
        task = asyncio.get_running_loop().create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("emulated modem %s: task failed", self.number, exc_info=task.exception())

    def _reset_settings(self) -> None:
        """Power-on / ATZ defaults (the factory profile)."""
        b = self.behaviour
        self.echo = True if b.echo is None else b.echo
        self.verbose = True
        self.quiet = False
        self.cmee = self.personality.cmee_default
        self.cmgf = 0
        self.csms = 0
        self.creg_n = 0
        self.cgreg_n: dict[str, int] = {}
        self.cnmi = [2, 1, 0, 0, 0]
        self.mem = ["SM", "SM", "SM"] if "SM" in self.storages else [next(iter(self.storages))] * 3
        self.cscs = "IRA"
        self.cmms = 0
        self.cusd_n = 0
        self.cops_format = 0

    def power_cycle(self) -> None:
        """What happens at power-on and AT+CFUN=1,1: settings reset, SIM re-locks, re-register."""
        self._reset_settings()
        self.cfun = 1
        self.ta_buffer.clear()  # a reboot loses what the TA had buffered
        self.radio.set_registration(0, announce=False)
        if self.pin is not None and self.sim_state == "READY":
            self.sim_state = "SIM PIN"
        self.curc = 1
        self.spawn(self._boot())

    async def _boot(self) -> None:
        if self.behaviour.boot_delay_s:
            await asyncio.sleep(self.behaviour.boot_delay_s)
        cpin = self.sim_state if self.sim_state != "BLOCKED" else "SIM PUK"
        banners = [line.format(cpin=cpin, imei=self.imei) for line in self.personality.boot_urcs]
        delay_s = self.behaviour.sms_ready_delay_s
        if delay_s > 0:
            # SIM800: RDY, +CPIN: READY, Call Ready at once; SMS commands answer ERROR
            # until "SMS Ready", which comes when the SMS stack has finished booting.
            self.sms_ready = False
            ready = self.personality.sms_ready_urc
            later = banners[banners.index(ready):] if ready in banners else []
            banners = banners[: len(banners) - len(later)]
            self.spawn(self._sms_ready_after(delay_s, later))
        for line in banners:
            # Boot banners are sent whatever CMEE/CREG say: the module speaks before the
            # host has configured anything.
            self.urc(line, force=True)
        self.radio.start_noise()
        if self.sim_state == "READY":
            await self.radio.register()

    async def _sms_ready_after(self, delay_s: float, banners: list[str]) -> None:
        await asyncio.sleep(delay_s)
        self.sms_ready = True
        for line in banners:
            self.urc(line, force=True)

    @property
    def registered(self) -> bool:
        return self.radio.registered

    def require_sim(self, *, sms: bool = False) -> None:
        state = self.sim_state
        if state == "READY":
            return
        if sms:
            raise AtFail("CMS", 311 if state == "SIM PIN" else 316)
        raise AtFail("CME", 11 if state == "SIM PIN" else 12)

    # ------------------------------------------------------------------ output

    def emit(self, data: bytes) -> None:
        if self._sink is None:
            return
        self._outq.append(data)
        self._out_event.set()

    async def _writer(self) -> None:
        while True:
            await self._out_event.wait()
            self._out_event.clear()
            while self._outq:
                data = self._outq.pop(0)
                trickle = self.behaviour.trickle_s
                if trickle:
                    for i in range(len(data)):
                        self._write_now(data[i : i + 1])
                        await asyncio.sleep(trickle)
                else:
                    self._write_now(data)

    def _write_now(self, data: bytes) -> None:
        if self._sink is None:
            return
        if self.transcript is not None:
            self.transcript.record("out", data)
        self._sink(data)

    def line(self, text: str) -> bytes:
        """One response line framed per ATV (TS 27.007 §4.1: ``<CR><LF>text<CR><LF>``)."""
        framed = f"\r\n{text}\r\n" if self.verbose else f"{text}\r\n"
        eol = self.personality.line_ending
        if eol != "\r\n":
            framed = framed.replace("\r\n", eol)
        return framed.encode("latin-1")

    def prompt(self) -> None:
        """The ``> `` that asks for the PDU or text (TS 27.005 §3.5.1), after any URC storm."""
        self.storm()
        self.emit(f"{self.personality.line_ending}> ".encode("latin-1"))

    def storm(self) -> None:
        """``Behaviour.urc_storm`` vendor URCs at once, ignoring the hold (Huawei ^RSSI/^MODE)."""
        n = self.behaviour.urc_storm
        if n is None:
            n = self.personality.urc_storm
        lines = self.personality.storm_urcs or self.personality.periodic_urcs
        for i in range(n if lines else 0):
            self.emit(self.line(lines[i % len(lines)].format(rssi=self.radio.rssi())))

    def pdu_out(self, pdu: str) -> str:
        """A PDU as this module shows it (some print lower-case hex)."""
        return pdu.lower() if self.personality.lower_case_hex else pdu

    def urc(self, line: str, *, force: bool = False) -> None:
        """Send an unsolicited result code (held while a text entry or a response is under way)."""
        if self.urc_hold and not force:
            self.held_urcs.append(line)
            return
        self.emit(self.line(line))

    def indication(self, *lines: str) -> None:
        """+CMTI/+CMT/+CDS/+CDSI routed per +CNMI <mode> (TS 27.005 §3.4.1)."""
        if self.cnmi[0] == 0:
            # <mode> 0: buffer in the TA; the oldest are dropped when the buffer is full.
            self.ta_buffer.append("\r\n".join(lines))
            del self.ta_buffer[:-64]
            return
        if len(lines) == 2:
            # Two-line URC: header line then the PDU on its own line.
            self._urc_pair(lines[0], lines[1])
        else:
            self.urc(lines[0])

    def _urc_pair(self, header: str, pdu: str) -> None:
        if self.urc_hold:
            self.held_urcs.append(f"{header}\r\n{pdu}")
            return
        self.emit(self.line(f"{header}\r\n{pdu}"))

    def flush_held(self) -> None:
        held, self.held_urcs = self.held_urcs, []
        for line in held:
            self.emit(self.line(line))

    # ------------------------------------------------------------------ input

    async def getc(self) -> int:
        while not self._inbuf:
            self._in_event.clear()
            await self._in_event.wait()
        b = self._inbuf[0]
        del self._inbuf[0]
        return b

    async def _interpret(self) -> None:
        line = bytearray()
        try:
            while True:
                b = await self.getc()
                if self.echo:
                    self.emit(bytes([b]))
                if b == 0x0D:
                    text = line.decode("latin-1")
                    line.clear()
                    await self._command_line(text)
                elif b == BACKSPACE:
                    if line:
                        line.pop()
                elif b == 0x0A and not line:
                    continue  # LF after CR
                else:
                    line.append(b)
                    # V.250 §5.2.4: "A/" repeats the previous command line, no CR needed.
                    if bytes(line).lstrip(b"\n ").upper() == b"A/":
                        line.clear()
                        await self._command_line(self._last_line)
        except Dropped:
            return

    async def _command_line(self, text: str) -> None:
        idx = text.upper().find("AT")
        if idx < 0:
            return  # V.250: anything that is not a command line is ignored
        body = text[idx + 2 :]
        self._last_line = text[idx:]
        if self.behaviour.garbage_before_response:
            self.emit(self.behaviour.garbage_before_response)
        self.urc_hold += 1
        self._no_final = False
        try:
            await self._execute(body)
            if not self._no_final:
                self.storm()
                self._final("OK")
        except Hung:
            pass  # the "hang on submit" behaviour: no final result at all
        except AtFail as fail:
            self._final_error(fail)
        finally:
            self.urc_hold -= 1
            if not self.urc_hold:
                self.flush_held()

    def _final(self, result: str) -> None:
        if self.quiet:
            return
        if self.verbose:
            self.emit(self.line(result))
        else:
            codes = {"OK": "0", "ERROR": "4", "CONNECT": "1", "NO CARRIER": "3"}
            self.emit(f"{codes.get(result, result)}\r".encode("latin-1"))

    def _final_error(self, fail: AtFail) -> None:
        if isinstance(fail, Unsupported):
            self._final(self.personality.unknown_command_reply)
            return
        if fail.kind == "ERROR":
            self._final("ERROR")
            return
        # TS 27.007 §9.1 +CMEE: 0 plain ERROR, 1 numeric, 2 verbose. TS 27.005 §3.2.5
        # makes +CMS ERROR a final result on its own; the same <n> picks numeric/verbose.
        if fail.kind == "CME" and self.cmee == 0:
            self._final("ERROR")
            return
        table = CME_TEXT if fail.kind == "CME" else CMS_TEXT
        value: str | int = fail.code
        if self.cmee == 2:
            value = table.get(fail.code, "unknown error")
        self.emit(self.line(f"+{fail.kind} ERROR: {value}"))

    def info(self, lines: list[str]) -> None:
        if not lines:
            return
        urc = self.behaviour.urc_in_response
        if urc:
            # Between information lines, or between the only one and the final result.
            half = max(1, len(lines) // 2)
            self.emit(self.line("\r\n".join(lines[:half])))
            self.emit(self.line(urc))
            if lines[half:]:
                self.emit(self.line("\r\n".join(lines[half:])))
            return
        self.emit(self.line("\r\n".join(lines)))

    async def _execute(self, body: str) -> None:
        pos = 0
        n = len(body)
        while pos < n:
            ch = body[pos]
            if ch in " ;":
                pos += 1
                continue
            if ch in "+^$#*%":
                m = re.match(r"[+^$#*%][A-Za-z0-9!%\-./:_]+", body[pos:])
                if m is None:
                    raise AtFail()
                name = m.group(0).upper()
                pos += len(name)
                rest = body[pos:]
                if rest.startswith("=?"):
                    kind, args, pos = "test", [], pos + 2
                elif rest.startswith("?"):
                    kind, args, pos = "read", [], pos + 1
                elif rest.startswith("="):
                    end = pos + 1
                    quoted = False
                    while end < n and (quoted or body[end] != ";"):
                        if body[end] == '"':
                            quoted = not quoted
                        end += 1
                    kind, args, pos = "set", split_args(body[pos + 1 : end]), end
                else:
                    kind, args = "exec", []
                await self._extended(name, kind, args)
            else:
                pos = self._basic(body, pos)

    def _basic(self, body: str, pos: int) -> int:
        """One basic (V.250 §6) command; returns the position after it."""
        m = re.match(r"(&?[A-Za-z])(\d*)", body[pos:])
        if m is None:
            raise AtFail()
        cmd = m.group(1).upper()
        val = int(m.group(2)) if m.group(2) else 0
        end = pos + len(m.group(0))
        if cmd == "S":
            sm = re.match(r"[Ss](\d+)(\?|=(\d*))?", body[pos:])
            if sm is None:
                raise AtFail()
            if sm.group(2) == "?":
                self.info([{3: "013", 4: "010", 5: "008"}.get(int(sm.group(1)), "000")])
            return pos + len(sm.group(0))
        if cmd == "E":
            self.echo = bool(val)
        elif cmd == "V":
            self.verbose = bool(val)
        elif cmd == "Q":
            self.quiet = bool(val)
        elif cmd in ("Z", "&F"):
            self._reset_settings()
        elif cmd == "I":
            self.info([line.format(imei=self.imei) for line in self.personality.ati_lines])
        elif cmd in ("&W", "&C", "&D", "&K", "X", "L", "M", "H", "&V"):
            pass
        else:
            raise AtFail()
        return end

    async def _extended(self, name: str, kind: str, args: list[str]) -> None:
        drop = self.behaviour.drop_port_on_command
        handler = self._handlers.get(name)
        if handler is None:
            if name in self.personality.vendor_ok_commands:
                return
            raise Unsupported()
        if not self.sms_ready and name in self._sms_commands:
            raise AtFail()  # SIM800 before "SMS Ready": plain ERROR, whatever +CMEE says
        lines = await handler(kind, args)
        form = name + {"read": "?", "test": "=?", "set": "="}.get(kind, "")
        if form in self.personality.info_without_final:
            self._no_final = True
        if drop and drop.upper() == name:
            # Half an answer, then the port vanishes (a USB reset mid-command).
            half = "\r\n".join(lines)[: max(1, len("\r\n".join(lines)) // 2)]
            self.emit(b"\r\n" + half.encode("latin-1"))
            await self.drop()
        self.info(lines)

    async def drop(self) -> None:
        # Let the writer flush what was emitted so far, then pull the plug.
        for _ in range(100):
            if not self._outq:
                break
            await asyncio.sleep(0.001)
        if self.on_drop is not None:
            self.on_drop()
        raise Dropped()

    # ------------------------------------------------------------------ network side (tests)

    def set_registration(self, stat: int) -> None:
        """Change coverage now (tests): 1 home, 5 roaming, 2 searching, 3 denied, 0 none.
        +CREG/+CGREG/+CEREG URCs follow per their <n>; SMS held by the network arrive
        once registered again."""
        if stat not in (0, 1, 2, 3, 4, 5):
            raise ValueError(f"registration status must be 0..5 (TS 27.007 +CREG <stat>), got {stat}")
        self.behaviour.registration = stat
        if self.cfun == 1 and self.sim_state == "READY":
            self.radio.set_registration(stat)

    def inject_sms(self, from_number: str, text: str) -> None:
        """An inbound SMS as if the network delivered it (all parts for long text)."""
        self.radio.inject_sms(from_number, text)

    def deliver_from_network(self, pdu: str) -> bool:
        """An SMS-DELIVER (hex, SMSC field included) arrives; False if it could not be taken."""
        return self.radio.deliver_from_network(pdu)

    def deliver_status_report(self, pdu: str) -> None:
        """An SMS-STATUS-REPORT (hex, SMSC field included) arrives, routed per +CNMI <ds>."""
        self.radio.deliver_status_report(pdu)
