"""Expose emulated modems on real pseudo-terminals (in-process, on the running event loop).

The master side is read with ``loop.add_reader``; the slave path (or a stable symlink to
it) is what a client opens, exactly like ``/dev/ttyUSB0``. The emulator keeps its own
slave descriptor open so the pty survives clients that open and close the port per
run (gammu does). :meth:`PtyModem.unplug` closes everything: a client blocked on the
port sees EOF/EIO, as when a USB modem is pulled.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import termios
import tty
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from gsmgw.emulator.behaviour import Behaviour
from gsmgw.emulator.modem import EmulatedModem
from gsmgw.emulator.network import DeliveryRuleSpec, Network
from gsmgw.emulator.personality import DEFAULT_PERSONALITY, PERSONALITIES, Personality
from gsmgw.emulator.replay import ReplayModem

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_PENDING_OUTPUT_BYTES = 256 * 1024
"""Output the client has not read yet is dropped beyond this (a UART would overrun too)."""


class PtyModem:
    def __init__(self, modem: EmulatedModem | ReplayModem, link_path: Path | None = None) -> None:
        self.modem = modem
        self.link_path = link_path
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_path: str | None = None
        self._pending = bytearray()
        self._writer_registered = False
        self._replug_task: asyncio.Task[None] | None = None
        self.plugged = False
        self._plugged_event = asyncio.Event()

    @property
    def path(self) -> Path:
        """What a client opens: the stable symlink if one was asked for, else the slave tty."""
        if self.link_path is not None:
            return self.link_path
        if self._slave_path is None:
            raise RuntimeError("the pty is not open")
        return Path(self._slave_path)

    @property
    def slave_path(self) -> str | None:
        return self._slave_path

    async def __aenter__(self) -> PtyModem:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        if self.plugged:
            raise RuntimeError("already plugged")
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        try:
            # Raw 8-bit line with no echo from the tty layer: echo is the modem's job (ATE).
            tty.setraw(slave, termios.TCSANOW)
            os.set_blocking(master, False)
            self._slave_path = os.ttyname(slave)
            if self.link_path is not None:
                self.link_path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.link_path.with_name(f".{self.link_path.name}.{os.getpid()}.tmp")
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                tmp.symlink_to(self._slave_path)
                tmp.replace(self.link_path)  # atomic: a client never sees it missing
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        self._master, self._slave = master, slave
        self._pending.clear()
        loop.add_reader(master, self._on_readable)
        self.plugged = True
        self._plugged_event.set()
        self.modem.on_drop = self._on_drop
        self.modem.attach(self._write)
        log.debug("emulated modem %s on %s", self.modem.number, self._slave_path)

    async def unplug(self) -> None:
        """The modem vanishes: the client sees EOF/EIO and the symlink disappears."""
        if not self.plugged:
            return
        self.plugged = False
        self._plugged_event.clear()
        await self.modem.detach()
        loop = asyncio.get_running_loop()
        if self._master is not None:
            loop.remove_reader(self._master)
            if self._writer_registered:
                loop.remove_writer(self._master)
                self._writer_registered = False
            os.close(self._master)
        if self._slave is not None:
            os.close(self._slave)
        self._master = self._slave = None
        if self.link_path is not None:
            with contextlib.suppress(FileNotFoundError):
                if self.link_path.is_symlink() and os.readlink(self.link_path) == self._slave_path:
                    self.link_path.unlink()

    async def replug(self) -> None:
        """Plug back in: a new pty (maybe a new /dev/pts number), symlink updated, modem reboots."""
        await self.unplug()
        await self.open()

    async def wait_plugged(self, timeout_s: float = 5.0) -> None:
        """Wait until the modem is (back) on a pty, e.g. after a drop with ``replug_after_s``."""
        async with asyncio.timeout(timeout_s):
            await self._plugged_event.wait()

    async def close(self) -> None:
        if self._replug_task is not None:
            self._replug_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replug_task
            self._replug_task = None
        await self.unplug()

    # --- plumbing ------------------------------------------------------------------

    def _on_drop(self) -> None:
        """A behaviour pulled the plug (drop_port_on_submit / drop_port_on_command)."""
        self._replug_task = asyncio.get_running_loop().create_task(self._drop_and_maybe_replug())

    async def _drop_and_maybe_replug(self) -> None:
        await self.unplug()
        delay_s = self.modem.behaviour.replug_after_s
        if delay_s is not None:
            await asyncio.sleep(delay_s)
            await self.open()

    def _on_readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:
                return  # no client has the slave open right now
            raise
        if data:
            self.modem.feed(data)

    def _write(self, data: bytes) -> None:
        if self._master is None:
            return
        self._pending.extend(data)
        if len(self._pending) > MAX_PENDING_OUTPUT_BYTES:
            del self._pending[: len(self._pending) - MAX_PENDING_OUTPUT_BYTES]
        self._flush()

    def _flush(self) -> None:
        if self._master is None:
            return
        while self._pending:
            try:
                n = os.write(self._master, self._pending)
            except BlockingIOError:
                n = 0
            except OSError as exc:
                if exc.errno == errno.EIO:
                    n = 0
                else:
                    raise
            if n == 0:
                if not self._writer_registered:
                    asyncio.get_running_loop().add_writer(self._master, self._flush)
                    self._writer_registered = True
                return
            del self._pending[:n]
        if self._writer_registered:
            asyncio.get_running_loop().remove_writer(self._master)
            self._writer_registered = False


def modem_number(i: int) -> str:
    """Number of the i-th (0-based) SIM of a pool: +15550000001, +15550000002, ..."""
    return f"+1555{i + 1:07d}"


class FakeModemPool:
    """N emulated modems on one :class:`Network`, each on its own pty with a stable symlink.

    Modem i (0-based) has number ``+1555000000{i+1}`` and symlink ``DIR/ttyGSM{i}``.
    ``behaviours``/``personalities``/``pins`` take one value for all modems (a Behaviour is
    copied per modem) or a sequence with one entry per modem. Pass ``network`` to share a
    network between pools; ``report_delay_s``/``delivery_rule`` then belong to that network.
    """

    def __init__(
        self,
        count: int = 3,
        directory: Path | None = None,
        *,
        behaviours: Sequence[Behaviour] | Behaviour | None = None,
        personalities: Sequence[Personality | str] | Personality | str | None = None,
        report_delay_s: float = 0.05,
        delivery_rule: DeliveryRuleSpec = None,
        network: Network | None = None,
        pins: Sequence[str | None] | str | None = None,
        storage_capacity: dict[str, int] | None = None,
        transcript_dir: Path | None = None,
        link_prefix: str = "ttyGSM",
    ) -> None:
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        self.count = count
        self.directory = directory
        if network is not None and delivery_rule is not None:
            raise ValueError("give delivery_rule to the Network you pass, not to the pool")
        self.network = network or Network(report_delay_s=report_delay_s, delivery_rule=delivery_rule)
        # One Behaviour given for all: each modem gets its own copy, so that a test can
        # change one modem's faults (pool.modems[0].modem.behaviour...) without the others.
        per_modem = _per_modem(behaviours, count, "behaviours")
        seen: set[int] = set()
        self._behaviours: list[Behaviour | None] = []
        for b in per_modem:
            if b is not None and id(b) in seen:
                b = dataclasses.replace(b)
            if b is not None:
                seen.add(id(b))
            self._behaviours.append(b)
        self._personalities = [
            _personality(p) for p in _per_modem(personalities, count, "personalities")
        ]
        self._pins = _per_modem(pins, count, "pins")
        self.storage_capacity = storage_capacity
        self.transcript_dir = transcript_dir
        self.link_prefix = link_prefix
        self.modems: list[PtyModem] = []

    async def __aenter__(self) -> FakeModemPool:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        try:
            for i in range(self.count):
                number = modem_number(i)
                transcript = (
                    self.transcript_dir / f"{self.link_prefix}{i}.jsonl" if self.transcript_dir else None
                )
                modem = EmulatedModem(
                    network=self.network,
                    number=number,
                    personality=self._personalities[i],
                    behaviour=self._behaviours[i] or Behaviour(),
                    pin=self._pins[i],
                    storage_capacity=self.storage_capacity,
                    transcript_path=transcript,
                    seed=i,
                )
                link = self.directory / f"{self.link_prefix}{i}" if self.directory else None
                pm = PtyModem(modem, link)
                self.modems.append(pm)
                await pm.open()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for pm in self.modems:
            await pm.close()
            await pm.modem.aclose()
        self.modems.clear()
        await self.network.aclose()

    def by_number(self, number: str) -> PtyModem:
        for pm in self.modems:
            if pm.modem.number == number:
                return pm
        raise KeyError(number)


def _personality(p: Personality | str | None) -> Personality:
    if p is None:
        return DEFAULT_PERSONALITY
    if isinstance(p, Personality):
        return p
    try:
        return PERSONALITIES[p]
    except KeyError:
        raise ValueError(f"unknown personality {p!r}; known: {', '.join(PERSONALITIES)}") from None


def _per_modem(value: Sequence[T] | T | None, count: int, what: str) -> list[T | None]:
    if value is None:
        return [None] * count
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"{what}: need {count} entries (one per modem), got {len(value)}")
        return list(value)
    return [value] * count  # type: ignore[list-item]
