"""Finding modems by identity (IMEI/ICCID) among the serial ports present, and
hearing about hot-plug. (Asking a port who it is: gsmgw.modem.identify.)

A modem is known by what it is, never by its ttyUSB number: after a replug the
kernel may hand it another name. Where udev runs, a pyudev monitor on the tty
subsystem triggers a rescan at once; where it does not (containers, CI), ports
are rescanned periodically.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
from collections.abc import Callable, Iterable

from gsmgw.modem.identify import PortIdentity

log = logging.getLogger(__name__)


def candidate_ports(globs: Iterable[str], exclude: Iterable[str] = ()) -> list[str]:
    """Ports matching ``globs``, one name per device (stable names win), minus ``exclude``.

    Several names may point at one device (``/dev/gsmgw/sim1`` → ``/dev/ttyUSB2``);
    the first glob's name is kept, so the order of ``globs`` is a preference.
    """
    taken = {os.path.realpath(p) for p in exclude}
    seen: set[str] = set()
    out: list[str] = []
    for pattern in globs:
        for path in sorted(glob.glob(pattern)):
            real = os.path.realpath(path)
            if real in seen or real in taken or not os.path.exists(real):
                continue
            seen.add(real)
            out.append(path)
    return out


def identity_matches(want_imei: str, want_iccid: str, got: PortIdentity) -> bool:
    if want_imei and want_imei != got.imei:
        return False
    if want_iccid and want_iccid.upper().rstrip("F") != got.iccid:
        return False
    return bool(want_imei or want_iccid)


class HotplugWatcher:
    """Calls ``on_change`` when a tty device is added or removed (udev), if udev runs.

    pyudev is imported lazily: it needs libudev, which containers lack. ``start``
    returns False when no monitor could be set up; the caller then rescans on a timer.
    """

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self._monitor: object | None = None
        self._fd: int | None = None

    def start(self) -> bool:
        if not os.path.exists("/run/udev/control"):
            return False  # no udev daemon: events would never come
        try:
            import pyudev

            context = pyudev.Context()
            monitor = pyudev.Monitor.from_netlink(context)
            monitor.filter_by(subsystem="tty")
            monitor.start()
        except Exception as exc:  # ImportError, OSError from libudev, netlink refused
            log.info("hot-plug: no udev monitor (%s); rescanning on a timer", exc)
            return False
        self._monitor = monitor
        self._fd = monitor.fileno()
        asyncio.get_running_loop().add_reader(self._fd, self._readable)
        log.info("hot-plug: listening to udev tty events")
        return True

    def _readable(self) -> None:
        monitor = self._monitor
        if monitor is None:
            return
        changed = False
        while True:
            device = monitor.poll(timeout=0)  # type: ignore[attr-defined]
            if device is None:
                break
            if device.action in ("add", "remove", "change"):
                log.info("hot-plug: %s %s", device.action, device.device_node or device.sys_name)
                changed = True
        if changed:
            self._on_change()

    def stop(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = None
        self._monitor = None
