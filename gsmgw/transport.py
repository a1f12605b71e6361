"""Open a modem port without blocking the event loop. The only module that imports pyserial.

URLs:
* ``/dev/ttyUSB2``, ``/dev/ttyACM0`` (CDC-ACM), ``/dev/serial/by-id/...``: a serial device at any baud rate;
* ``/dev/pts/7`` or a stable symlink to one: a pseudo-terminal (the emulator);
* ``socket://host:port``: a serial-over-TCP bridge (ser2net, RFC 2217 without options).

pyserial-asyncio-fast opens the device in an executor thread (``open()`` of a
CDC-ACM port can block while the module enumerates) and then uses the loop's
reader/writer callbacks; nothing here does blocking I/O on the loop.

The reader is a :class:`PortReader`: a stream reader that can hand every chunk to
one consumer straight from the transport's read callback (the AT channel, whose
answers then need no task wake-up each: issue 17).
"""

from __future__ import annotations

import asyncio
import errno
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import serial
import serial_asyncio_fast

from gsmgw.errors import PortClosed

# (exception or None at a clean end of the stream)
EndFn = Callable[[BaseException | None], None]


class PortReader(asyncio.StreamReader):
    """A StreamReader whose data can go straight to a consumer.

    Until :meth:`deliver_to` it buffers like any stream reader. After it, each chunk
    the transport reads is passed to ``sink`` at once, in the transport's own read
    callback (no buffer, no waiter, no task woken per chunk), and the end of the
    stream (EOF or the read error) to ``on_end``, once."""

    _sink: Callable[[bytes], None] | None = None
    _on_end: EndFn | None = None
    _ended = False

    def deliver_to(self, sink: Callable[[bytes], None], on_end: EndFn) -> None:
        self._sink, self._on_end = sink, on_end
        buffered = bytes(self._buffer)  # what came before: first, in order
        self._buffer.clear()
        self._maybe_resume_transport()  # had it filled up, reading was paused
        if buffered:
            sink(buffered)
        if self._exception is not None:
            self._end(self._exception)
        elif self._eof:
            self._end(None)

    def feed_data(self, data: bytes) -> None:
        if self._sink is None:
            super().feed_data(data)
        elif data and not self._ended:
            self._sink(data)

    def feed_eof(self) -> None:
        super().feed_eof()
        if self._sink is not None:
            self._end(None)

    def set_exception(self, exc: BaseException) -> None:
        super().set_exception(exc)
        if self._sink is not None:
            self._end(exc)

    def _end(self, exc: BaseException | None) -> None:
        if not self._ended and self._on_end is not None:
            self._ended = True
            self._on_end(exc)


async def _streams(connect: Callable[[Callable[[], asyncio.Protocol]], Awaitable[tuple[Any, Any]]]
                   ) -> tuple[PortReader, asyncio.StreamWriter]:
    """What ``asyncio.open_connection`` / ``open_serial_connection`` do, with a PortReader."""
    loop = asyncio.get_running_loop()
    reader = PortReader(loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await connect(lambda: protocol)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


async def open_port(
    url: str, *, baudrate: int = 115200, exclusive: bool = True
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open ``url`` and return an asyncio stream pair (the reader a :class:`PortReader`); raise :class:`PortClosed` if it cannot be opened.

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
        host, port = parsed.hostname, parsed.port
        loop = asyncio.get_running_loop()
        try:
            return await _streams(lambda factory: loop.create_connection(factory, host, port))
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
    loop = asyncio.get_running_loop()
    try:
        return await _streams(lambda factory: serial_asyncio_fast.create_serial_connection(loop, factory, **kwargs))
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
