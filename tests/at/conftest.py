"""A scripted peer on the master side of a REAL pseudo-terminal (no mocked serial).

Used for wire-level channel tests where exact bytes matter; whole-modem behaviour
is tested against the emulator in tests/modem/.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import tty
from collections.abc import AsyncIterator

import pytest

from gsmgw.at.channel import ATChannel
from gsmgw.transport import open_port


class Peer:
    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self.received = bytearray()
        self._event = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.master, self._on_readable)
        self._consumed = 0
        self.open = True

    def _on_readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, OSError):
            return
        self.received.extend(data)
        self._event.set()

    async def expect(self, token: bytes, timeout_s: float = 2.0) -> bytes:
        """Wait until ``token`` arrives after what was consumed; return everything up to it."""
        deadline = time.monotonic() + timeout_s
        while True:
            i = self.received.find(token, self._consumed)
            if i >= 0:
                chunk = bytes(self.received[self._consumed : i + len(token)])
                self._consumed = i + len(token)
                return chunk
            self._event.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"peer never got {token!r}; got {bytes(self.received[self._consumed:])!r}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), remaining)

    def unread(self) -> bytes:
        return bytes(self.received[self._consumed :])

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def unplug(self) -> None:
        if not self.open:
            return
        self.open = False
        self._loop.remove_reader(self.master)
        os.close(self.master)
        os.close(self._slave)


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    p = Peer()
    try:
        yield p
    finally:
        p.unplug()


class PlainReader:
    """Only ``read``: the channel falls back to its reader task (no PortReader.deliver_to)."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    async def read(self, n: int) -> bytes:
        return await self._reader.read(n)


@pytest.fixture(params=["direct", "task"])
async def channel_factory(peer: Peer, request: pytest.FixtureRequest) -> AsyncIterator[object]:
    """Channels on the peer's pty: "direct", as the gateway opens them (every chunk handled
    in the transport's read callback), and "task", over a plain reader (the read task)."""
    channels: list[ATChannel] = []

    async def make(**kw: object) -> ATChannel:
        reader, writer = await open_port(peer.path)
        if request.param == "task":
            reader = PlainReader(reader)  # type: ignore[assignment]
        ch = ATChannel(reader, writer, name="test", resync_timeout_s=0.3, drain_quiet_s=0.02, **kw)  # type: ignore[arg-type]
        ch.start()
        channels.append(ch)
        return ch

    yield make
    for ch in channels:
        await ch.close()
