"""The AT channel: one reader, one command in flight, URCs split off first.

The reader is the transport's own read callback when the port was opened by
``gsmgw.transport`` (its ``PortReader`` hands each chunk over at once), else a task
that reads the stream.

Rules it keeps (design.md style rules 1, 2, 3, 5, 6):

* the waiter for a command is registered *before* the command is written and
  removed in ``finally``;
* an :class:`asyncio.Lock` covers a whole transaction; ``AT+CMGS`` → prompt →
  PDU + Ctrl-Z → final result is one critical section, and callers that need
  several commands in a row (``AT+CMMS=1`` across a multipart message) hold
  it with :meth:`ATChannel.hold`;
* every line is offered to the URC table before response matching;
* every wait has an explicit timeout; consecutive timeouts are counted and
  the owner decides when the port is dead; after a timeout the channel
  resynchronises (ESC if a prompt may be open, drain, ``AT``) before it writes
  the next command;
* a submit whose PDU was written but whose final result never came is
  reported as UNKNOWN, never as an error that is safe to resend;
* the PDU is written by the reader, in the callback that reads the ``> `` prompt
  (not a loop turn later by the submitting task: in a burst of modems' results
  that turn waits behind every other modem's work, issue 17), unless a final
  result came first (refused before the prompt); the submit then counts it as
  written even if its own prompt timeout fired meanwhile;
* a command the caller marks ``info_final`` (quirk data: Wavecom answers
  ``AT+CPIN?`` with ``+CPIN: READY`` and never an OK) is complete once its
  information line has come and ``info_grace_s`` passed without a final result;
  the port is then drained before the next command, so that a late OK cannot be
  taken as that command's answer. ``AT+CMGS`` never gets this treatment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from gsmgw.at import urc as urcmod
from gsmgw.at.lines import CTRL_Z, ESC, Final, FinalKind, Line, LineFramer, parse_final
from gsmgw.at.parsers import parse_cmgs
from gsmgw.domain import SendOutcome, SendOutcomeKind
from gsmgw.errors import ATError, ATTimeout, CMEError, CMSError, PortClosed

log = logging.getLogger(__name__)

# trace(timestamp_s_since_epoch, direction "rx"/"tx", raw bytes)
TraceHook = Callable[[float, str, bytes], None]
UrcHandler = Callable[[urcmod.Urc], None]
LostHandler = Callable[[str], None]

_HEX_CHARS = frozenset("0123456789ABCDEFabcdef")


@dataclass
class _Pending:
    command: str
    prefix: str | None
    echo: set[str]
    final: asyncio.Future[Final]
    prompt: asyncio.Future[None] | None = None
    # AT+CMGS: what the reader writes when the prompt comes, and whether it did.
    on_prompt: bytes | None = None
    written: bool = False
    lines: list[str] = field(default_factory=list)
    info_final: bool = False
    info_timer: asyncio.TimerHandle | None = None


@dataclass(frozen=True, slots=True)
class Response:
    command: str
    lines: list[str]
    final: Final



T = TypeVar("T")


async def _within(fut: asyncio.Future[T], timeout_s: float) -> T:
    """Await one of the channel's own futures for at most ``timeout_s`` (TimeoutError).

    What ``wait_for(shield(fut), timeout_s)`` does, without its task and outer future
    (two per AT command on the hot path): the future itself is never cancelled here,
    neither by the timeout nor by a cancel of the caller; the caller's ``finally``
    decides what becomes of it.
    """
    if not fut.done():
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def wake(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        timer = loop.call_later(timeout_s, wake)
        fut.add_done_callback(wake)
        try:
            await waiter
        finally:
            timer.cancel()
            fut.remove_done_callback(wake)
        if not fut.done():
            raise TimeoutError
    return fut.result()

class ATChannel:
    """AT command channel over an ``(reader, writer)`` pair from :mod:`gsmgw.transport`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        name: str = "",
        trace: TraceHook | None = None,
        on_urc: UrcHandler | None = None,
        on_lost: LostHandler | None = None,
        write_timeout_s: float = 5.0,
        resync_timeout_s: float = 1.0,
        drain_quiet_s: float = 0.05,
        info_grace_s: float = 0.2,
    ) -> None:
        self.name = name
        self._reader = reader
        self._writer = writer
        self._trace = trace
        self._on_urc = on_urc
        self._on_lost = on_lost
        self._write_timeout_s = write_timeout_s
        self._resync_timeout_s = resync_timeout_s
        self._drain_quiet_s = drain_quiet_s
        self._info_grace_s = info_grace_s
        self._drain_before_next = False
        self._framer = LineFramer()
        self._lock = asyncio.Lock()
        self._pending: _Pending | None = None
        self._urc_head: tuple[urcmod.UrcSpec, str] | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._direct = False  # the reader hands chunks to _on_data itself (start)
        self._last_rx_monotonic = time.monotonic()
        self._closed_reason: str | None = None
        # True at first: whoever had the port before (a gateway killed between AT+CMGS
        # and its PDU) may have left the module in text entry, where it takes every
        # byte as PDU until ESC; the first resync after a timeout sends ESC then.
        self._prompt_may_be_open = True
        self.consecutive_timeouts = 0
        self.needs_resync = False
        self.unsolicited_unknown = 0  # lines that were neither URC nor response
        self.info_only_answers = 0  # commands completed by their information line alone

    # --- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        if self._reader_task is not None or self._direct:
            return
        deliver_to = getattr(self._reader, "deliver_to", None)
        if deliver_to is not None:
            # gsmgw.transport.PortReader: every chunk is handled in the transport's read
            # callback, with no task woken per answer (issue 17: every prompt and result
            # of a burst of modems waited a loop turn more, behind all the others' work).
            self._direct = True
            deliver_to(self._on_data, self._on_end)
        else:
            self._reader_task = asyncio.create_task(self._read_loop(), name=f"at-reader {self.name}")

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    @property
    def busy(self) -> bool:
        """True while a transaction holds the port (a send may be pending)."""
        return self._lock.locked()

    async def close(self) -> None:
        self._mark_closed("closed by owner", notify=False)
        with contextlib.suppress(Exception):
            self._writer.close()
        task, self._reader_task = self._reader_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)

    # --- public transactions ----------------------------------------------

    async def command(
        self, command: str, timeout_s: float, *, prefix: str | None = "", resync: bool = True,
        info_final: bool = False,
    ) -> Response:
        """Run one command under the lock; raise ATError/CMEError/CMSError/ATTimeout/PortClosed.

        ``prefix`` is the information-response prefix that wins over an ambiguous
        URC ("" derives it from the command). ``resync=False`` skips the
        resynchronisation after a timeout: recovery uses it to write ``AT+CFUN``
        to a module that no longer answers ``AT``. ``info_final=True``: the
        ``<prefix>:`` line alone may be the whole answer (see the module docstring).
        """
        async with self._lock:
            return await self._command(command, timeout_s, prefix=prefix, resync=resync, info_final=info_final)

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[Transaction]:
        """Hold the port for several commands (nothing else is written meanwhile)."""
        async with self._lock:
            yield Transaction(self)

    async def submit_pdu(
        self, pdu_hex: str, tpdu_length: int, *, prompt_timeout_s: float, final_timeout_s: float
    ) -> SendOutcome:
        async with self._lock:
            return await self._submit(pdu_hex, tpdu_length, prompt_timeout_s, final_timeout_s)

    async def drain(self, quiet_s: float | None = None, max_s: float = 1.0) -> None:
        """Wait until the port has been quiet for ``quiet_s`` (bounded by ``max_s``)."""
        quiet = self._drain_quiet_s if quiet_s is None else quiet_s
        deadline = time.monotonic() + max_s
        self._last_rx_monotonic = max(self._last_rx_monotonic, time.monotonic())
        while True:
            now = time.monotonic()
            idle = now - self._last_rx_monotonic
            if idle >= quiet or now >= deadline:
                return
            await asyncio.sleep(min(quiet - idle, deadline - now))

    # --- internals ---------------------------------------------------------

    async def _command(
        self, command: str, timeout_s: float, *, prefix: str | None = "", resync: bool = True,
        info_final: bool = False,
    ) -> Response:
        if resync:
            await self._resync_if_needed()
        if prefix == "":
            prefix = urcmod.response_prefix(command)
        return await self._raw_command(command, timeout_s, prefix=prefix, info_final=info_final and prefix is not None)

    async def _raw_command(
        self, command: str, timeout_s: float, *, prefix: str | None, info_final: bool = False
    ) -> Response:
        self._check_open()
        if self._drain_before_next:
            # The last answer ended without a final result: one may still be on its way.
            self._drain_before_next = False
            await self.drain(quiet_s=self._info_grace_s, max_s=self._info_grace_s * 4)
        loop = asyncio.get_running_loop()
        pending = _Pending(command, prefix, {command.upper()}, loop.create_future(), info_final=info_final)
        self._pending = pending  # register the waiter before writing
        try:
            await self._write((command + "\r").encode("ascii", "replace"))
            try:
                final = await _within(pending.final, timeout_s)
            except TimeoutError:
                self._count_timeout()
                raise ATTimeout(f"{command!r}: no final result within {timeout_s:g} s") from None
        finally:
            self._pending = None
            if pending.info_timer is not None:
                pending.info_timer.cancel()
            if not pending.final.done():
                pending.final.cancel()
        self.consecutive_timeouts = 0
        return self._result(command, pending.lines, final)

    def _info_only_complete(self, pending: _Pending) -> None:
        """Grace is over and no final result came: the information line was the answer."""
        if self._pending is not pending or pending.final.done():
            return
        self.info_only_answers += 1
        self._drain_before_next = True
        pending.final.set_result(Final(FinalKind.OK, line=""))

    def _result(self, command: str, lines: list[str], final: Final) -> Response:
        if final.kind == FinalKind.OK:
            return Response(command, lines, final)
        if final.kind == FinalKind.CME:
            raise CMEError(command, final.code, final.text)
        if final.kind == FinalKind.CMS:
            raise CMSError(command, final.code, final.text)
        raise ATError(command, final.line)

    async def _submit(
        self, pdu_hex: str, tpdu_length: int, prompt_timeout_s: float, final_timeout_s: float
    ) -> SendOutcome:
        """AT+CMGS=<len> → ``> `` → PDU Ctrl-Z → +CMGS: <mr> OK, as one critical section.

        Raises (nothing of the PDU was written): PortClosed, ATTimeout (no prompt).
        Returns ERROR when the modem refused before the prompt, and after the PDU
        OK / ERROR / UNKNOWN according to what really came back.
        """
        pdu = pdu_hex.strip().upper()
        if not pdu or set(pdu) - _HEX_CHARS or len(pdu) % 2:
            raise ValueError(f"PDU is not an even-length hex string: {pdu_hex!r}")
        await self._resync_if_needed()
        self._check_open()
        loop = asyncio.get_running_loop()
        command = f"AT+CMGS={int(tpdu_length)}"
        pending = _Pending(command, "+CMGS", {command.upper(), pdu}, loop.create_future(), loop.create_future(),
                           on_prompt=pdu.encode("ascii") + CTRL_Z)
        self._pending = pending
        pdu_written = False
        try:
            self._framer.expect_prompt = True
            await self._write((command + "\r").encode("ascii"))
            assert pending.prompt is not None
            await asyncio.wait({pending.prompt, pending.final}, timeout=prompt_timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
            if pending.written:
                # The reader wrote the PDU on the prompt (_on_frame), perhaps after this
                # wait timed out: from here on, the truth may be "it left the modem".
                pdu_written = True
                await self._drained()
            elif pending.final.done():
                return self._refused_outcome(pending.final.result(), before_prompt=True)
            else:  # no prompt (the reader writes the PDU on every prompt it takes)
                # It may still come: ESC cancels it on every module we know
                # (TS 27.005 §3.5.1) so that the next command is not taken as a PDU.
                self._prompt_may_be_open = True
                self._count_timeout()
                raise ATTimeout(f"{command}: no '> ' prompt within {prompt_timeout_s:g} s; PDU not written")
            try:
                final = await _within(pending.final, final_timeout_s)
            except TimeoutError:
                self._count_timeout()
                return SendOutcome(SendOutcomeKind.UNKNOWN, detail=f"no final result within {final_timeout_s:g} s after the PDU")
            self._prompt_may_be_open = False
            self.consecutive_timeouts = 0
            if final.kind != FinalKind.OK:
                return self._refused_outcome(final, before_prompt=False)
            try:
                return SendOutcome(SendOutcomeKind.OK, tp_mr=parse_cmgs(pending.lines))
            except (ValueError, IndexError):
                return SendOutcome(SendOutcomeKind.OK, detail=f"OK without +CMGS: {pending.lines!r}")
        except PortClosed as exc:
            if pdu_written:
                return SendOutcome(SendOutcomeKind.UNKNOWN, detail=f"port lost after the PDU was written: {exc}")
            raise
        finally:
            self._framer.expect_prompt = False
            self._pending = None
            for fut in (pending.final, pending.prompt):
                if fut is not None and not fut.done():
                    fut.cancel()

    def _refused_outcome(self, final: Final, *, before_prompt: bool) -> SendOutcome:
        self.consecutive_timeouts = 0
        where = "before the prompt" if before_prompt else "after the PDU"
        if final.kind == FinalKind.CMS:
            return SendOutcome(SendOutcomeKind.ERROR, cms_code=final.code, detail=f"{final.line} ({where})")
        return SendOutcome(SendOutcomeKind.ERROR, detail=f"{final.line} ({where})")

    async def _resync_if_needed(self) -> None:
        if not self.needs_resync:
            return
        if self._prompt_may_be_open:
            await self._write(ESC)
            self._prompt_may_be_open = False
        await self.drain(max_s=max(self._resync_timeout_s, self._drain_quiet_s * 4))
        last: Exception | None = None
        for _ in range(2):
            try:
                await self._raw_command("AT", self._resync_timeout_s, prefix=None)
            except ATTimeout as exc:
                last = exc
                continue
            except ATError:
                # An ERROR is still an answer: the command interpreter is alive.
                pass
            # A late answer to the timed-out command may still be in flight.
            await self.drain()
            self.needs_resync = False
            return
        assert last is not None
        raise last

    def _count_timeout(self) -> None:
        self.consecutive_timeouts += 1
        self.needs_resync = True

    def _check_open(self) -> None:
        if self._closed_reason is not None:
            raise PortClosed(f"{self.name}: {self._closed_reason}")

    async def _write(self, data: bytes) -> None:
        self._check_open()
        self._write_now(data)
        await self._drained()

    def _write_now(self, data: bytes) -> None:
        """Hand ``data`` to the transport without waiting (what the tty does not take
        at once stays in the transport's buffer: ``_drained`` waits for it)."""
        if self._trace is not None:
            self._trace(time.time(), "tx", data)
        try:
            self._writer.write(data)
        except (OSError, ConnectionError, RuntimeError) as exc:
            self._mark_closed(f"write failed: {exc!r}")
            raise PortClosed(f"{self.name}: write failed: {exc!r}") from exc

    async def _drained(self) -> None:
        """Written through at once (the usual case on a tty): nothing to wait for, and
        no drain task to make. Else wait, with the write timeout."""
        self._check_open()
        try:
            transport = getattr(self._writer, "transport", None)
            if transport is None or transport.is_closing() or transport.get_write_buffer_size() > 0:
                await asyncio.wait_for(self._writer.drain(), self._write_timeout_s)
        except TimeoutError:
            self._mark_closed(f"write blocked for {self._write_timeout_s:g} s")
            raise PortClosed(f"{self.name}: write blocked") from None
        except (OSError, ConnectionError, RuntimeError) as exc:
            self._mark_closed(f"write failed: {exc!r}")
            raise PortClosed(f"{self.name}: write failed: {exc!r}") from exc

    def _mark_closed(self, reason: str, *, notify: bool = True) -> None:
        if self._closed_reason is not None:
            return
        self._closed_reason = reason
        pending = self._pending
        if pending is not None:
            for fut in (pending.final, pending.prompt):
                if fut is not None and not fut.done():
                    fut.set_exception(PortClosed(f"{self.name}: {reason}"))
                    fut.exception()  # mark retrieved: the waiter may already be gone
        if notify and self._on_lost is not None:
            try:
                self._on_lost(reason)
            except Exception:
                log.exception("%s: on_lost handler failed", self.name)

    async def _read_loop(self) -> None:
        """For a plain StreamReader (tests, other transports): read and handle chunks."""
        reason = "EOF"
        try:
            while True:
                data = await self._reader.read(4096)
                if not data:
                    break
                self._handle(data)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # serial.SerialException, OSError(EIO) on unplug
            reason = f"read failed: {exc!r}"
        self._mark_closed(reason)

    def _on_data(self, data: bytes) -> None:
        """A chunk, in the transport's read callback (PortReader.deliver_to)."""
        if self._closed_reason is not None:
            return
        try:
            self._handle(data)
        except Exception as exc:  # the framer itself failed: as a failed read
            log.exception("%s: could not handle %r", self.name, data[:80])
            self._mark_closed(f"read failed: {exc!r}")

    def _on_end(self, exc: BaseException | None) -> None:
        """EOF or the read error (serial.SerialException, OSError(EIO) on unplug)."""
        self._mark_closed("EOF" if exc is None else f"read failed: {exc!r}")

    def _handle(self, data: bytes) -> None:
        self._last_rx_monotonic = time.monotonic()
        if self._trace is not None:
            self._trace(time.time(), "rx", data)
        for frame in self._framer.feed(data):
            try:
                self._on_frame(frame)
            except Exception:  # a parser bug must not kill the port
                log.exception("%s: frame handling failed for %r", self.name, frame)

    def _on_frame(self, frame: Line | object) -> None:
        pending = self._pending
        if not isinstance(frame, Line):  # the prompt
            if pending is not None and pending.prompt is not None and not pending.prompt.done():
                if pending.on_prompt is not None and not pending.written and not pending.final.done():
                    # The PDU now, from this callback (see the module doc).
                    pending.written = True
                    self._prompt_may_be_open = True
                    with contextlib.suppress(PortClosed):  # the futures carry it (_mark_closed)
                        self._write_now(pending.on_prompt)
                if not pending.prompt.done():
                    pending.prompt.set_result(None)
            return
        line = frame.text
        if self._urc_head is not None:
            spec, head = self._urc_head
            if spec.two_line:
                self._urc_head = None
                if set(line) <= _HEX_CHARS:
                    self._emit(urcmod.Urc(spec.name, head, pdu=line.upper()))
                    return
                log.warning("%s: %s without its PDU line (got %r)", self.name, head, line)
            else:  # a +CUSD string continuing over several lines
                head = head + "\n" + line
                if urcmod.needs_continuation(spec, head):
                    self._urc_head = (spec, head)
                else:
                    self._urc_head = None
                    self._emit(urcmod.Urc(spec.name, head))
                return
        spec = urcmod.classify(line, pending.prefix if pending is not None else None)
        if spec is not None:
            if spec.two_line or urcmod.needs_continuation(spec, line):
                self._urc_head = (spec, line)
            else:
                self._emit(urcmod.Urc(spec.name, line))
            return
        if pending is None:
            self.unsolicited_unknown += 1
            log.debug("%s: unsolicited line ignored: %r", self.name, line)
            return
        if line.upper() in pending.echo:
            return  # echo (ATE1) of the command or of the PDU
        final = parse_final(line)
        if final is not None:
            if not pending.final.done():
                pending.final.set_result(final)
            return
        pending.lines.append(line)
        if (
            pending.info_final
            and pending.info_timer is None
            and pending.prefix is not None
            and line.upper().startswith(pending.prefix)
        ):
            pending.info_timer = asyncio.get_running_loop().call_later(
                self._info_grace_s, self._info_only_complete, pending
            )

    def _emit(self, urc: urcmod.Urc) -> None:
        if self._on_urc is None:
            return
        try:
            self._on_urc(urc)
        except Exception:
            log.exception("%s: URC handler failed for %r", self.name, urc)


class Transaction:
    """Commands run while :meth:`ATChannel.hold` keeps the port."""

    def __init__(self, channel: ATChannel) -> None:
        self._ch = channel

    async def command(
        self, command: str, timeout_s: float, *, prefix: str | None = "", resync: bool = True,
        info_final: bool = False,
    ) -> Response:
        return await self._ch._command(command, timeout_s, prefix=prefix, resync=resync, info_final=info_final)

    async def submit_pdu(
        self, pdu_hex: str, tpdu_length: int, *, prompt_timeout_s: float, final_timeout_s: float
    ) -> SendOutcome:
        return await self._ch._submit(pdu_hex, tpdu_length, prompt_timeout_s, final_timeout_s)
