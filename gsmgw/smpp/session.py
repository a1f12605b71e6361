"""One SMPP connection: framing, the bind state machine, windows, timers.

States (section 2.2): ``open`` (connected, not bound) -> ``bound`` as transmitter,
receiver or transceiver -> ``closed``. Every request the ESME sends is answered
with its response, or with generic_nack when its header is unusable (an unknown
command_id; a command_length that cannot be trusted also closes the connection,
since the stream cannot be resynchronised).

Flow control: at most ``window`` of the ESME's requests are processed at once; one
more is answered ESME_RTHROTTLED at once. In the other direction at most
``window`` deliver_sm wait for their deliver_sm_resp. Responses may go out of
order (the sequence_number pairs them), which lets the store commit a window of
submits together.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from gsmgw.errors import SmppError
from gsmgw.smpp.constants import HEADER_BYTES, INTERFACE_VERSION, RESPONSE_BIT, Command, Status, Tag
from gsmgw.smpp.pdu import Pdu, decode, encode, read_header, tlv_int

if TYPE_CHECKING:
    from gsmgw.smpp.accounts import Account

log = logging.getLogger(__name__)

MAX_FAILED_BINDS = 3
FAILED_BIND_DELAY_S = 1.0
MAX_SEQUENCE = 0x7FFFFFFF


class BindMode(enum.StrEnum):
    TRANSMITTER = "transmitter"
    RECEIVER = "receiver"
    TRANSCEIVER = "transceiver"

    @property
    def can_submit(self) -> bool:
        return self is not BindMode.RECEIVER

    @property
    def can_receive(self) -> bool:
        return self is not BindMode.TRANSMITTER


BIND_MODES = {
    Command.BIND_TRANSMITTER: BindMode.TRANSMITTER,
    Command.BIND_RECEIVER: BindMode.RECEIVER,
    Command.BIND_TRANSCEIVER: BindMode.TRANSCEIVER,
}


class SessionClosed(ConnectionError):
    pass


def status_name(status: int) -> str:
    try:
        return "ESME_" + Status(status).name
    except ValueError:
        return f"0x{status:08x}"


class Session:
    """Runs one connection until either side closes it. ``host`` is the server:
    it authenticates binds, keeps the registry of bound sessions and handles submits."""

    def __init__(self, host: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.host = host
        self.cfg = host.cfg
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.account: Account | None = None
        self.mode: BindMode | None = None
        self.closing = False
        self.last_rx = time.monotonic()
        self.bound_at = 0.0
        self._seq = 0
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._inflight = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._out_window = asyncio.Semaphore(self.cfg.window)
        self._failed_binds = 0
        self._unbinding: asyncio.Task[None] | None = None
        self.submitted = 0
        self.delivered = 0

    def __repr__(self) -> str:
        who = self.account.system_id if self.account else "-"
        return f"<smpp session {self.peer} {who} {self.mode or 'open'}>"

    @property
    def can_receive(self) -> bool:
        return self.mode is not None and self.mode.can_receive and not self.closing

    # --- running ----------------------------------------------------------------------

    async def run(self) -> None:
        keepalive = asyncio.create_task(self._keepalive(), name=f"smpp-keepalive-{self.peer}")
        try:
            await self._read_loop()
        except (ConnectionError, OSError) as exc:
            log.debug("smpp %s: connection lost: %s", self.peer, exc)
        finally:
            self.closing = True
            keepalive.cancel()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(keepalive, *self._tasks, return_exceptions=True)
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(SessionClosed("the session closed"))
            self._pending.clear()
            if self.mode is not None:
                self.host.unregister(self)
                log.info("smpp %s: %s unbound (%s)", self.peer, self.account.system_id if self.account else "-",
                         self.mode)
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def _read_loop(self) -> None:
        while not self.closing:
            if self.mode is None:
                timeout_s: float | None = self.cfg.bind_timeout_s or None
            else:
                timeout_s = self.cfg.idle_timeout_s or None
            try:
                head = await asyncio.wait_for(self.reader.readexactly(HEADER_BYTES), timeout_s)
            except TimeoutError:
                if self.mode is None:
                    log.info("smpp %s: no bind within %.0f s; closing", self.peer, self.cfg.bind_timeout_s)
                    return
                if self._unbinding is not None:
                    return  # it did not even answer the unbind
                log.info("smpp %s: nothing received for %.0f s; unbinding", self.peer, self.cfg.idle_timeout_s)
                # In a task: this loop must go on reading to see the unbind_resp.
                self._unbinding = asyncio.create_task(self.unbind(), name=f"smpp-unbind-{self.peer}")
                self._tasks.add(self._unbinding)
                continue
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    log.warning("smpp %s: connection closed inside a PDU header", self.peer)
                return
            try:
                header = read_header(head, max_length=self.cfg.max_pdu_bytes)
            except SmppError as exc:
                log.warning("smpp %s: %s; generic_nack %s and close", self.peer, exc, status_name(exc.status))
                self._write(Pdu(Command.GENERIC_NACK, exc.sequence_number, exc.status))
                await self._drain()
                return
            try:
                body = await asyncio.wait_for(
                    self.reader.readexactly(header.command_length - HEADER_BYTES),
                    self.cfg.idle_timeout_s or None)
            except TimeoutError:
                log.warning("smpp %s: PDU body never came; closing", self.peer)
                return
            except asyncio.IncompleteReadError:
                log.warning("smpp %s: connection closed inside a PDU", self.peer)
                return
            self.last_rx = time.monotonic()
            try:
                pdu = decode(head + body, max_length=self.cfg.max_pdu_bytes)
            except SmppError as exc:
                self._refuse_malformed(header.command_id, header.sequence_number, exc)
                continue
            await self._dispatch(pdu)

    def _refuse_malformed(self, command_id: int, seq: int, exc: SmppError) -> None:
        if command_id & RESPONSE_BIT:
            # A broken response: the request it answers fails like a negative one.
            log.warning("smpp %s: malformed response: %s", self.peer, exc)
            fut = self._pending.get(seq)
            if fut is not None and not fut.done():
                fut.set_result(Pdu(command_id, seq, exc.status))
            return
        try:
            known = Command(command_id) if exc.status != Status.RINVCMDID else None
        except ValueError:
            known = None
        answer = Pdu(known.response if known is not None else Command.GENERIC_NACK, seq, exc.status)
        log.warning("smpp %s: %s; answered %s %s", self.peer, exc, answer.name, status_name(exc.status))
        self._write(answer)

    # --- writing -------------------------------------------------------------------

    def _write(self, pdu: Pdu) -> None:
        if self.writer.is_closing():
            return
        try:
            data = encode(pdu)
        except SmppError as exc:  # a bug of ours: answer something the ESME can read
            log.error("smpp %s: cannot encode %s: %s", self.peer, pdu.name, exc)
            data = encode(Pdu(pdu.command_id, pdu.sequence_number, Status.RSYSERR))
        self.writer.write(data)

    async def _drain(self) -> None:
        try:
            await asyncio.wait_for(self.writer.drain(), self.cfg.response_timeout_s)
        except TimeoutError:
            log.warning("smpp %s: the ESME does not read what is sent; closing", self.peer)
            self.close()

    def close(self) -> None:
        self.closing = True
        self.writer.close()

    def _next_seq(self) -> int:
        self._seq = self._seq % MAX_SEQUENCE + 1
        return self._seq

    async def request(self, pdu: Pdu, timeout_s: float | None = None) -> Pdu:
        """Send a request and wait for its response (generic_nack counts as one)."""
        if self.closing:
            raise SessionClosed("the session is closing")
        seq = self._next_seq()
        pdu.sequence_number = seq
        fut: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self._pending[seq] = fut  # registered before the write: the answer may be quick
        try:
            self._write(pdu)
            await self._drain()
            return await asyncio.wait_for(fut, timeout_s or self.cfg.response_timeout_s)
        finally:
            self._pending.pop(seq, None)

    async def deliver(self, params: dict[str, Any], tlvs: dict[int, bytes]) -> int:
        """One deliver_sm within the window; returns the ESME's command_status.
        TimeoutError / SessionClosed when no answer comes."""
        async with self._out_window:
            resp = await self.request(Pdu(Command.DELIVER_SM, 0, 0, params, tlvs))
        if resp.command_status == Status.ROK:
            self.delivered += 1
        return resp.command_status

    async def unbind(self) -> None:
        """Ask the ESME to unbind (shutdown, idle), wait briefly, then close."""
        if self.mode is not None and not self.closing:
            with contextlib.suppress(TimeoutError, SessionClosed, ConnectionError, OSError):
                await self.request(Pdu(Command.UNBIND, 0), timeout_s=min(2.0, self.cfg.response_timeout_s))
        self.close()

    async def _keepalive(self) -> None:
        interval = self.cfg.enquire_link_interval_s
        if not interval:
            return
        while not self.closing:
            await asyncio.sleep(interval / 2)
            if self.mode is None or time.monotonic() - self.last_rx < interval:
                continue
            try:
                await self.request(Pdu(Command.ENQUIRE_LINK, 0))
            except TimeoutError:
                log.info("smpp %s: no enquire_link_resp within %.0f s; closing", self.peer,
                         self.cfg.response_timeout_s)
                self.close()
                return
            except (SessionClosed, ConnectionError, OSError):
                return

    # --- dispatch -------------------------------------------------------------------

    async def _dispatch(self, pdu: Pdu) -> None:
        if pdu.command_id & RESPONSE_BIT:
            fut = self._pending.get(pdu.sequence_number)
            if fut is not None and not fut.done():
                fut.set_result(pdu)
            else:
                log.debug("smpp %s: %s for no request of ours (seq %d)", self.peer, pdu.name,
                          pdu.sequence_number)
            return
        cmd = pdu.command
        if cmd in BIND_MODES:
            await self._bind(pdu, BIND_MODES[cmd])
        elif cmd is Command.ENQUIRE_LINK:
            self._write(pdu.response())
        elif cmd is Command.UNBIND:
            self._write(pdu.response(Status.ROK if self.mode is not None else Status.RINVBNDSTS))
            if self.mode is not None:
                await self._drain()
                self.close()
        elif cmd in (Command.SUBMIT_SM, Command.SUBMIT_MULTI, Command.CANCEL_SM):
            if self.mode is None or not self.mode.can_submit or self.account is None:
                self._write(pdu.response(Status.RINVBNDSTS))
            elif self._inflight >= self.cfg.window:
                self._write(pdu.response(Status.RTHROTTLED))
            else:
                handler = self.host.cancel if cmd is Command.CANCEL_SM else self.host.submit
                self._spawn(self._answer(pdu, handler))
        else:
            # query_sm, replace_sm, deliver_sm from an ESME...: not offered here.
            self._write(Pdu(Command.GENERIC_NACK, pdu.sequence_number, Status.RINVCMDID))

    def _spawn(self, coro: Awaitable[None]) -> None:
        self._inflight += 1
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            self._inflight -= 1

        task.add_done_callback(done)

    async def _answer(self, pdu: Pdu, handler: Callable[[Account, Pdu], Awaitable[Pdu]]) -> None:
        assert self.account is not None
        try:
            resp = await handler(self.account, pdu)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must cost one PDU, not the session
            log.exception("smpp %s: %s failed", self.peer, pdu.name)
            resp = pdu.response(Status.RSYSERR)
        if resp.command_status == Status.ROK and pdu.command_id != Command.CANCEL_SM:
            self.submitted += 1
        self._write(resp)
        await self._drain()

    async def _bind(self, pdu: Pdu, mode: BindMode) -> None:
        if self.mode is not None:
            self._write(pdu.response(Status.RALYBND))
            return
        system_id, password = pdu.get("system_id", ""), pdu.get("password", "")
        account = await self.host.accounts.authenticate(system_id, password)
        refusal = None
        if account is None:
            refusal = "wrong system_id or password"
        elif (mode.can_submit and not account.may_send) or (mode.can_receive and not account.may_receive):
            refusal = f"the account may not bind as {mode}"
        elif not self.host.register(self, account, mode):
            refusal = f"the account's bind limit ({account.max_binds}) is reached"
        if refusal is not None:
            self._failed_binds += 1
            log.warning("smpp %s: bind_%s as %r refused: %s", self.peer, mode, system_id, refusal)
            # No hint whether the system_id exists; a pause slows password guessing.
            await asyncio.sleep(FAILED_BIND_DELAY_S)
            self._write(pdu.response(Status.RBINDFAIL))
            if self._failed_binds >= MAX_FAILED_BINDS:
                await self._drain()
                self.close()
            return
        assert account is not None
        self.account, self.mode, self.bound_at = account, mode, time.monotonic()
        resp = pdu.response(system_id=self.cfg.system_id)
        resp.tlvs[Tag.SC_INTERFACE_VERSION] = tlv_int(INTERFACE_VERSION, 1)
        self._write(resp)
        log.info("smpp %s: %s bound as %s", self.peer, account.system_id, mode)
        await self._drain()
        self.host.bound(self)
