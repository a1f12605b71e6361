"""Open a modem port without blocking the event loop. The only module that imports pyserial.

URLs:
* ``/dev/ttyUSB2``, ``/dev/ttyACM0`` (CDC-ACM), ``/dev/serial/by-id/...``: a serial device at any baud rate;
* ``/dev/pts/7`` or a stable symlink to one: a pseudo-terminal (the emulator);
* ``socket://host:port``: a serial-over-TCP bridge (ser2net, RFC 2217 without options).

pyserial-asyncio-fast opens the device in an executor thread (``open()`` of a
CDC-ACM port can block while the module enumerates) and then uses the loop's
reader/writer callbacks; nothing here does blocking I/O on the loop.
"""

from __future__ import annotations

import asyncio
import errno
import urllib.parse

import serial
import serial_asyncio_fast

from gsmgw.errors import PortClosed


async def open_port(
    url: str, *, baudrate: int = 115200, exclusive: bool = True
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open ``url`` and return an asyncio stream pair; raise :class:`PortClosed` if it cannot be opened.

    ``exclusive`` takes a TIOCEXCL/flock lock on real serial devices so that
    ModemManager or a second gsmgw cannot talk over us (ignored for sockets).
    """
    if not url:
        raise PortClosed("empty port URL")
    scheme = urllib.parse.urlparse(url).scheme
    kwargs: dict[str, object] = {"url": url, "baudrate": baudrate}
    if scheme == "socket":
        parsed = urllib.parse.urlparse(url)
        if not parsed.hostname or not parsed.port:
            raise PortClosed(f"bad socket URL {url!r} (want socket://host:port)")
        try:
            return await asyncio.open_connection(parsed.hostname, parsed.port)
        except OSError as exc:
            raise PortClosed(f"cannot connect to {url}: {exc}") from exc
    if scheme and scheme not in ("file",):
        raise PortClosed(f"unsupported port URL scheme {scheme!r} in {url!r}")
    kwargs.update(
        bytesize=serial.EIGHTBITS,
        parity=serial.PARITY_NONE,
        stopbits=serial.STOPBITS_ONE,
        # Hardware flow control would stall a pty and many USB ports that do not wire RTS/CTS.
        rtscts=False,
        xonxoff=False,  # XON/XOFF bytes (0x11/0x13) can occur in binary garbage
        exclusive=exclusive,
    )
    try:
        return await serial_asyncio_fast.open_serial_connection(**kwargs)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise PortClosed(open_failure(url, exc)) from exc


def open_failure(url: str, exc: BaseException) -> str:
    """Why a port did not open, as the operator needs it (status, ``gsmgw status``, logs)."""
    code = getattr(exc, "errno", None)
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return f"{url} is missing (modem unplugged or not yet enumerated, or a wrong [[modem]] port)"
    if code in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY):
        return (f"{url} is locked by another program (ModemManager, another gsmgw, a terminal: "
                f"`fuser -v {url}` shows which)")
    if code in (errno.EACCES, errno.EPERM):
        return f"no permission to open {url} (is the gateway's user in the dialout group?)"
    return f"cannot open {url}: {exc}"
