"""Several gateway hosts, one PostgreSQL queue (issue 10).

Three `gsmgw run` processes with two emulated modems each share a queue of a
few thousand messages; one is killed with SIGKILL mid-batch. Every message must
end sent (or unknown: at most one per modem of the killed host), none twice,
and the survivors take over the dead host's claims within the lease time.
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
from sqlalchemy import func, select

from gsmgw.emulator import Behaviour, FakeModemPool
from gsmgw.store import NewMessage, Store
from gsmgw.store import tables as t

# Long end-to-end runs: `make test-fast` leaves them out.
pytestmark = pytest.mark.slow

N_MESSAGES = 2000
LEASE_S = 4.0


def _config(path: Path, url: str, host: str, ports: list[tuple[str, str]]) -> None:
    modems = "".join(
        f'[[modem]]\nid = "{mid}"\nport = "{p}"\ncommand_timeout_s = 2.0\nsend_timeout_s = 3.0\n'
        for mid, p in ports
    )
    path.write_text(
        f'[api]\nlisten = "127.0.0.1:0"\n'
        f'[store]\nurl = "{url}"\nlease_s = {LEASE_S}\nhost_id = "{host}"\n'
        f'[dispatch]\npoll_interval_s = 0.5\nsticky_s = 0\n[logging]\nlevel = "warning"\n{modems}'
    )


async def _spawn(cfg: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gsmgw", "run", "--config", str(cfg),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )


@pytest.mark.postgres
@pytest.mark.timeout(240)
async def test_three_hosts_share_one_queue_and_survive_a_kill_9(tmp_path: Path, pg_url: str) -> None:
    store = Store(pg_url, host="test")
    await store.call(store.migrate)
    batch = [NewMessage(f"+1555{i:07d}", f"multi-host {i}", "gsm7", 1, delivery_report=False)
             for i in range(N_MESSAGES)]
    for i in range(0, N_MESSAGES, 500):
        await store.call(store.messages.enqueue, batch[i:i + 500])

    def sending_of(host: str) -> int:
        with store.engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(t.messages).where(
                    t.messages.c.state == "sending", t.messages.c.lease_owner == host)
            ).scalar_one()

    procs: list[asyncio.subprocess.Process] = []
    async with FakeModemPool(count=6, directory=tmp_path / "ports",
                             behaviours=[Behaviour(send_latency_s=0.01) for _ in range(6)]) as fake:
        try:
            for h in range(3):
                cfg = tmp_path / f"h{h}.toml"
                _config(cfg, pg_url, f"h{h}", [(f"sim{2 * h + i + 1}", str(fake.modems[2 * h + i].path))
                                               for i in range(2)])
                procs.append(await _spawn(cfg))
            deadline = time.monotonic() + 90
            while sum(len(m.modem.sent) for m in fake.modems) < N_MESSAGES // 3:
                assert time.monotonic() < deadline, "hosts never got going"
                await asyncio.sleep(0.05)
            # Every host is sending (one queue, three hosts).
            assert all(len(m.modem.sent) > 0 for m in fake.modems), [len(m.modem.sent) for m in fake.modems]
            os.kill(procs[1].pid, signal.SIGKILL)
            await procs[1].wait()
            killed_at = time.monotonic()
            took_over_s = None
            deadline = time.monotonic() + 120
            while True:
                counts = collections.Counter(await store.call(store.messages.counts_by_state))
                if took_over_s is None and await asyncio.to_thread(sending_of, "h1") == 0:
                    took_over_s = time.monotonic() - killed_at
                if counts["queued"] == 0 and counts["sending"] == 0:
                    break
                assert time.monotonic() < deadline, counts
                await asyncio.sleep(0.2)
        finally:
            for p in procs:
                if p.returncode is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    await asyncio.wait_for(p.wait(), 30)
                except TimeoutError:
                    p.kill()
                    await p.wait()
        on_air = collections.Counter(r.destination for m in fake.modems for r in m.modem.sent)
        per_modem = [len(m.modem.sent) for m in fake.modems]
    final = collections.Counter(await store.call(store.messages.counts_by_state))
    unknown_rows = await store.call(store.messages.list_messages, state="unknown", limit=100)
    store.close()
    print("final", dict(final), "per modem", per_modem, "took over after", took_over_s)
    assert sum(final.values()) == N_MESSAGES
    assert set(final) <= {"sent", "delivered", "unknown"}, final
    assert final["unknown"] <= 2 and {r["modem_id"] for r in unknown_rows} <= {"sim3", "sim4"}
    assert max(on_air.values()) == 1  # none twice
    assert took_over_s is not None and took_over_s <= LEASE_S + 3.0
