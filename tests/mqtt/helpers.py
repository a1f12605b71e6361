"""A real MQTT client that records what the gateway publishes, and brokers for the tests."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import shutil
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

SHARED_BROKER = ("127.0.0.1", 1883)


def broker_up(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Got:
    topic: str
    payload: bytes
    retain: bool
    properties: Any = None

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Recorder:
    """Subscribes to topic filters and keeps every message it gets."""

    host: str
    port: int
    filters: tuple[str, ...]
    messages: list[Got] = field(default_factory=list)
    client: aiomqtt.Client | None = None
    _task: asyncio.Task[None] | None = None
    _new: asyncio.Event = field(default_factory=asyncio.Event)

    async def _run(self, ready: asyncio.Event) -> None:
        while True:
            try:
                async with aiomqtt.Client(self.host, self.port, protocol=aiomqtt.ProtocolVersion.V5) as c:
                    self.client = c
                    for f in self.filters:
                        await c.subscribe(f, qos=1)
                    ready.set()
                    async for m in c.messages:
                        payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
                        self.messages.append(Got(str(m.topic), payload, bool(m.retain), m.properties))
                        self._new.set()
            except aiomqtt.MqttError:
                self.client = None
                await asyncio.sleep(0.1)  # the broker restarts in a test: reconnect

    async def publish(self, topic: str, payload: str | bytes, **kw: Any) -> None:
        deadline = time.monotonic() + 10
        while self.client is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert self.client is not None
        await self.client.publish(topic, payload, qos=1, **kw)

    def on(self, topic: str) -> list[Got]:
        return [m for m in self.messages if m.topic == topic]

    async def wait(self, pred: Callable[[Got], bool], *, count: int = 1, timeout_s: float = 30.0) -> list[Got]:
        deadline = time.monotonic() + timeout_s
        while True:
            hits = [m for m in self.messages if pred(m)]
            if len(hits) >= count:
                return hits
            left = deadline - time.monotonic()
            if left <= 0:
                seen = sorted({m.topic for m in self.messages})
                raise AssertionError(f"{len(hits)}/{count} wanted messages after {timeout_s}s; topics seen: {seen}")
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), timeout=min(left, 0.5))

    async def wait_topic(self, topic: str, pred: Callable[[Any], bool] = lambda _j: True, **kw: Any) -> Any:
        hits = await self.wait(lambda m: m.topic == topic and bool(m.payload) and pred(m.json()), **kw)
        return hits[-1].json()


@contextlib.asynccontextmanager
async def recorder(host: str, port: int, *filters: str) -> AsyncIterator[Recorder]:
    rec = Recorder(host, port, filters)
    ready = asyncio.Event()
    rec._task = asyncio.create_task(rec._run(ready))
    try:
        await asyncio.wait_for(ready.wait(), timeout=10)
        yield rec
    finally:
        rec._task.cancel()
        await asyncio.gather(rec._task, return_exceptions=True)


class Mosquitto:
    """A mosquitto process of our own on a free loopback port (no persistence)."""

    def __init__(self, directory: Path, extra: str = "", anonymous: bool = True) -> None:
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port = free_port()
        self.conf = directory / "mosquitto.conf"
        # Run as root, mosquitto would switch to its own user, who cannot read our files.
        user = f"user {getpass.getuser()}\n"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous {str(anonymous).lower()}\n"
                             f"persistence false\n{user}{extra}")
        self.proc: asyncio.subprocess.Process | None = None

    @staticmethod
    def available() -> bool:
        return bool(shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists())

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, "-c", str(self.conf), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not broker_up("127.0.0.1", self.port):
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start on port {self.port}")
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """SIGKILL: the broker dies without a word (no clean disconnects)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), timeout=5)
        self.proc = None
