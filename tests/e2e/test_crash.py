"""kill -9 the gateway in the middle of a batch, restart it: nothing lost, nothing twice.

The emulated modems live in this test process (they outlive the gateway, as real
modems outlive a crashed daemon); the gateway is a real `gsmgw run` subprocess.
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from gsmgw.emulator import Behaviour, FakeModemPool
from gsmgw.store import NewMessage, Store

# Long end-to-end runs: `make test-fast` leaves them out.
pytestmark = pytest.mark.slow

N_MESSAGES = 40


def _write_config(path: Path, db: Path, ports: list[str]) -> None:
    modems = "".join(
        f'[[modem]]\nid = "sim{i + 1}"\nport = "{p}"\ncommand_timeout_s = 2.0\nsend_timeout_s = 3.0\n'
        for i, p in enumerate(ports)
    )
    path.write_text(
        f'[api]\nlisten = "127.0.0.1:0"\n[store]\nurl = "sqlite:///{db}"\nlease_s = 30.0\n'
        f'[dispatch]\npoll_interval_s = 0.2\n[logging]\nlevel = "warning"\n{modems}'
    )


async def _start(cfg: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gsmgw", "run", "--config", str(cfg),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )


async def _states(store: Store) -> collections.Counter[str]:
    return collections.Counter(await store.call(store.messages.counts_by_state))


@pytest.mark.timeout(120)
async def test_kill_9_mid_batch_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    db = tmp_path / "gsmgw.db"
    store = Store(f"sqlite:///{db}")
    await store.call(store.migrate)
    numbers = [f"+1555200{i:04d}" for i in range(N_MESSAGES)]
    for n in numbers:  # accepted = committed, as the API does it
        await store.call(store.messages.enqueue, [NewMessage(n, f"crash test {n}", "gsm7", 1)])
    async with FakeModemPool(count=2, directory=tmp_path / "ports",
                             behaviours=Behaviour(send_latency_s=0.15)) as fake:
        cfg = tmp_path / "gsmgw.toml"
        _write_config(cfg, db, [str(m.path) for m in fake.modems])
        proc = await _start(cfg)
        try:
            deadline = time.monotonic() + 30
            while sum(len(m.modem.sent) for m in fake.modems) < N_MESSAGES // 3:
                assert time.monotonic() < deadline, "gateway never started sending"
                await asyncio.sleep(0.01)
            # Land the kill while sends are in flight.
            await asyncio.sleep(0.07)
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
            after_kill = await _states(store)
            assert after_kill["queued"] + after_kill["sending"] > 0, after_kill
            proc = await _start(cfg)
            deadline = time.monotonic() + 60
            while True:
                st = await _states(store)
                if st["queued"] == 0 and st["sending"] == 0:
                    break
                assert time.monotonic() < deadline, st
                await asyncio.sleep(0.1)
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        final = await _states(store)
        on_air = collections.Counter(r.destination for m in fake.modems for r in m.modem.sent)
    print("after kill:", dict(after_kill), "final:", dict(final))
    rows = {n: (await store.call(store.messages.list_messages, to_number=n, limit=5))[0] for n in numbers}
    store.close()
    assert sum(final.values()) == N_MESSAGES
    assert set(final) <= {"sent", "delivered", "unknown"}, final
    assert final["unknown"] <= 2, final  # at most one per modem of the killed process
    assert max(on_air.values()) == 1, [n for n, c in on_air.items() if c > 1]  # none twice
    for n, row in rows.items():
        if row["state"] in ("sent", "delivered"):
            assert on_air[n] == 1, (n, row["state"])
