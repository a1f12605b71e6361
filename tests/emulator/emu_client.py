"""A tiny independent AT client over the real pty, for the emulator's own tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import termios
import tty
from collections.abc import AsyncIterator
from pathlib import Path

from gsmgw.emulator import Behaviour, EmulatedModem, Network, PtyModem

FINAL_RE = re.compile(rb"\r\n(OK|ERROR|\+CME ERROR: [^\r]*|\+CMS ERROR: [^\r]*)\r\n")


class PtyClient:
    """Opens the slave side like a serial client would (raw, non-blocking)."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd, termios.TCSANOW)
        self.buf = bytearray()
        self.eof = False
        self._event = asyncio.Event()
        asyncio.get_running_loop().add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.eof = True
            asyncio.get_running_loop().remove_reader(self.fd)
        self.buf.extend(data)
        self._event.set()

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    async def read_until(self, pattern: bytes | re.Pattern[bytes], timeout_s: float = 2.0) -> bytes:
        """Wait until the buffer matches; return and consume everything up to the match end."""
        rx = re.compile(re.escape(pattern)) if isinstance(pattern, bytes) else pattern
        async with asyncio.timeout(timeout_s):
            while True:
                m = rx.search(self.buf)
                if m:
                    out = bytes(self.buf[: m.end()])
                    del self.buf[: m.end()]
                    return out
                if self.eof:
                    raise EOFError(bytes(self.buf))
                self._event.clear()
                await self._event.wait()

    async def cmd(self, line: str, timeout_s: float = 2.0) -> str:
        """Send a command line, return everything up to and including the final result."""
        self.write(line.encode("latin-1") + b"\r")
        return (await self.read_until(FINAL_RE, timeout_s)).decode("latin-1")

    async def quiet(self, delay_s: float = 0.05) -> bytes:
        """Collect whatever arrives within delay_s."""
        await asyncio.sleep(delay_s)
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.fd)
        with contextlib.suppress(OSError):
            os.close(self.fd)


def lines_of(response: str) -> list[str]:
    return [ln for ln in response.split("\r\n") if ln]



class Rig:
    """An emulated modem on a pty plus a client connected to it."""

    def __init__(self, modem: EmulatedModem, pm: PtyModem, client: PtyClient) -> None:
        self.modem = modem
        self.pm = pm
        self.client = client

    async def ready(self) -> None:
        """Wait for boot noise, switch echo off, drain."""
        await asyncio.sleep(0.02)
        await self.client.cmd("ATE0")
        self.client.buf.clear()


@contextlib.asynccontextmanager
async def rig(network: Network, **kwargs: object) -> AsyncIterator[Rig]:
    kwargs.setdefault("number", "+15550000001")
    kwargs.setdefault("behaviour", Behaviour())
    modem = EmulatedModem(network=network, **kwargs)  # type: ignore[arg-type]
    async with PtyModem(modem) as pm:
        client = PtyClient(pm.path)
        try:
            yield Rig(modem, pm, client)
        finally:
            client.close()
    await modem.aclose()


async def submit(client: PtyClient, pdu: str, length: int, *, timeout_s: float = 2.0) -> str:
    """AT+CMGS=<length>, wait for the prompt, send the PDU and Ctrl-Z; return the final answer."""
    client.write(f"AT+CMGS={length}\r".encode())
    prompt = await client.read_until(re.compile(rb"\r\n> |\r\n(ERROR|\+CMS ERROR: [^\r]*)\r\n"), timeout_s)
    if not prompt.endswith(b"> "):
        return prompt.decode("latin-1")
    client.write(pdu.encode("ascii") + b"\x1a")
    return (await client.read_until(FINAL_RE, timeout_s)).decode("latin-1")
