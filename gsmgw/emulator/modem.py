"""One emulated modem: a V.250 / TS 27.007 / TS 27.005 AT interpreter with per-modem state.

The modem is transport-agnostic: :meth:`EmulatedModem.feed` gives it the bytes the
client wrote, and it writes its answers through the sink installed with
:meth:`EmulatedModem.attach` (the pty layer in :mod:`gsmgw.emulator.pty`). It must run
inside an asyncio event loop: it keeps one task interpreting input and one writing
output, so that latencies, trickled output and unsolicited result codes interleave the
way they do on a serial line.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from gsmgw.emulator.behaviour import Behaviour
from gsmgw.emulator.network import Network
from gsmgw.emulator.personality import DEFAULT_PERSONALITY, Personality
from gsmgw.emulator.transcript import Transcript
from gsmgw.errors import CodecError
from gsmgw.sms import Submit, decode_pdu, encode_deliver, encode_submit, gsm7

log = logging.getLogger(__name__)

CTRL_Z = 0x1A
ESC = 0x1B
BACKSPACE = 0x08
MAX_TPDU_LENGTH = 164
"""Largest SMS-SUBMIT TPDU (TS 23.040 §9.2.2.2): first octet, MR, DA (12), PID, DCS, VP (7),
UDL and 140 octets of UD = 164."""

# TS 27.007 §9.2 (+CME ERROR) verbose texts for the codes the emulator uses.
CME_TEXT: dict[int, str] = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    16: "incorrect password",
    20: "memory full",
    21: "invalid index",
    30: "no network service",
    50: "Incorrect parameters",
    100: "unknown",
}
# TS 27.005 §3.2.5 (+CMS ERROR) verbose texts; 0..255 are network causes (TS 24.011 / 23.040).
CMS_TEXT: dict[int, str] = {
    21: "Short message transfer rejected",
    27: "Destination out of service",
    28: "Unidentified subscriber",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Congestion",
    47: "Resources unavailable, unspecified",
    300: "ME failure",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    311: "SIM PIN required",
    313: "SIM failure",
    316: "SIM PUK required",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    340: "no +CNMA acknowledgement expected",
    500: "unknown error",
}

# TS 27.005 §3.1 <stat> in PDU mode and text mode.
STAT_TEXT = ("REC UNREAD", "REC READ", "STO UNSENT", "STO SENT", "ALL")

SimState = Literal["READY", "SIM PIN", "SIM PUK", "BLOCKED"]


class AtFail(Exception):
    """A command's final result is an error."""

    def __init__(self, kind: Literal["ERROR", "CME", "CMS"] = "ERROR", code: int = 0) -> None:
        super().__init__(f"{kind} {code}")
        self.kind = kind
        self.code = code


class _Dropped(Exception):
    """The port went away while a command was running; stop interpreting."""


@dataclass
class StoredSms:
    stat: int
    """0 REC UNREAD, 1 REC READ, 2 STO UNSENT, 3 STO SENT (TS 27.005 §3.1)."""
    pdu: str
    """Hex PDU including the SMSC address field, as +CMGR/+CMGL show it."""
    is_status_report: bool = False

    @property
    def tpdu_length(self) -> int:
        raw = bytes.fromhex(self.pdu)
        return len(raw) - 1 - raw[0]


class Storage:
    """One message memory ("SM", "ME") with a fixed number of slots."""

    def __init__(self, name: str, capacity: int, first_index: int) -> None:
        if capacity < 1:
            raise ValueError(f"storage {name}: capacity must be >= 1, got {capacity}")
        self.name = name
        self.capacity = capacity
        self.first_index = first_index
        self.slots: list[StoredSms | None] = [None] * capacity

    @property
    def used(self) -> int:
        return sum(1 for s in self.slots if s is not None)

    def store(self, sms: StoredSms) -> int | None:
        for i, slot in enumerate(self.slots):
            if slot is None:
                self.slots[i] = sms
                return i + self.first_index
        return None

    def slot(self, index: int) -> int:
        i = index - self.first_index
        if not 0 <= i < self.capacity:
            raise AtFail("CMS", 321)
        return i

    def items(self) -> list[tuple[int, StoredSms]]:
        return [(i + self.first_index, s) for i, s in enumerate(self.slots) if s is not None]


@dataclass
class SentRecord:
    """An SMS the modem accepted with ``+CMGS: <mr>``."""

    destination: str
    tp_mr: int
    pdu: str
    submit: Any
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


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


def _split_args(text: str) -> list[str]:
    """Split ``1,"SM","a,b"`` on commas outside quotes; quotes are kept."""
    args: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
            cur.append(ch)
        elif ch == "," and not quoted:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if quoted:
        raise AtFail()
    args.append("".join(cur).strip())
    return args


def _unquote(arg: str) -> str:
    if len(arg) >= 2 and arg[0] == '"' and arg[-1] == '"':
        return arg[1:-1]
    return arg


def _int_arg(args: list[str], i: int, default: int | None = None, *, lo: int = 0, hi: int = 255) -> int:
    if i >= len(args) or args[i] == "":
        if default is None:
            raise AtFail()
        return default
    try:
        value = int(args[i])
    except ValueError:
        raise AtFail() from None
    if not lo <= value <= hi:
        raise AtFail()
    return value


Handler = Callable[[str, list[str]], Awaitable[list[str]]]


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
        self._next_mr = 0
        self._sim_state: SimState = "SIM PIN" if pin else "READY"
        self._pin_tries_left = 3
        self._puk_tries_left = 10
        self._pending_from_network: list[str] = []
        self._pending_acks: list[asyncio.TimerHandle] = []
        self._ta_buffer: list[str] = []
        self._urc_hold = 0
        self._held_urcs: list[str] = []
        self._last_line = ""
        self._cmms_deadline = 0.0
        self._curc = 1
        self._noise_task: asyncio.Task[None] | None = None
        self.registration = 0
        self._reset_settings()
        self.cfun = 1
        if self.behaviour.storage_full:
            self.fill_storage()
        network.attach(self)
        self._handlers: dict[str, Handler] = self._build_handlers()

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
        self._power_cycle()

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
        self._noise_task = None
        for h in self._pending_acks:
            h.cancel()
        self._pending_acks.clear()
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

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

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

    def _power_cycle(self) -> None:
        """What happens at power-on and AT+CFUN=1,1: settings reset, SIM re-locks, re-register."""
        self._reset_settings()
        self.cfun = 1
        self._ta_buffer.clear()  # a reboot loses what the TA had buffered
        self._set_registration(0, announce=False)
        if self.pin is not None and self._sim_state == "READY":
            self._sim_state = "SIM PIN"
        self._curc = 1
        self._spawn(self._boot())

    async def _boot(self) -> None:
        if self.behaviour.boot_delay_s:
            await asyncio.sleep(self.behaviour.boot_delay_s)
        cpin = self._sim_state if self._sim_state != "BLOCKED" else "SIM PUK"
        for line in self.personality.boot_urcs:
            # Boot banners are sent whatever CMEE/CREG say: the module speaks before the
            # host has configured anything.
            self._urc(line.format(cpin=cpin, imei=self.imei), force=True)
        if self.personality.periodic_urcs and self._noise_task is None:
            self._noise_task = asyncio.get_running_loop().create_task(
                self._periodic_noise(), name=f"emu-noise-{self.number}")
            self._tasks.add(self._noise_task)
            self._noise_task.add_done_callback(self._task_done)
        if self._sim_state == "READY":
            await self._register()

    async def _register(self) -> None:
        if self.cfun != 1 or self._sim_state != "READY":
            return
        target = self.behaviour.registration
        if target in (1, 5):
            self._set_registration(2)
            if self.behaviour.registration_delay_s:
                await asyncio.sleep(self.behaviour.registration_delay_s)
        if self.cfun == 1 and self._sim_state == "READY":
            self._set_registration(target)

    def _set_registration(self, stat: int, *, announce: bool = True) -> None:
        changed = stat != self.registration
        self.registration = stat
        if changed and announce:
            if self.creg_n:
                self._urc(self._creg_urc("+CREG", self.creg_n))
            for name, n in self.cgreg_n.items():
                if n:
                    self._urc(self._creg_urc(name, n))
        if self.registered and self._pending_from_network:
            pending, self._pending_from_network = self._pending_from_network, []
            for pdu in pending:
                self.deliver_from_network(pdu)

    @property
    def registered(self) -> bool:
        return self.registration in (1, 5) and self.cfun == 1

    def _creg_urc(self, name: str, n: int) -> str:
        if n == 2 and self.registered:
            return f'{name}: {self.registration},"1A2B","00C0FFEE"'
        return f"{name}: {self.registration}"

    async def _periodic_noise(self) -> None:
        interval = self.personality.periodic_urc_interval_s
        while interval > 0:
            await asyncio.sleep(interval)
            if self._curc:
                for line in self.personality.periodic_urcs:
                    self._urc(line.format(rssi=self._rssi()), force=True)

    def _rssi(self) -> int:
        return self.behaviour.rssi if self.registered else 99

    # ------------------------------------------------------------------ output

    def _emit(self, data: bytes) -> None:
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

    def _line(self, text: str) -> bytes:
        return (f"\r\n{text}\r\n" if self.verbose else f"{text}\r\n").encode("latin-1")

    def _urc(self, line: str, *, force: bool = False) -> None:
        """Send an unsolicited result code (held while a text entry or a response is under way)."""
        if self._urc_hold and not force:
            self._held_urcs.append(line)
            return
        self._emit(self._line(line))

    def _indication(self, *lines: str) -> None:
        """+CMTI/+CMT/+CDS/+CDSI routed per +CNMI <mode> (TS 27.005 §3.4.1)."""
        if self.cnmi[0] == 0:
            # <mode> 0: buffer in the TA; the oldest are dropped when the buffer is full.
            self._ta_buffer.append("\r\n".join(lines))
            del self._ta_buffer[:-64]
            return
        if len(lines) == 2:
            # Two-line URC: header line then the PDU on its own line.
            self._urc_pair(lines[0], lines[1])
        else:
            self._urc(lines[0])

    def _urc_pair(self, header: str, pdu: str) -> None:
        if self._urc_hold:
            self._held_urcs.append(f"{header}\r\n{pdu}")
            return
        self._emit(self._line(f"{header}\r\n{pdu}"))

    def _flush_held(self) -> None:
        held, self._held_urcs = self._held_urcs, []
        for line in held:
            self._emit(self._line(line))

    # ------------------------------------------------------------------ input

    async def _getc(self) -> int:
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
                b = await self._getc()
                if self.echo:
                    self._emit(bytes([b]))
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
        except _Dropped:
            return

    async def _command_line(self, text: str) -> None:
        idx = text.upper().find("AT")
        if idx < 0:
            return  # V.250: anything that is not a command line is ignored
        body = text[idx + 2 :]
        self._last_line = text[idx:]
        if self.behaviour.garbage_before_response:
            self._emit(self.behaviour.garbage_before_response)
        self._urc_hold += 1
        try:
            await self._execute(body)
            self._final("OK")
        except _Hung:
            pass  # the "hang on submit" behaviour: no final result at all
        except AtFail as fail:
            self._final_error(fail)
        finally:
            self._urc_hold -= 1
            if not self._urc_hold:
                self._flush_held()

    def _final(self, result: str) -> None:
        if self.quiet:
            return
        if self.verbose:
            self._emit(self._line(result))
        else:
            codes = {"OK": "0", "ERROR": "4", "CONNECT": "1", "NO CARRIER": "3"}
            self._emit(f"{codes.get(result, result)}\r".encode("latin-1"))

    def _final_error(self, fail: AtFail) -> None:
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
        self._emit(self._line(f"+{fail.kind} ERROR: {value}"))

    def _info(self, lines: list[str]) -> None:
        if not lines:
            return
        urc = self.behaviour.urc_in_response
        if urc:
            # Between information lines, or between the only one and the final result.
            half = max(1, len(lines) // 2)
            self._emit(self._line("\r\n".join(lines[:half])))
            self._emit(self._line(urc))
            if lines[half:]:
                self._emit(self._line("\r\n".join(lines[half:])))
            return
        self._emit(self._line("\r\n".join(lines)))

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
                    kind, args, pos = "set", _split_args(body[pos + 1 : end]), end
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
                self._info([{3: "013", 4: "010", 5: "008"}.get(int(sm.group(1)), "000")])
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
            self._info([line.format(imei=self.imei) for line in self.personality.ati_lines])
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
            raise AtFail()
        lines = await handler(kind, args)
        if drop and drop.upper() == name:
            # Half an answer, then the port vanishes (a USB reset mid-command).
            half = "\r\n".join(lines)[: max(1, len("\r\n".join(lines)) // 2)]
            self._emit(b"\r\n" + half.encode("latin-1"))
            await self._drop()
        self._info(lines)

    async def _drop(self) -> None:
        # Let the writer flush what was emitted so far, then pull the plug.
        for _ in range(100):
            if not self._outq:
                break
            await asyncio.sleep(0.001)
        if self.on_drop is not None:
            self.on_drop()
        raise _Dropped()

    # ------------------------------------------------------------------ commands

    def _build_handlers(self) -> dict[str, Handler]:
        p = self.personality
        h: dict[str, Handler] = {
            "+CGMI": self._ident(lambda: p.cgmi_prefix + p.manufacturer),
            "+GMI": self._ident(lambda: p.manufacturer),
            "+CGMM": self._ident(lambda: p.cgmm_prefix + p.model),
            "+GMM": self._ident(lambda: p.model),
            "+CGMR": self._ident(lambda: p.cgmr_prefix + p.revision),
            "+GMR": self._ident(lambda: p.revision),
            "+CGSN": self._ident(lambda: self.imei),
            "+GSN": self._ident(lambda: self.imei),
            "+GCAP": self._ident(lambda: "+GCAP: +CGSM"),
            "+CIMI": self._cimi,
            "+CNUM": self._cnum,
            "+CMEE": self._cmee,
            "+CPIN": self._cpin,
            "+CSQ": self._csq,
            "+CREG": self._creg,
            "+COPS": self._cops,
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
            "+CUSD": self._cusd,
            "+CFUN": self._cfun,
            "+CSCS": self._cscs,
            "+CSMP": self._csmp,
            # Plain settings: stored and read back, no effect on the emulation.
            "+CSDH": self._setting("+CSDH", "0", "(0,1)"),
            "+IPR": self._setting("+IPR", "115200", "(),(0,9600,19200,38400,57600,115200,230400,460800)"),
            "+IFC": self._setting("+IFC", "0,0", "(0-2),(0-2)"),
            "+CMER": self._setting("+CMER", "0,0,0,0,0", "(0-3),(0),(0),(0-2),(0,1)"),
            "+CLIP": self._setting("+CLIP", "0,1", "(0,1)"),
        }
        for cmd, prefix in p.iccid_commands:
            # Huawei spells it AT^ICCID? (read form); SIMCom/Quectel use the action form.
            h[cmd] = self._ident(lambda prefix=prefix: prefix + self.iccid,  # type: ignore[misc]
                                 forms=("read",) if cmd.startswith("^") else ("exec",))
        for cmd in p.extra_registration_commands:
            h[cmd] = self._make_xreg(cmd)
        if p.curc_command:
            h[p.curc_command] = self._curc_cmd
        return h

    def _ident(self, value: Callable[[], str], *, forms: tuple[str, ...] = ("exec",)) -> Handler:
        async def handler(kind: str, args: list[str]) -> list[str]:
            if kind == "test":
                return []
            if kind not in forms:
                raise AtFail()
            return [value()]

        return handler

    def _setting(self, name: str, default: str, supported: str) -> Handler:
        values = {"value": default}

        async def handler(kind: str, args: list[str]) -> list[str]:
            if kind == "read":
                return [f"{name}: {values['value']}"]
            if kind == "test":
                return [f"{name}: {supported}"]
            if kind == "set":
                if not all(re.fullmatch(r"\d*", a) for a in args):
                    raise AtFail()
                values["value"] = ",".join(args)
            return []

        return handler

    def _require_sim(self, *, sms: bool = False) -> None:
        state = self._sim_state
        if state == "READY":
            return
        if sms:
            raise AtFail("CMS", 311 if state == "SIM PIN" else 316)
        raise AtFail("CME", 11 if state == "SIM PIN" else 12)

    async def _cimi(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return []
        if kind != "exec":
            raise AtFail()
        self._require_sim()
        return [self.imsi]

    async def _cnum(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return []
        if kind != "exec":
            raise AtFail()
        self._require_sim()
        ton = 145 if self.number.startswith("+") else 129
        return [f'+CNUM: "","{self.number}",{ton}']

    async def _cmee(self, kind: str, args: list[str]) -> list[str]:
        if kind == "read":
            return [f"+CMEE: {self.cmee}"]
        if kind == "test":
            return ["+CMEE: (0-2)"]
        if kind == "set":
            self.cmee = _int_arg(args, 0, 0, hi=2)
            return []
        self.cmee = 0
        return []

    async def _cpin(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return []
        if kind == "read":
            if self._sim_state == "BLOCKED":
                raise AtFail("CME", 13)
            return [f"+CPIN: {self._sim_state}"]
        if kind != "set" or not args or not args[0]:
            raise AtFail()
        code = _unquote(args[0])
        if self._sim_state == "READY":
            # TS 27.007 §8.3: a PIN entered when none is asked for is an error.
            raise AtFail("CME", 3)
        if self._sim_state == "BLOCKED":
            raise AtFail("CME", 13)
        if self._sim_state == "SIM PIN":
            if code != self.pin:
                self._pin_tries_left -= 1
                if self._pin_tries_left <= 0:
                    self._sim_state = "SIM PUK"
                    self._urc("+CPIN: SIM PUK", force=True)
                raise AtFail("CME", 16)
            self._sim_ready()
            return []
        # SIM PUK: AT+CPIN=<puk>,<newpin>
        if len(args) < 2 or not re.fullmatch(r"\d{4,8}", _unquote(args[1])):
            raise AtFail("CME", 12)
        if code != self.puk:
            self._puk_tries_left -= 1
            if self._puk_tries_left <= 0:
                self._sim_state = "BLOCKED"
            raise AtFail("CME", 16)
        self.pin = _unquote(args[1])
        self._sim_ready()
        return []

    def _sim_ready(self) -> None:
        self._sim_state = "READY"
        self._pin_tries_left = 3
        self._puk_tries_left = 10
        for line in self.personality.after_pin_urcs:
            self._urc(line)
        self._spawn(self._register())

    async def _csq(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return ["+CSQ: (0-31,99),(0-7,99)"]
        if kind != "exec":
            raise AtFail()
        return [f"+CSQ: {self._rssi()},99"]

    async def _creg(self, kind: str, args: list[str]) -> list[str]:
        return await self._xreg("+CREG", kind, args)

    def _make_xreg(self, name: str) -> Handler:
        async def handler(kind: str, args: list[str]) -> list[str]:
            return await self._xreg(name, kind, args)

        return handler

    async def _xreg(self, name: str, kind: str, args: list[str]) -> list[str]:
        n = self.creg_n if name == "+CREG" else self.cgreg_n.get(name, 0)
        if kind == "test":
            return [f"{name}: (0-2)"]
        if kind == "read":
            stat = self.registration if self._sim_state == "READY" else 0
            if n == 2 and self.registered:
                return [f'{name}: {n},{stat},"1A2B","00C0FFEE"']
            return [f"{name}: {n},{stat}"]
        if kind == "set":
            n = _int_arg(args, 0, 0, hi=2)
            if name == "+CREG":
                self.creg_n = n
            else:
                self.cgreg_n[name] = n
            return []
        raise AtFail()

    async def _cops(self, kind: str, args: list[str]) -> list[str]:
        net = self.network
        if kind == "test":
            return [f'+COPS: (2,"{self.operator}","{net.operator_short}","{net.mcc_mnc}"),,(0-4),(0-2)']
        if kind == "read":
            if not self.registered:
                return ["+COPS: 0"]
            name = {0: self.operator, 1: net.operator_short, 2: net.mcc_mnc}[self.cops_format]
            act = "" if self.personality.act is None else f",{self.personality.act}"
            return [f'+COPS: 0,{self.cops_format},"{name}"{act}']
        if kind == "set":
            mode = _int_arg(args, 0, 0, hi=4)
            if len(args) > 1 and args[1] != "":
                self.cops_format = _int_arg(args, 1, hi=2)
            if mode == 2:
                self._set_registration(0)
            elif mode in (0, 1, 4) and not self.registered and self._sim_state == "READY":
                self._spawn(self._register())
            return []
        return []

    async def _csca(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return []
        if kind == "read":
            self._require_sim(sms=True)
            ton = 145 if self.smsc.startswith("+") else 129
            return [f'+CSCA: "{self.smsc}",{ton}']
        if kind == "set" and args and args[0]:
            number = _unquote(args[0])
            if not re.fullmatch(r"\+?\d{3,20}", number):
                raise AtFail("CMS", 304 if self.cmgf == 0 else 305)
            self.smsc = number
            return []
        raise AtFail()

    async def _cmgf(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return ["+CMGF: (0,1)"]
        if kind == "read":
            return [f"+CMGF: {self.cmgf}"]
        if kind == "set":
            self.cmgf = _int_arg(args, 0, 0, hi=1)
            return []
        self.cmgf = 0
        return []

    async def _csms(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return ["+CSMS: (0,1)"]
        if kind == "read":
            return [f"+CSMS: {self.csms},1,1,1"]
        if kind == "set":
            self.csms = _int_arg(args, 0, hi=1)
            return ["+CSMS: 1,1,1"]
        raise AtFail()

    async def _cscs(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return ['+CSCS: ("IRA","GSM","UCS2")']
        if kind == "read":
            return [f'+CSCS: "{self.cscs}"']
        if kind == "set":
            cs = _unquote(args[0]).upper() if args else ""
            if cs not in ("IRA", "GSM", "UCS2"):
                raise AtFail("CME", 4)
            self.cscs = cs
            return []
        raise AtFail()

    async def _csmp(self, kind: str, args: list[str]) -> list[str]:
        if kind == "read":
            return ["+CSMP: 17,167,0,0"]
        return []

    async def _cpms(self, kind: str, args: list[str]) -> list[str]:
        names = self.personality.storages
        quoted = ",".join(f'"{n}"' for n in names)
        if kind == "test":
            return [f"+CPMS: ({quoted}),({quoted}),({quoted})"]
        self._require_sim(sms=True)
        if kind == "read":
            parts = [f'"{m}",{self.storages[m].used},{self.storages[m].capacity}' for m in self.mem]
            return ["+CPMS: " + ",".join(parts)]
        if kind != "set" or not args or len(args) > 3:
            raise AtFail()
        wanted = [_unquote(a).upper() for a in args]
        for i, m in enumerate(wanted):
            if m == "":
                continue
            if m not in self.storages:
                raise AtFail("CMS", 302)
            self.mem[i] = m
        pairs = [f"{self.storages[m].used},{self.storages[m].capacity}" for m in self.mem]
        return ["+CPMS: " + ",".join(pairs)]

    async def _cnmi(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return ["+CNMI: (0-3),(0-3),(0,2),(0-2),(0,1)"]
        if kind == "read":
            return ["+CNMI: " + ",".join(str(v) for v in self.cnmi)]
        if kind != "set":
            raise AtFail()
        values = list(self.cnmi)
        limits = (3, 3, 3, 2, 1)
        for i, _ in enumerate(args[:5]):
            values[i] = _int_arg(args, i, values[i], hi=limits[i])
        if len(args) > 5:
            raise AtFail("CMS", 303)
        if values[1] in (2, 3) or values[3] == 1:
            # TS 27.005 §3.4.1: direct routing needs <mode> 1/2; with +CSMS=1 it also
            # needs the TE to acknowledge (+CNMA).
            if values[0] == 0:
                raise AtFail("CMS", 303)
        self.cnmi = values
        if values[0] in (1, 2, 3) and self._ta_buffer:
            buffered, self._ta_buffer = self._ta_buffer, []
            if values[4] == 0:
                # <bfr> 0: flush the TA buffer to the TE (after this command's OK);
                # <bfr> 1: clear it.
                self._held_urcs.extend(buffered)
        return []

    async def _cnma(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return ["+CNMA: (0-2)"]
        if self.csms != 1 or not self._pending_acks:
            raise AtFail("CMS", 340)
        if kind == "set":
            _int_arg(args, 0, 0, hi=2)
        self._pending_acks.pop(0).cancel()
        return []

    def _await_ack(self, on_timeout: Callable[[], None]) -> None:
        if self.csms != 1:
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def expired() -> None:
            if handle in self._pending_acks:
                self._pending_acks.remove(handle)
            # TS 27.005 §3.4.4: without +CNMA in time the ME sets <mt> and <ds> to 0.
            self.cnmi[1] = 0
            self.cnmi[3] = 0
            on_timeout()

        handle = loop.call_later(self.behaviour.cnma_timeout_s, expired)
        self._pending_acks.append(handle)

    async def _cmms_cmd(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return ["+CMMS: (0-2)"]
        if kind == "read":
            if self.cmms == 1 and asyncio.get_running_loop().time() > self._cmms_deadline:
                self.cmms = 0  # TS 27.005 §3.5.6: mode 1 falls back to 0 after 1-5 s idle
            return [f"+CMMS: {self.cmms}"]
        if kind == "set":
            self.cmms = _int_arg(args, 0, 0, hi=2)
            self._cmms_deadline = asyncio.get_running_loop().time() + 5.0
            return []
        raise AtFail()

    async def _read_text_entry(self) -> tuple[bytes, int]:
        data = bytearray()
        while True:
            b = await self._getc()
            if b in (CTRL_Z, ESC):
                return bytes(data), b
            if self.echo:
                self._emit(bytes([b]))
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
        self._require_sim(sms=True)
        entry = await self._text_entry(args, submit_only=True)
        if entry is None:
            return []  # TS 27.005 §3.5.1: <ESC> quits without sending
        submit, pdu = entry
        return [f"+CMGS: {await self._transmit(submit, pdu)}"]

    async def _cmss(self, kind: str, args: list[str]) -> list[str]:
        """Send a stored message (TS 27.005 §3.5.2); it becomes STO SENT."""
        if kind == "test":
            return []
        if kind != "set":
            raise AtFail()
        self._require_sim(sms=True)
        storage = self.storages[self.mem[1]]
        slot = storage.slot(_int_arg(args, 0, hi=10_000))
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
        if kind == "test":
            return []
        self._require_sim(sms=True)
        storage = self.storages[self.mem[1]]
        if self.cmgf == 0:
            if kind != "set":
                raise AtFail()
            stat = _int_arg(args, 1, 2, hi=3)
        else:
            stat_arg = _unquote(args[2]).upper() if kind == "set" and len(args) > 2 else "STO UNSENT"
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
        if self.cmgf == 1:
            destination = _unquote(args[0]) if args else ""
            if destination and not re.fullmatch(r"\+?\d{1,20}", destination):
                raise AtFail("CMS", 305)
            if not destination and submit_only:
                raise AtFail("CMS", 305)
        else:
            length = _int_arg(args, 0, hi=10_000)
            if not 7 <= length <= MAX_TPDU_LENGTH:
                raise AtFail("CMS", 304)
        self._emit(b"\r\n> ")
        if self.behaviour.urc_after_prompt:
            self._emit(self._line(self.behaviour.urc_after_prompt))
        raw, terminator = await self._read_text_entry()
        if terminator == ESC:
            return None
        if self.cmgf == 1:
            return self._text_mode_submit(destination or self.number, raw)
        pdu = re.sub(rb"\s", b"", raw).decode("latin-1").upper()
        return self._decode_submit(pdu, length, submit_only=submit_only), pdu

    async def _transmit(self, submit: Any, pdu: str) -> int:
        """The radio part of a submit, with the behaviour's faults; returns TP-MR."""
        if not self.registered:
            raise AtFail("CMS", 331)
        b = self.behaviour
        b.submits_seen += 1
        if b.drop_port_on_submit:
            await self._drop()
        if b.hang_on_submit:
            if b.hang_after_sending:
                self._accept(submit, pdu)
            raise _Hung()
        latency_s = b.submit_latency_s(self.rng)
        if latency_s:
            # The radio round trip: URCs may arrive meanwhile, so release the hold.
            self._urc_hold -= 1
            self._flush_held()
            try:
                await asyncio.sleep(latency_s)
            finally:
                self._urc_hold += 1
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
        tp_mr = self._next_mr
        self._next_mr = (self._next_mr + 1) % 256
        self.sent.append(SentRecord(submit.destination, tp_mr, pdu, submit))
        if self.cmms == 1:
            self._cmms_deadline = asyncio.get_running_loop().time() + 5.0
        self.network.submit(self, submit, tp_mr)
        return tp_mr

    # --- reading and deleting ------------------------------------------------------

    def _stat_token(self, stat: int) -> str:
        return f'"{STAT_TEXT[stat]}"' if self.cmgf == 1 else str(stat)

    def _parse_stat(self, args: list[str]) -> int:
        if not args or args[0] == "":
            return 0  # default <stat>: REC UNREAD
        if self.cmgf == 1:
            token = _unquote(args[0]).upper()
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
        if self.cmgf == 0:
            return [f"{header},,{sms.tpdu_length}", sms.pdu]
        try:
            decoded = decode_pdu(sms.pdu, tpdu_length=sms.tpdu_length)
        except CodecError:
            return [f"{header}", ""]
        address = getattr(decoded, "address", "")
        scts = getattr(decoded, "scts", None)
        when = f'"{_text_mode_time(scts)}"' if isinstance(scts, datetime) else ""
        return [f'{header},"{address}","",{when}', str(getattr(decoded, "text", ""))]

    async def _cmgl(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            if self.cmgf == 1:
                return ['+CMGL: ("REC UNREAD","REC READ","STO UNSENT","STO SENT","ALL")']
            return ["+CMGL: (0-4)"]
        self._require_sim(sms=True)
        stat = self._parse_stat(args) if kind == "set" else 0
        storage = self.storages[self.mem[0]]
        lines: list[str] = []
        for index, sms in storage.items():
            if stat != 4 and sms.stat != stat:
                continue
            lines += self._entry_lines(f"+CMGL: {index},{self._stat_token(sms.stat)}", sms)
            if sms.stat == 0:
                sms.stat = 1  # listing REC UNREAD marks them read (TS 27.005 §3.4.2)
        return lines

    async def _cmgr(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return []
        if kind != "set":
            raise AtFail()
        self._require_sim(sms=True)
        storage = self.storages[self.mem[0]]
        i = storage.slot(_int_arg(args, 0, hi=10_000))
        sms = storage.slots[i]
        if sms is None:
            if self.personality.empty_cmgr_ok:
                return []
            raise AtFail("CMS", 321)
        lines = self._entry_lines(f"+CMGR: {self._stat_token(sms.stat)}", sms)
        if sms.stat == 0:
            sms.stat = 1
        return lines

    async def _cmgd(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            storage = self.storages[self.mem[0]]
            used = ",".join(str(i) for i, _ in storage.items())
            return [f"+CMGD: ({used}),(0-4)"]
        if kind != "set":
            raise AtFail()
        self._require_sim(sms=True)
        storage = self.storages[self.mem[0]]
        index = _int_arg(args, 0, hi=10_000)
        delflag = _int_arg(args, 1, 0, hi=4)
        if delflag == 0:
            storage.slots[storage.slot(index)] = None
        else:
            # TS 27.005 §3.5.4 <delflag>: 1 read, 2 read+sent, 3 read+sent+unsent, 4 all.
            doomed = {1: {1}, 2: {1, 3}, 3: {1, 2, 3}, 4: {0, 1, 2, 3}}[delflag]
            for i, sms in enumerate(storage.slots):
                if sms is not None and sms.stat in doomed:
                    storage.slots[i] = None
        self._memory_available()
        return []

    def _memory_available(self) -> None:
        """TS 24.011 RP-SMMA: once memory frees up the network retries what it held back."""
        if self._pending_from_network and self.registered:
            pending, self._pending_from_network = self._pending_from_network, []
            for pdu in pending:
                self.deliver_from_network(pdu)

    # --- USSD, CFUN, misc ----------------------------------------------------------

    async def _cusd(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return ["+CUSD: (0-2)"]
        if kind == "read":
            return [f"+CUSD: {self.cusd_n}"]
        if kind != "set":
            raise AtFail()
        n = _int_arg(args, 0, 0, hi=2)
        self.cusd_n = 0 if n == 2 else n
        if len(args) < 2 or args[1] == "":
            return []
        self._require_sim()
        if not self.registered:
            raise AtFail("CME", 30)
        code = _unquote(args[1])
        if self.personality.ussd_hex_gsm7:
            code = _gsm7_unpack_hex(code)
        reply = self.network.ussd(code, self.behaviour.ussd_reply)
        self._spawn(self._ussd_reply(reply))
        return []

    async def _ussd_reply(self, reply: str | None) -> None:
        await asyncio.sleep(0.01)
        if reply is None:
            self._urc("+CUSD: 4")  # TS 27.007 §7.15 <m> 4: operation not supported
            return
        if self.personality.ussd_hex_gsm7:
            reply = _gsm7_pack_hex(reply)
        self._urc(f'+CUSD: 0,"{reply}",15')

    async def _cfun(self, kind: str, args: list[str]) -> list[str]:
        if kind == "test":
            return ["+CFUN: (0,1,4),(0,1)"]
        if kind == "read":
            return [f"+CFUN: {self.cfun}"]
        if kind != "set":
            raise AtFail()
        fun = _int_arg(args, 0, hi=4)
        if fun not in (0, 1, 4):
            raise AtFail("CME", 4)
        reset = _int_arg(args, 1, 0, hi=1)
        if reset:
            if fun != 1:
                raise AtFail("CME", 4)
            # OK first, then the module reboots (TS 27.007 §8.2 <rst> 1: reset the MT
            # before setting <fun>; SIM800/EC25 print the boot URCs again).
            self._spawn(self._reset_after_ok())
            return []
        self.cfun = fun
        if fun == 1:
            self._spawn(self._register())
        else:
            self._set_registration(0)
        return []

    async def _reset_after_ok(self) -> None:
        await asyncio.sleep(0.005)
        self._set_registration(0)
        self._power_cycle()

    async def _curc_cmd(self, kind: str, args: list[str]) -> list[str]:
        if kind == "read":
            return [f"^CURC: {self._curc}"]
        if kind == "set":
            self._curc = _int_arg(args, 0, hi=1)
            return []
        if kind == "test":
            return ["^CURC: (0-1)"]
        raise AtFail()

    # ------------------------------------------------------------------ network side

    def set_registration(self, stat: int) -> None:
        """Change coverage now (tests): 1 home, 5 roaming, 2 searching, 3 denied, 0 none.
        +CREG/+CGREG/+CEREG URCs follow per their <n>; SMS held by the network arrive
        once registered again."""
        if stat not in (0, 1, 2, 3, 4, 5):
            raise ValueError(f"registration status must be 0..5 (TS 27.007 +CREG <stat>), got {stat}")
        self.behaviour.registration = stat
        if self.cfun == 1 and self._sim_state == "READY":
            self._set_registration(stat)

    def inject_sms(self, from_number: str, text: str) -> None:
        """An inbound SMS as if the network delivered it (all parts for long text)."""
        parts = encode_deliver(from_number, text, scts=datetime.now(UTC), smsc=self.network.smsc)
        for pdu in [parts] if isinstance(parts, str) else parts:
            self.deliver_from_network(pdu)

    def deliver_from_network(self, pdu: str) -> bool:
        """An SMS-DELIVER (hex, SMSC field included) arrives; False if it could not be taken."""
        if not self.attached or not self.registered:
            self._pending_from_network.append(pdu)
            return True  # the SC stores and forwards it once the SIM is back
        tpdu_length = StoredSms(0, pdu).tpdu_length
        mt = self.cnmi[1]
        if mt in (2, 3):
            self._indication(f"+CMT: ,{tpdu_length}", pdu)
            self._await_ack(lambda: self._store_inbound(pdu))
            return True
        return self._store_inbound(pdu)

    def _store_inbound(self, pdu: str, *, status_report: bool = False) -> bool:
        mem = self.mem[2]
        storage = self.storages[mem]
        index = storage.store(StoredSms(0, pdu, is_status_report=status_report))
        if index is None:
            # TS 27.005 §3.4.1: no +CMTI is possible; the network is told "memory
            # capacity exceeded" (TS 24.011 RP-ERROR cause 22) and the SMS is lost to us.
            if self.personality.storage_full_urc:
                self._urc(self.personality.storage_full_urc.format(mem=mem))
            return False
        if status_report:
            if self.cnmi[3] == 2:
                self._indication(f'+CDSI: "{mem}",{index}')
        elif self.cnmi[1] in (1, 2, 3):
            self._indication(f'+CMTI: "{mem}",{index}')
        return True

    def deliver_status_report(self, pdu: str) -> None:
        """An SMS-STATUS-REPORT (hex, SMSC field included) arrives, routed per +CNMI <ds>."""
        if not self.attached:
            return
        ds = self.cnmi[3]
        if ds == 1:
            tpdu_length = StoredSms(0, pdu).tpdu_length
            self._indication(f"+CDS: {tpdu_length}", pdu)
            self._await_ack(lambda: None)
        elif ds == 2:
            self._store_inbound(pdu, status_report=True)


class _Hung(AtFail):
    pass


def _text_mode_time(when: datetime) -> str:
    """TS 27.005 §3.1 <scts> in text mode: "yy/MM/dd,hh:mm:ss±zz" (zz in quarter hours)."""
    offset = when.utcoffset()
    quarters = int(offset.total_seconds() // 900) if offset is not None else 0
    sign = "-" if quarters < 0 else "+"
    return f"{when:%y/%m/%d,%H:%M:%S}{sign}{abs(quarters):02d}"


def _gsm7_pack_hex(text: str) -> str:
    return gsm7.pack_septets(gsm7.encode_septets(text)).hex().upper()


def _gsm7_unpack_hex(data: str) -> str:
    try:
        raw = bytes.fromhex(data)
    except ValueError:
        raise AtFail("CME", 50) from None
    septets = gsm7.unpack_septets(raw, len(raw) * 8 // 7)
    return gsm7.decode_septets(septets).rstrip("\r")

