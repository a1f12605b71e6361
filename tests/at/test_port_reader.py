"""gsmgw.transport.PortReader on a real pseudo-terminal: what came before ``deliver_to``
comes first, every chunk after it goes to the consumer in the transport's own read
callback, and the end of the stream is told once."""

from __future__ import annotations

import asyncio
import os

import pytest

from gsmgw.transport import PortReader, open_port
from tests.at.conftest import Peer

pytestmark = pytest.mark.timeout(10)


async def test_chunks_go_to_the_consumer_in_order_and_the_end_once(peer: Peer) -> None:
    reader, writer = await open_port(peer.path)
    assert isinstance(reader, PortReader)
    peer.write(b"RDY\r\n")  # before anyone listens: buffered
    await asyncio.sleep(0.05)
    got: list[tuple[bytes, bool]] = []
    ends: list[BaseException | None] = []
    reader.deliver_to(lambda data: got.append((data, asyncio.current_task() is None)), ends.append)
    assert got == [(b"RDY\r\n", False)]  # handed over at once, by deliver_to itself
    peer.write(b"\r\nOK\r\n")
    for _ in range(100):
        if len(got) > 1:
            break
        await asyncio.sleep(0.01)
    assert b"".join(d for d, _ in got) == b"RDY\r\n\r\nOK\r\n"
    assert all(no_task for _, no_task in got[1:])  # in the transport's read callback
    peer.unplug()  # the module goes away: EIO or EOF, told once
    for _ in range(100):
        if ends:
            break
        await asyncio.sleep(0.01)
    writer.close()
    await asyncio.sleep(0.05)
    assert len(ends) == 1


async def test_an_end_before_deliver_to_is_told_then() -> None:
    master, slave = os.openpty()
    try:
        reader, writer = await open_port(os.ttyname(slave))
        os.write(master, b"late\r\n")
        await asyncio.sleep(0.05)
        writer.close()  # the stream ends before anyone listens
        await asyncio.sleep(0.05)
        got: list[bytes] = []
        ends: list[BaseException | None] = []
        reader.deliver_to(got.append, ends.append)  # type: ignore[attr-defined]
        assert got == [b"late\r\n"] and len(ends) == 1
    finally:
        os.close(master)
        os.close(slave)
