"""bench.procstat, bench.cpu (CPU per message, idle CPU, memory; pinned runs) on tiny sizes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import cpu, gateway, peers, procstat

pytestmark = pytest.mark.slow


@pytest.mark.timeout(30)
def test_sampler_sees_a_busy_process_and_not_an_idle_one() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with procstat.Sampler(lambda: [busy.pid], 0.05) as s_busy, procstat.Sampler(lambda: [idle.pid], 0.05) as s_idle:
            t0 = time.time()
            time.sleep(1.0)
            t1 = time.time()
        assert s_busy.between(t0, t1) > 0.1  # spinning: a good share of a core even on a loaded machine
        assert s_idle.between(t0, t1) < 0.05
        assert s_busy.memory["processes"] == 1 and s_busy.memory["hwm_mb"] > 1
        assert s_busy.between(t0, t1) <= s_busy.cpu[-1] - s_busy.cpu[0] + 1e-9
    finally:
        for p in (busy, idle):
            p.kill()
            p.wait()


def test_spread_and_format() -> None:
    assert procstat.spread([3.0, 1.0, None, 2.0]) == {"min": 1.0, "median": 2.0, "max": 3.0, "n": 3}
    assert procstat.spread([None]) is None
    assert procstat.fmt_spread(procstat.spread([1.0, 2.0, 4.0]), 1) == "2.0 [1.0–4.0]"
    assert procstat.fmt_spread(None) == "–"
    m = procstat.machine()
    assert m["cpus"] >= 1 and m["kernel"] and m["python"]
    assert len(procstat.loadavg()) == 3


@pytest.mark.timeout(120)
@pytest.mark.parametrize("daemon", peers.DAEMONS)
def test_cpu_part_runs_for_each_daemon(daemon: str, tmp_path: Path) -> None:
    why = peers.availability()[daemon]
    if why:
        pytest.skip(why)
    rep = cpu.run_cpu((1, 0.05, 3), (1, 1.0, 1.0), (2, 0.05, 2), 1, daemons=[daemon], keep_dir=tmp_path)
    row = rep["daemons"][daemon]
    assert row["errors"] == []
    assert row["cpu_ms_per_message"]["n"] == 1 and row["cpu_ms_per_message"]["median"] >= 0
    assert row["idle_cpu_s"]["n"] == 1 and row["idle_cpu_s"]["median"] >= 0
    assert row["memory_hwm_mb"]["median"] > 1 and row["memory_processes"]["median"] >= 1
    assert f"| {daemon} |" in cpu.cpu_markdown(rep)


@pytest.mark.timeout(60)
def test_pinned_part_runs(tmp_path: Path) -> None:
    rep = cpu.run_pinned([(1, 0.05, 3)], 1)
    [cell] = rep["cells"]
    r = cell["results"]["gsmgw"]
    assert r["errors"] == [] and r["fraction_of_ideal"]["median"] > 0
    [run] = r["runs"]
    assert run["pinned"] == [0, 1]
    assert "taskset -c 0" in cpu.pinned_markdown(rep)


@pytest.mark.timeout(60)
def test_history_db_holds_sent_messages_to_one_number(tmp_path: Path) -> None:
    import sqlite3

    gateway.history_db(tmp_path / "h.db", 50)
    with sqlite3.connect(tmp_path / "h.db") as db:
        rows = db.execute("SELECT to_number, state, modem_id, sent_at IS NOT NULL FROM messages").fetchall()
    # What a sticky-SIM lookup reads: 50 messages to the number, sent from sim1, with a send time.
    assert rows == [(gateway.SAME_NUMBER, "sent", "sim1", 1)] * 50


@pytest.mark.timeout(60)
def test_second_process_client_stands_in_for_wrk(tmp_path: Path) -> None:
    """Without wrk the intake's single-POST figure comes from `python -m bench.gateway load` (own process)."""
    import asyncio

    async def go() -> dict:
        gw = gateway.Gw(tmp_path)
        await gw.start()
        try:
            return await gateway._client_process(gw, 1.0, same=False, connections=4)
        finally:
            await gw.stop()

    res = asyncio.run(go())
    assert res["requests_per_s"] > 0 and res["non_2xx"] == 0
    assert res["tool"].startswith("python asyncio client, 4 connections")
