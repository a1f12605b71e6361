"""One modem: supervision, bring-up, recovery, and the operations the pool uses.

State machine (gsmgw.domain.ModemState)::

    DISCONNECTED → PROBING → [SIM_LOCKED] → REGISTERING → READY
          ↑            │            │             │          │ port lost / N timeouts / reboot
          └────────────┴────────────┴─────────────┴──────────┘
    repeated failures → FAILED (still retrying with capped exponential backoff)

Recovery escalates while bring-up keeps failing on an open port:
level 1 reopen the port; level 2 also ``AT+CFUN=0`` / ``AT+CFUN=1``;
level 3 ``AT+CFUN=1,1`` (module reboot); beyond that FAILED, cycling from level 1
with the backoff capped at ``backoff_max_s``. A port that cannot be opened or
vanishes (unplug) is DISCONNECTED and simply retried with backoff: only the
owner (this class) reconnects, and a failed connect leaves no state behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace

from gsmgw.at import urc as urcmod
from gsmgw.at.channel import ATChannel, Response, TraceHook, Transaction
from gsmgw.at.parsers import (
    Registration,
    Signal,
    StorageUsage,
    parse_cds_header,
    parse_cmgl,
    parse_cmgr,
    parse_cmt_header,
    parse_cmti,
    parse_cnum,
    parse_cops,
    parse_cpin,
    parse_cpms,
    parse_crsm_iccid,
    parse_csq,
    parse_cusd,
    parse_iccid,
    parse_imei,
    parse_imsi,
    parse_pin_attempts,
    parse_plain_value,
    parse_registration,
)
from gsmgw.backoff import backoff_s
from gsmgw.config import ModemConfig
from gsmgw.domain import ModemIdentity, ModemState, SendOutcome, SendOutcomeKind
from gsmgw.errors import ATError, ATTimeout, CMEError, CMSError, ModemError, PortClosed, SimError
from gsmgw.modem import events as ev
from gsmgw.modem import sequences as seq
from gsmgw.modem.quirks import GENERIC, Quirks, pick_quirks
from gsmgw.modem.ussd import decode_response, encode_request
from gsmgw.transport import open_port
from gsmgw.waits import wait_event

log = logging.getLogger(__name__)


class ModemNotReady(ModemError):
    """The modem is not READY (or has no open port); nothing was written."""


class RegistrationTimeout(ModemError):
    """The modem did not register within ``registration_timeout_s``."""


class _PortDead(ModemError):
    """``max_consecutive_timeouts`` timeouts in a row: the port is declared dead."""


class _Stopping(ModemError):
    """stop() was called while bring-up was waiting."""


class _Reinit(ModemError):
    """The module rebooted by itself (RDY / ^SYSSTART after READY): run bring-up again."""


@dataclass(frozen=True, slots=True)
class StoredSms:
    index: int
    stat: int  # 0 REC UNREAD, 1 REC READ, 2 STO UNSENT, 3 STO SENT
    pdu_hex: str  # with the SMSC prefix, as the modem lists it
    tpdu_length: int
    storage: str


@dataclass
class Features:
    """What bring-up found to work (printed by ``gsmgw probe``)."""

    pdu_mode: bool = False
    cnmi: str = ""  # the AT+CNMI command that was accepted
    cnmi_supported: str = ""  # the AT+CNMI=? answer
    status_reports: str = ""  # "direct (+CDS)" / "stored (+CDSI)" / "" (none)
    cmms: bool = False
    cusd: bool = False
    storages: str = ""  # the AT+CPMS=? answer
    registration_queries: list[str] = field(default_factory=list)
    pin_attempts_left: int | None = None
    sms_ready_wait_s: float = 0.0  # how long the SMS service kept answering "not ready" (booting)


class Modem:
    """One modem driven from its ``[[modem]]`` settings, passed as they are.

    ``trace`` sees every byte on the port (the CLI's ``--trace``, TRACE logging);
    ``on_event`` is a shorthand for listening to every event type on :attr:`events`.
    """

    def __init__(
        self,
        settings: ModemConfig,
        *,
        on_event: Callable[[ev.ModemEvent], None] | None = None,
        trace: TraceHook | None = None,
    ) -> None:
        self.settings = settings
        self.events = ev.EventRegistry(settings.name)
        if on_event is not None:
            self.events.register(ev.ALL_EVENT_TYPES, on_event)
        self._trace = trace
        self.state = ModemState.DISCONNECTED
        self.identity = ModemIdentity()
        self.quirks: Quirks = GENERIC
        self.features = Features()
        self.signal: Signal | None = None
        self.registration: Registration | None = None
        self.storage: StorageUsage | None = None
        self.recovery_level = 0
        self.attempts = 0  # connection attempts that ended (failed or lost)
        self.last_error = ""  # why the last attempt ended
        self.state_reason = ""  # why the modem is in its state (the last transition's reason)
        self._channel: ATChannel | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._done = asyncio.Event()
        self._running = False
        self._escalation_done_for = 0  # recovery level whose action was already taken
        self._reg_changed = asyncio.Event()
        self._boot_progress = asyncio.Event()  # a readiness URC (RDY, SMS Ready, ...) arrived
        self._port_lost_reason: str | None = None
        self._rebooted = False
        self._cusd_waiters: list[asyncio.Future[urcmod.Urc]] = []
        self._ussd_lock = asyncio.Lock()  # one USSD session at a time: answers carry no id
        self._background: set[asyncio.Task[None]] = set()
        # PIN safety (never into a PUK lock): a refusal is remembered for the life
        # of this object; a PIN whose fate is unknown is not sent again until a
        # later unlock proves it good.
        self._pin_refused = False
        self._pin_unconfirmed = False
        self._pin_known_good = False

    # --- events and state ------------------------------------------------------

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def signal_dbm(self) -> int | None:
        return self.signal.dbm if self.signal else None

    @property
    def csq(self) -> int | None:
        return self.signal.rssi if self.signal else None

    def _emit(self, event: ev.ModemEvent) -> None:
        self.events.emit(event)  # a listener's failure is logged there, never raised here

    def _set_state(self, new: ModemState, reason: str = "") -> None:
        old = self.state
        if old is new:
            # A new cause for the same state (port missing, then locked by another
            # program) is news for the operator: status shows the current one.
            if reason and reason != self.state_reason and new is not ModemState.READY:
                self.state_reason = reason
                self._emit(ev.StateChanged(self.name, old, new, reason))
            return
        self.state = new
        self.state_reason = reason
        if new is ModemState.READY:
            self._ready.set()
        else:
            self._ready.clear()
        log.info("%s: %s -> %s (%s)", self.name, old, new, reason)
        self._emit(ev.StateChanged(self.name, old, new, reason))

    async def wait_ready(self, timeout_s: float) -> None:
        """Return once READY; raise ``TimeoutError`` after ``timeout_s``."""
        await asyncio.wait_for(self._ready.wait(), timeout_s)

    # --- supervision -----------------------------------------------------------

    async def run(self) -> None:
        s = self.settings
        failures = 0  # attempts in a row that ended; reset once READY
        sim_problem = False  # a SIM problem does not fix itself quickly: the longest wait
        if self._running:
            raise RuntimeError(f"{self.name}: run() is already running")
        self._running = True
        self._done.clear()
        try:
            while not self._stopping:
                failure_on_open_port = False
                reason = ""
                try:
                    await self._connect()
                    if self.recovery_level >= 2 and self._escalation_done_for != self.recovery_level:
                        # Once per level: a module slow to come back from AT+CFUN=1,1
                        # must not be rebooted again the moment its port reappears.
                        self._escalation_done_for = self.recovery_level
                        await self._escalate(self.recovery_level)
                    await self._bring_up()
                    self.recovery_level = 0
                    self._escalation_done_for = 0
                    failures, sim_problem = 0, False
                    await self._serve()
                except _Stopping:
                    reason = "stopped"
                except PortClosed as exc:
                    reason = f"port: {exc}"
                except RegistrationTimeout as exc:
                    reason = f"no network: {exc}"
                    failure_on_open_port = True
                except (_PortDead, ATTimeout) as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                    failure_on_open_port = True
                except _Reinit as exc:
                    reason = str(exc)
                except SimError as exc:
                    reason = f"SIM: {exc}"
                    self._set_state(ModemState.FAILED, reason)
                    sim_problem = True
                except (ATError, ModemError) as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                    failure_on_open_port = True
                except Exception as exc:  # a driver bug must not end supervision
                    log.exception("%s: unexpected error", self.name)
                    reason = f"internal error: {exc!r}"
                    failure_on_open_port = True
                await self._close_channel()
                if self._stopping:
                    break
                self.attempts += 1
                self.last_error = reason
                if failure_on_open_port:
                    self.recovery_level += 1
                    if self.recovery_level > 3:
                        self.recovery_level = 1
                        self._set_state(ModemState.FAILED, f"recovery exhausted; {reason}")
                if self.state is not ModemState.FAILED:
                    self._set_state(ModemState.DISCONNECTED, reason)
                failures += 1
                delay_s = s.backoff_max_s if sim_problem else backoff_s(
                    failures, initial_s=s.backoff_initial_s, max_s=s.backoff_max_s)
                log.warning("%s: %s; retry in %.2f s (recovery level %d)", self.name, reason, delay_s, self.recovery_level)
                await self._sleep(delay_s)
        finally:
            await self._close_channel()
            for task in list(self._background):
                task.cancel()
            for task in list(self._background):
                with contextlib.suppress(BaseException):
                    await task
            if self.state is not ModemState.DISCONNECTED:
                self._set_state(ModemState.DISCONNECTED, "stopped" if self._stopping else "run() ended")
            self._running = False
            self._done.set()

    async def stop(self) -> None:
        """End :meth:`run` and return once it has ended.

        An in-flight transaction (a send) finishes or times out first; bring-up
        waits (SIM, registration, backoff) are interrupted.
        """
        self._stopping = True
        self._wake.set()
        self._reg_changed.set()
        if self._running:
            await self._done.wait()

    def _check_stopping(self) -> None:
        if self._stopping:
            raise _Stopping("stop requested")

    async def _sleep(self, delay_s: float) -> None:
        self._wake.clear()
        if self._stopping:
            return
        await wait_event(self._wake, delay_s)

    async def _connect(self) -> None:
        s = self.settings
        self._port_lost_reason = None
        self._rebooted = False
        reader, writer = await open_port(s.port, baudrate=s.baudrate)
        channel = ATChannel(
            reader,
            writer,
            name=self.name,
            trace=self._trace,
            on_urc=self._on_urc,
            on_lost=self._on_lost,
            resync_timeout_s=min(1.0, s.command_timeout_s),
        )
        channel.start()
        self._channel = channel

    async def _close_channel(self) -> None:
        channel, self._channel = self._channel, None
        if channel is None:
            return
        if not channel.closed:
            # Never pull the port from under a pending send: wait for the lock.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.prompt_timeout_s + self.settings.send_timeout_s + 1):
                    async with channel.hold():
                        pass
        await channel.close()

    def _on_lost(self, reason: str) -> None:
        self._port_lost_reason = reason
        self._emit(ev.PortLost(reason, self.name))
        self._wake.set()

    def _ch(self) -> ATChannel:
        ch = self._channel
        if ch is None or ch.closed:
            raise PortClosed(f"{self.name}: port not open")
        return ch

    async def _cmd(self, command: str, timeout_s: float | None = None, *, resync: bool = True) -> Response:
        timeout = self.settings.command_timeout_s if timeout_s is None else timeout_s
        info_final = command.upper() in self.quirks.answers_without_final
        return await self._ch().command(command, timeout, resync=resync, info_final=info_final)

    async def _serve(self) -> None:
        s = self.settings
        next_health = time.monotonic() + s.health_interval_s
        while not self._stopping:
            ch = self._ch()
            if self._port_lost_reason is not None:
                raise PortClosed(self._port_lost_reason)
            if ch.consecutive_timeouts >= s.max_consecutive_timeouts:
                raise _PortDead(f"{ch.consecutive_timeouts} consecutive timeouts")
            if self._rebooted:
                raise _Reinit("module rebooted by itself (boot URC while READY)")
            delay = next_health - time.monotonic()
            if delay > 0:
                await self._sleep(delay)
                continue
            next_health = time.monotonic() + s.health_interval_s
            try:
                await self.health_check()
            except ATTimeout:
                continue  # counted by the channel; checked at the top of the loop
            except ATError as exc:
                log.warning("%s: health poll failed: %s", self.name, exc)
            if self.registration is not None and not self.registration.registered:
                self._set_state(ModemState.REGISTERING, f"registration lost: {self.registration}")
                await self._wait_registration()
                self._set_state(ModemState.READY, "registered again")

    # --- bring-up --------------------------------------------------------------

    async def _run_steps(self, steps: Sequence[seq.Step]) -> dict[seq.Step, str]:
        """Run steps; returns which alternative each accepted step used."""
        accepted: dict[seq.Step, str] = {}
        for step in steps:
            last: Exception | None = None
            for command in step.commands:
                try:
                    await self._cmd(command, step.timeout_s)
                    accepted[step] = command
                    break
                except ATError as exc:
                    last = exc
                except ATTimeout as exc:
                    # An optional command may be silently unsupported; the channel
                    # still counts the timeout, and too many end bring-up below.
                    if not step.optional:
                        raise
                    log.warning("%s: optional %s timed out", self.name, command)
                    last = exc
            else:
                if not step.optional:
                    raise last if last is not None else ModemError(f"step {step} failed")
        return accepted

    async def _wake_interpreter(self) -> None:
        """``AT`` until the module answers (it may still be booting, or autobauding)."""
        last: Exception | None = None
        for attempt in range(3):
            try:
                # The first AT is the probe; after it timed out, the channel's resync (ESC
                # first, then AT) runs too: it cancels an SMS prompt a crashed gateway left open.
                await self._cmd("AT", min(self.settings.command_timeout_s, 2.0), resync=attempt > 0)
            except ATTimeout as exc:
                last = exc
                continue
            except ATError:
                pass  # it answered
            ch = self._ch()
            await ch.drain()  # a late answer to an earlier command may still trickle in
            ch.needs_resync = False
            return
        assert last is not None
        raise last

    async def _escalate(self, level: int) -> None:
        s = self.settings
        with contextlib.suppress(ATTimeout, ATError):
            await self._wake_interpreter()
        # Written even if AT went unanswered (resync=False): a wedged radio stack
        # may still act on CFUN, and nothing is lost by trying.
        cfun_timeout_s = s.command_timeout_s * 3  # CFUN=0 detaches from the network: slow
        if level == 2:
            self._set_state(ModemState.PROBING, "recovery: AT+CFUN=0 / AT+CFUN=1")
            with contextlib.suppress(ATTimeout, ATError):
                await self._cmd("AT+CFUN=0", cfun_timeout_s, resync=False)
            with contextlib.suppress(ATTimeout, ATError):
                await self._cmd("AT+CFUN=1", cfun_timeout_s, resync=False)
        elif level >= 3:
            self._set_state(ModemState.PROBING, "recovery: AT+CFUN=1,1 (module reboot)")
            with contextlib.suppress(ATTimeout, ATError):
                await self._cmd("AT+CFUN=1,1", s.command_timeout_s, resync=False)
            await self._close_channel()
            await self._sleep(s.reboot_wait_s)
            await self._connect()
        ch = self._ch()
        ch.consecutive_timeouts = 0

    async def _bring_up(self) -> None:
        s = self.settings
        self._set_state(ModemState.PROBING, f"port {s.port} open")
        await self._wake_interpreter()
        await self._run_steps(seq.BASIC_INIT)
        await self._identify_vendor()
        await self._run_steps(self.quirks.extra_init)
        await self._unlock_sim()
        with contextlib.suppress(ATError, ValueError):
            imei = parse_imei((await self._cmd("AT+CGSN")).lines)
            self.identity = replace(self.identity, imei=imei)
        await self._sms_init()
        await self._run_steps(seq.URC_INIT)
        self._set_state(ModemState.REGISTERING, "SIM ready")
        await self._wait_registration()
        await self._identify_subscriber()
        self._emit(ev.Identified(self.identity, self.name))
        with contextlib.suppress(ATError):
            await self.health_check()
        ch = self._ch()
        if ch.consecutive_timeouts >= s.max_consecutive_timeouts:
            raise _PortDead("timeouts during bring-up")
        self._set_state(ModemState.READY, "registered")

    async def _identify_vendor(self) -> None:
        values: dict[str, str] = {}
        for command, prefix in (("AT+CGMI", "+CGMI"), ("AT+CGMM", "+CGMM"), ("AT+CGMR", "+CGMR")):
            try:
                values[command] = parse_plain_value((await self._cmd(command)).lines, prefix)
            except (ATError, ValueError):
                values[command] = ""
        firmware = values["AT+CGMR"]
        if firmware.lower().startswith("revision:"):
            firmware = firmware.split(":", 1)[1].strip()
        self.identity = replace(
            self.identity, manufacturer=values["AT+CGMI"], model=values["AT+CGMM"], firmware=firmware
        )
        self.quirks = pick_quirks(self.identity.manufacturer, self.identity.model)
        log.info("%s: %s %s (%s), quirks %s", self.name, self.identity.manufacturer, self.identity.model, firmware, self.quirks.family)

    async def _pin_attempts_left(self) -> int | None:
        for command in self.quirks.pin_attempts_commands:
            try:
                resp = await self._cmd(command)
            except ATError:
                continue
            left = parse_pin_attempts(resp.lines)
            if left is not None:
                return left
        return None

    async def _unlock_sim(self) -> None:
        s = self.settings
        deadline = time.monotonic() + s.sim_ready_timeout_s
        poll_s = min(0.5, max(0.05, s.command_timeout_s / 4))
        pin_sent_here = False
        while True:
            try:
                code = parse_cpin(urcmod_find((await self._cmd("AT+CPIN?")).lines, "+CPIN"))
            except CMEError as exc:
                if exc.code in seq.CME_SIM_NOT_INSERTED:
                    raise SimError(f"SIM not inserted or failed (+CME ERROR: {exc.code})") from exc
                if exc.code == 12:
                    raise SimError("SIM PUK required: enter the PUK by hand") from exc
                code = "BUSY"
            except (ATError, ValueError):
                code = "BUSY"  # plain ERROR while the SIM initialises (SIM800 with CMEE=0)
            if code == "READY":
                if self._pin_unconfirmed:
                    self._pin_unconfirmed = False
                    self._pin_known_good = True
                return
            if code == seq.CPIN_NEEDS_PIN and not pin_sent_here:
                # (Once sent and answered OK, a lingering "SIM PIN" is only polled.)
                self._set_state(ModemState.SIM_LOCKED, "SIM PIN required")
                await self._enter_pin()
                pin_sent_here = True
            elif code in seq.CPIN_HOPELESS:
                self._set_state(ModemState.SIM_LOCKED, code)
                raise SimError(f"SIM state {code!r}: needs manual action")
            if time.monotonic() >= deadline:
                raise SimError(f"SIM not ready within {s.sim_ready_timeout_s:g} s (last: {code})")
            await asyncio.sleep(poll_s)
            self._check_stopping()

    async def _enter_pin(self) -> None:
        pin = self.settings.pin
        if self._pin_refused:
            raise SimError("the configured PIN was refused earlier; not sending it again (PUK risk)")
        if not pin:
            raise SimError("SIM needs a PIN and none is configured: set pin in its [[modem]] block")
        if self._pin_unconfirmed and not self._pin_known_good:
            raise SimError("a PIN was sent and its outcome is unknown; not sending it again")
        left = await self._pin_attempts_left()
        self.features.pin_attempts_left = left
        if left is not None and left < 2 and not self._pin_known_good:
            raise SimError(f"only {left} PIN attempt(s) left; enter the PIN by hand to avoid a PUK lock")
        self._pin_unconfirmed = True
        # A timeout propagates with the PIN's fate unknown (_pin_unconfirmed stays set).
        try:
            await self._cmd(f'AT+CPIN="{pin}"', max(self.settings.command_timeout_s, 1.0) * 2)
        except ATError as exc:
            self._pin_refused = True
            raise SimError(f"PIN refused ({exc.final}); will not retry") from exc

    async def _wait_sms_service(self) -> None:
        """PDU mode on, and the SMS storage answering, waiting while the module boots.

        SIM800 answers SMS commands with ERROR until it prints "SMS Ready"; EC25 and
        SIM7600 have "+QIND: SMS DONE" / "SMS DONE". A not-ready answer is retried with
        backoff (a readiness URC cuts the wait short) for up to ``sim_ready_timeout_s``;
        only then does bring-up fail and recovery escalate.
        """
        s = self.settings
        started = time.monotonic()
        deadline = started + s.sim_ready_timeout_s
        initial_s, cap_s = seq.SMS_READY_BACKOFF_S
        not_ready = 0
        while True:
            self._check_stopping()
            self._boot_progress.clear()
            try:
                await self._run_steps(seq.SMS_INIT)
                self.features.pdu_mode = True
                # AT+CPMS? needs the SMS storage: the SIM800 refuses it before "SMS Ready"
                # even when AT+CMGF=0 (a mere setting) is accepted.
                await self._cmd("AT+CPMS?")
                break
            except ATError as exc:
                if self._sms_not_ready(exc) and time.monotonic() < deadline:
                    not_ready += 1
                    delay_s = backoff_s(not_ready, initial_s=initial_s, max_s=cap_s)
                    log.info("%s: SMS service not ready yet (%s); retrying in %.2f s", self.name, exc.final, delay_s)
                elif self.features.pdu_mode and exc.command.upper() == "AT+CPMS?":
                    break  # PDU mode works; a module whose AT+CPMS? fails is still usable
                else:
                    raise ModemError(f"SMS service not ready ({exc}) after {time.monotonic() - started:.1f} s") from exc
            await wait_event(self._boot_progress, min(delay_s, max(0.0, deadline - time.monotonic())))
        self.features.sms_ready_wait_s = round(time.monotonic() - started, 3)

    @staticmethod
    def _sms_not_ready(exc: ATError) -> bool:
        """Plain ERROR, or a code that means "not yet" rather than "never"."""
        if isinstance(exc, CMSError):
            return exc.code in seq.CMS_NOT_READY
        if isinstance(exc, CMEError):
            return exc.code in seq.CME_SIM_BUSY
        return exc.final == "ERROR"

    async def _sms_init(self) -> None:
        s = self.settings
        f = self.features
        await self._wait_sms_service()
        if s.ack_cmt:
            with contextlib.suppress(ATError):
                await self._cmd("AT+CSMS=1")
        mem = s.sms_storage
        with contextlib.suppress(ATError):
            f.storages = " ".join((await self._cmd("AT+CPMS=?")).lines)
        storage_step = seq.Step((f'AT+CPMS="{mem}","{mem}","{mem}"', f'AT+CPMS="{mem}","{mem}"', f'AT+CPMS="{mem}"'), optional=True)
        await self._run_steps((storage_step,))
        with contextlib.suppress(ATError):
            f.cnmi_supported = " ".join((await self._cmd("AT+CNMI=?")).lines)
        cnmi = seq.CNMI_DIRECT + self.quirks.cnmi if s.ack_cmt else self.quirks.cnmi
        accepted = await self._run_steps((seq.Step(cnmi, optional=True),))
        f.cnmi = next(iter(accepted.values()), "")
        ds = f.cnmi.rsplit(",", 2)[-2] if f.cnmi else "0"
        f.status_reports = {"1": "direct (+CDS)", "2": "stored (+CDSI)"}.get(ds, "")
        try:
            await self._cmd("AT+CMMS=?")
            f.cmms = True
        except ATError:
            f.cmms = False
        try:
            await self._cmd("AT+CUSD=?")
            f.cusd = True
        except ATError:
            f.cusd = False

    async def query_registration(self) -> Registration:
        """The best of +CREG?/+CGREG?/+CEREG? (SMS works when any of them is registered)."""
        best: Registration | None = None
        answered: list[str] = []
        for command in seq.REGISTRATION_QUERIES:
            prefix = command[2:-1]
            try:
                resp = await self._cmd(command)
                reg = parse_registration(urcmod_find(resp.lines, prefix), solicited=True)
            except (ATError, ValueError):
                continue
            answered.append(command)
            if best is None or (reg.registered and not best.registered):
                best = reg
            if reg.registered:
                break
        if not self.features.registration_queries:
            self.features.registration_queries = answered
        if best is None:
            raise ModemError("no registration query answered")
        self.registration = best
        return best

    async def _wait_registration(self) -> None:
        s = self.settings
        deadline = time.monotonic() + s.registration_timeout_s
        poll_s = max(0.05, min(2.0, s.registration_timeout_s / 10))
        while True:
            self._check_stopping()
            self._reg_changed.clear()
            reg = await self.query_registration()
            if reg.registered:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RegistrationTimeout(f"not registered after {s.registration_timeout_s:g} s ({reg})")
            await wait_event(self._reg_changed, min(poll_s, remaining))
            if self._port_lost_reason is not None:
                raise PortClosed(self._port_lost_reason)

    async def _identify_subscriber(self) -> None:
        ident = self.identity
        # Identity is informative: a command that errors or times out leaves a field empty.
        with contextlib.suppress(ATError, ATTimeout, ValueError):
            ident = replace(ident, imsi=parse_imsi((await self._cmd("AT+CIMI")).lines))
        for command in self.quirks.iccid_commands:
            try:
                resp = await self._cmd(command)
                if command.startswith("AT+CRSM"):
                    iccid = parse_crsm_iccid(urcmod_find(resp.lines, "+CRSM"))
                else:
                    iccid = parse_iccid(resp.lines)
                ident = replace(ident, iccid=iccid)
                break
            except (ATError, ATTimeout, ValueError):
                continue
        with contextlib.suppress(ATError, ATTimeout, ValueError):
            await self._cmd("AT+COPS=3,0")
            ident = replace(ident, operator=parse_cops(urcmod_find((await self._cmd("AT+COPS?")).lines, "+COPS")))
        with contextlib.suppress(ATError, ATTimeout, ValueError):
            ident = replace(ident, own_number=parse_cnum((await self._cmd("AT+CNUM")).lines))
        self.identity = ident

    async def health_check(self) -> ev.Health:
        """Signal, registration and storage use; emits and returns a :class:`Health` event."""
        with contextlib.suppress(ValueError):
            self.signal = parse_csq(urcmod_find((await self._cmd("AT+CSQ")).lines, "+CSQ"))
        with contextlib.suppress(ModemError):
            await self.query_registration()
        with contextlib.suppress(ATError, ValueError):
            usage = parse_cpms(urcmod_find((await self._cmd("AT+CPMS?")).lines, "+CPMS"))
            self.storage = usage[0]
        health = ev.Health(
            csq=self.csq,
            registration=str(self.registration) if self.registration else "unknown",
            storage_used=self.storage.used if self.storage else None,
            storage_total=self.storage.total if self.storage else None,
            signal_dbm=self.signal_dbm,
            registered=bool(self.registration and self.registration.registered),
            modem_id=self.name,
        )
        self._emit(health)
        return health

    # --- URCs --------------------------------------------------------------------

    def _on_urc(self, u: urcmod.Urc) -> None:
        name = self.name
        if u.name in seq.READINESS_URCS:
            self._boot_progress.set()
        try:
            if u.name == "CMTI":
                mem, index = parse_cmti(u.line)
                self._emit(ev.SmsIndication(mem, index, name))
            elif u.name == "CDSI":
                mem, index = parse_cmti(u.line)
                self._emit(ev.StatusReportIndication(mem, index, name))
            elif u.name == "CMT" and u.pdu:
                self._emit(ev.SmsReceived(u.pdu, parse_cmt_header(u.line), name))
                self._ack_later()
            elif u.name == "CDS" and u.pdu:
                self._emit(ev.StatusReportReceived(u.pdu, parse_cds_header(u.line), name))
                self._ack_later()
            elif u.name in ("CREG", "CGREG", "CEREG"):
                reg = parse_registration(u.line, solicited=False)
                if reg.registered or self.registration is None or self.registration.kind == reg.kind:
                    self.registration = reg
                self._reg_changed.set()
            elif u.name == "CUSD":
                for fut in self._cusd_waiters:
                    if not fut.done():
                        fut.set_result(u)
            elif u.name == "HW_SMMEMFULL" or (u.name == "QIND" and "smsfull" in u.line.lower()):
                # Quectel +QIND: "smsfull","SM" / Huawei ^SMMEMFULL: "SM": inbound SMS are
                # being refused by the network until something is deleted.
                mem = u.line.rsplit(",", 1)[-1] if u.name == "QIND" else u.line.split(":", 1)[1]
                self._emit(ev.StorageFull(mem.strip().strip('"'), name))
            elif u.name in ("RDY", "HW_SYSSTART") and self.state is ModemState.READY:
                self._rebooted = True
                self._wake.set()
            else:
                log.debug("%s: URC %s: %r", name, u.name, u.line)
        except (ValueError, IndexError):
            log.warning("%s: unparsable URC %r", name, u.line)

    def _ack_later(self) -> None:
        if not self.settings.ack_cmt:
            return

        async def ack() -> None:
            # Through the lock like everything else: never written during a send.
            with contextlib.suppress(ModemError):
                await self._cmd("AT+CNMA")

        task = asyncio.create_task(ack(), name=f"cnma {self.name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- operations for the pool -----------------------------------------------

    def _ready_channel(self) -> ATChannel:
        ch = self._channel
        if self.state is not ModemState.READY or ch is None or ch.closed:
            raise ModemNotReady(f"{self.name}: state {self.state}, nothing sent")
        return ch

    async def send_pdus(self, parts: Sequence[tuple[str, int]]) -> list[SendOutcome]:
        """Send the parts of ONE message in order; stop after the first part that is not OK.

        Returns one :class:`SendOutcome` per attempted part (parts after the first
        non-OK one are not attempted and not in the list).

        Raises, only when nothing of the message was written:
        * :class:`ModemNotReady` — not READY or no open port;
        * :class:`PortClosed` — the port vanished before the first PDU was written;
        * :class:`ATTimeout` — no ``> `` prompt for the first part (ESC was sent; the
          PDU was not written, so the message did not leave).
        For a later part the same situations give an ERROR outcome whose detail says
        the PDU was not written.
        """
        if not parts:
            raise ValueError("send_pdus needs at least one part")
        s = self.settings
        ch = self._ready_channel()
        outcomes: list[SendOutcome] = []
        multipart = len(parts) > 1
        async with ch.hold() as tx:
            if self.state is not ModemState.READY:
                raise ModemNotReady(f"{self.name}: state {self.state}, nothing sent")
            if multipart and self.features.cmms:
                # Keep the radio link open between parts (TS 27.005 §3.5.8). Failing
                # to set it only costs speed, so errors are not fatal.
                with contextlib.suppress(ATError):
                    await tx.command("AT+CMMS=1", s.command_timeout_s)
            for i, (pdu_hex, tpdu_length) in enumerate(parts):
                try:
                    outcome = await tx.submit_pdu(
                        pdu_hex, tpdu_length, prompt_timeout_s=s.prompt_timeout_s, final_timeout_s=s.send_timeout_s
                    )
                except (ATTimeout, PortClosed) as exc:
                    if i == 0:
                        self._check_dead(ch)
                        raise
                    outcome = SendOutcome(SendOutcomeKind.ERROR, detail=f"PDU not written: {exc}")
                outcomes.append(outcome)
                if not outcome.ok:
                    break
            if multipart and self.features.cmms and outcomes[-1].ok and not ch.closed:
                with contextlib.suppress(ModemError):
                    await tx.command("AT+CMMS=0", s.command_timeout_s)
        self._check_dead(ch)
        return outcomes

    def _check_dead(self, ch: ATChannel) -> None:
        if ch.consecutive_timeouts >= self.settings.max_consecutive_timeouts or ch.closed:
            self._wake.set()

    @contextlib.asynccontextmanager
    async def _storage(self, storage: str | None) -> AsyncIterator[tuple[Transaction, str]]:
        """Hold the port with ``storage`` selected for reading/deleting (TS 27.005 §3.2.2 <mem1>).

        Status reports announced as ``+CDSI: "SR",0`` live in another memory than
        the configured one; ``AT+CPMS="SR"`` switches <mem1> only, and it is
        switched back before the port is released.
        """
        ch = self._ready_channel()
        mem = self.settings.sms_storage
        wanted = (storage or mem).upper()
        async with ch.hold() as tx:
            switched = wanted != mem.upper()
            if switched:
                await tx.command(f'AT+CPMS="{wanted}"', self.settings.command_timeout_s)
            try:
                yield tx, wanted
            finally:
                if switched and not ch.closed:
                    with contextlib.suppress(ModemError):
                        await tx.command(f'AT+CPMS="{mem}"', self.settings.command_timeout_s)

    async def list_sms(self, stat: int = 4, storage: str | None = None) -> list[StoredSms]:
        """``AT+CMGL=<stat>`` (4 = all) on the configured storage, or on ``storage``."""
        async with self._storage(storage) as (tx, mem):
            resp = await tx.command(f"AT+CMGL={int(stat)}", self.settings.list_timeout_s)
        return [StoredSms(p.index, p.stat, p.pdu_hex, p.tpdu_length, mem) for p in parse_cmgl(resp.lines)]

    async def read_sms(self, index: int, storage: str | None = None) -> StoredSms | None:
        """``AT+CMGR=<index>``; ``None`` for an empty slot. Pass the storage a +CMTI/+CDSI named."""
        async with self._storage(storage) as (tx, mem):
            try:
                resp = await tx.command(f"AT+CMGR={int(index)}", self.settings.command_timeout_s)
            except CMSError as exc:
                if exc.code == 321:  # invalid memory index: an empty slot on Huawei
                    return None
                raise
        p = parse_cmgr(resp.lines, index)
        return StoredSms(p.index, p.stat, p.pdu_hex, p.tpdu_length, mem) if p else None

    async def delete_sms(self, index: int, storage: str | None = None) -> None:
        async with self._storage(storage) as (tx, _mem):
            await tx.command(f"AT+CMGD={int(index)}", self.settings.command_timeout_s)

    async def ussd(self, code: str, timeout_s: float = 15.0) -> str:
        """Send a USSD request (``*100#``) and return the decoded answer text."""
        if not code or '"' in code or any(ord(c) < 0x20 for c in code):
            raise ValueError(f"bad USSD code {code!r}")
        self._ready_channel()
        async with self._ussd_lock:
            return await self._ussd(code, timeout_s)

    async def _ussd(self, code: str, timeout_s: float) -> str:
        packed = self.quirks.ussd_packed_hex
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[urcmod.Urc] = loop.create_future()
        self._cusd_waiters.append(fut)  # registered before the write
        try:
            await self._cmd(f'AT+CUSD=1,"{encode_request(code, packed_hex=packed)}",15')
            try:
                u = await asyncio.wait_for(fut, timeout_s)
            except TimeoutError:
                raise ATTimeout(f"no +CUSD answer within {timeout_s:g} s") from None
        finally:
            self._cusd_waiters.remove(fut)
        parsed = parse_cusd(u.line)
        if parsed.status == 1:
            # The network waits for a menu choice; close the session (we only read).
            with contextlib.suppress(ModemError):
                await self._cmd("AT+CUSD=2")
        if parsed.status in (2, 4, 5) and not parsed.text:
            raise ModemError(f"USSD {code!r} not answered (+CUSD status {parsed.status})")
        return decode_response(parsed.text, parsed.dcs, packed_hex=packed)


def urcmod_find(lines: Sequence[str], prefix: str) -> str:
    """The first response line with ``prefix`` (ValueError if absent)."""
    for line in lines:
        if line.strip().upper().startswith(prefix.upper()):
            return line
    raise ValueError(f"no {prefix} line in {list(lines)!r}")
