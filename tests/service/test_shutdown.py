"""Graceful shutdown of a real `gsmgw run` process in the middle of a batch.

SIGTERM lands while AT+CMGS are on the air (0.3 s network latency): the gateway
stops claiming, lets each in-flight send finish, records it, and exits. No message
is lost, none is left ``sending``, and the rest goes out after a restart, each
message exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from pathlib import Path

import pytest

from gsmgw.emulator import Behaviour, FakeModemPool
from gsmgw.store import NewMessage, Store
from tests.service.conftest import child_env, gsmgw_cmd, toml_config

N = 12


async def _start(cfg: Path, notify_path: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("a") as out:
        return await asyncio.create_subprocess_exec(
            *gsmgw_cmd("run", "--config", str(cfg)), stdout=asyncio.subprocess.DEVNULL, stderr=out,
            env=child_env(NOTIFY_SOCKET=str(notify_path)),
        )


async def _wait_datagram(sock: socket.socket, wanted: str, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout_s):
        while wanted not in (await loop.sock_recv(sock, 4096)).decode().split("\n"):
            pass


async def _states(store: Store) -> dict[str, str]:
    rows = await store.call(store.messages.list_messages, limit=1000)
    return {r["id"]: r["state"] for r in rows}


async def _part_states(store: Store, ids: list[str]) -> list[str]:
    out = []
    for mid in ids:
        msg = await store.call(store.messages.get_message, mid)
        out += [p["state"] for p in msg["parts"]]
    return out


@pytest.mark.timeout(60)
async def test_sigterm_mid_batch_loses_nothing_and_leaves_nothing_sending(tmp_path: Path) -> None:
    db = tmp_path / "gsmgw.db"
    store = Store(f"sqlite:///{db}", host="test-reader")
    await store.call(store.migrate)
    res = await store.call(store.messages.enqueue, [NewMessage(to_number=f"+1555000{i:04d}", text=f"batch {i}",
                                                      encoding="gsm7", parts_total=1) for i in range(N)])
    ids = list(res.message_ids)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
    sock.bind(str(tmp_path / "notify.sock"))
    log = tmp_path / "gsmgw.log"
    proc: asyncio.subprocess.Process | None = None
    try:
        async with FakeModemPool(count=2, directory=tmp_path / "ports",
                                 behaviours=Behaviour(send_latency_s=0.3)) as fake:
            cfg = tmp_path / "gsmgw.toml"
            cfg.write_text(toml_config(tmp_path, [{"id": f"sim{i + 1}", "port": str(m.path)}
                                                  for i, m in enumerate(fake.modems)], db=db))
            proc = await _start(cfg, tmp_path / "notify.sock", log)
            await _wait_datagram(sock, "READY=1", 30)
            # Wait until a few went out and sends are on the air, then stop.
            async with asyncio.timeout(20):
                while sum(len(m.modem.sent) for m in fake.modems) < 3:
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.15)  # mid-way through the next 0.3 s submits
            proc.send_signal(signal.SIGTERM)
            await _wait_datagram(sock, "STOPPING=1", 10)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
            proc = None

            states = await _states(store)
            on_air = sum(len(m.modem.sent) for m in fake.modems)
            assert set(states.values()) <= {"queued", "sent", "delivered"}, states
            assert "sending" not in await _part_states(store, ids)
            done = [s for s in states.values() if s in ("sent", "delivered")]
            # Every PDU the network got is recorded as sent, and nothing more.
            assert len(done) == on_air, (states, on_air)
            assert 0 < len(done) < N, "SIGTERM should land mid-batch"
            assert "recovered claims after restart" not in log.read_text()

            # Restart: the queued rest goes out, each message exactly once.
            proc = await _start(cfg, tmp_path / "notify.sock", log)
            await _wait_datagram(sock, "READY=1", 30)
            async with asyncio.timeout(30):
                while not all(s in ("sent", "delivered") for s in (await _states(store)).values()):
                    await asyncio.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
            proc = None
            destinations = [r.destination for m in fake.modems for r in m.modem.sent]
            assert len(destinations) == N, f"{len(destinations)} PDUs for {N} messages"
            assert len(set(destinations)) == N  # each message exactly once
    finally:
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        sock.close()
        store.close()
