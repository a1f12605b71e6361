"""Engine CPU probe (issue 17): idle CPU and CPU per sent message, from /proc.

The emulator runs as its own ``gsmgw fake-modem`` process; the gateway (store,
pool, drivers over real ptys, API) runs in this process, whose utime+stime is read
from ``/proc/self/stat``:

1. start the gateway with an empty queue and wait until every modem is ready;
2. idle: CPU over ``--idle-s`` seconds (default 20) with nothing queued;
3. busy: queue ``--messages`` messages (bulk enqueue, 500 per commit; its CPU is
   reported apart; each asks for a status report, as in bench.cpu, unless
   ``--no-reports``), wake the pool, and read the CPU until every message is final:
   CPU per sent message = busy CPU / messages.

    python -m bench.prof_engine --modems 16 --latency-s 0.2 --messages 1600 --idle-s 20

With ``--pyspy FILE`` a py-spy record (speedscope/flamegraph) of the busy phase is
written (py-spy must be installed; it samples this process).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from gsmgw.config import ApiConfig, Config, DispatchConfig, ModemConfig, StoreConfig
from gsmgw.daemon import Gateway
from gsmgw.store import NewMessage

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int | str = "self") -> float:
    """utime+stime of a process in seconds, from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def spy_start(out: Path, pid: int | None = None) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    spy = subprocess.Popen([exe, "record", "-r", "200", "--nonblocking", "-o", str(out), "-f", "speedscope",
                            "--pid", str(pid or os.getpid())], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let it attach
    return spy


def spy_stop(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None:
        spy.send_signal(2)
        with contextlib.suppress(subprocess.TimeoutExpired):
            spy.wait(timeout=30)


def threads_cpu_s() -> dict[str, float]:
    """utime+stime per Python thread of this process (/proc/self/task/<native id>/stat)."""
    out: dict[str, float] = {}
    for th in threading.enumerate():
        if th.native_id is None:
            continue
        name = th.name.split("_")[0]
        try:
            out[name] = out.get(name, 0.0) + cpu_s(f"self/task/{th.native_id}")
        except OSError:
            continue
    return out


async def run(k: int, latency_s: float, n: int, idle_s: float, pyspy: Path | None,
              phase: str = "busy", reports: bool = True) -> dict[str, Any]:
    logging.getLogger().setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="gsmgw-prof-") as tmp:
        work = Path(tmp)
        ports = work / "ports"
        fake = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gsmgw", "fake-modem", "--count", str(k), "--dir", str(ports),
            "--latency-s", str(latency_s), "--report-delay-s", "0.05",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            links = [ports / f"ttyGSM{i}" for i in range(k)]
            deadline = time.monotonic() + 30
            while not all(p.exists() for p in links):
                if time.monotonic() > deadline:
                    raise RuntimeError("fake-modem did not start")
                await asyncio.sleep(0.05)
            cfg = Config(
                api=ApiConfig(listen="127.0.0.1:0"),
                store=StoreConfig(url=f"sqlite:///{work / 'prof.db'}"),
                dispatch=DispatchConfig(sticky_s=0, delivery_reports=reports),
                modem=tuple(ModemConfig(id=f"sim{i + 1}", port=str(p), send_timeout_s=latency_s + 10)
                            for i, p in enumerate(links)),
            )
            gw = Gateway(cfg, host="prof")
            await gw.store.call(gw.store.migrate)
            await gw.start()
            try:
                deadline = time.monotonic() + 60
                while not all(s["state"] == "ready" for s in gw.pool.snapshot()):
                    if time.monotonic() > deadline:
                        raise RuntimeError("modems not ready")
                    await asyncio.sleep(0.2)
                await asyncio.sleep(2.0)  # first health polls, status rows written
                ispy = spy_start(pyspy) if pyspy is not None and phase == "idle" else None
                c0 = cpu_s()
                await asyncio.sleep(idle_s)
                idle_cpu = cpu_s() - c0
                spy_stop(ispy)
                batch = [NewMessage(f"+1555400{i:04d}", f"bench message {i}", "gsm7", 1, delivery_report=reports)
                         for i in range(n)]
                spy = spy_start(pyspy) if pyspy is not None and phase == "busy" else None
                c1 = cpu_s()
                th1 = threads_cpu_s()
                t1 = time.monotonic()
                for i in range(0, n, 500):
                    await gw.store.call(gw.store.messages.enqueue, batch[i:i + 500])
                c_enq = cpu_s() - c1
                gw.pool.notify_work()
                while True:
                    # One cheap look per second: the probe's own reads stay out of the way.
                    await asyncio.sleep(1.0)
                    counts = await gw.store.call(gw.store.messages.counts_by_state)
                    if sum(v for s, v in counts.items() if s not in ("queued", "sending")) >= n:
                        break
                busy_cpu = cpu_s() - c1
                th2 = threads_cpu_s()
                busy_s = time.monotonic() - t1
                spy_stop(spy)
            finally:
                await gw.stop()
        finally:
            if fake.returncode is None:
                fake.terminate()
                await fake.wait()
    return {
        "modems": k, "latency_s": latency_s, "messages": n,
        "idle_s": idle_s, "idle_cpu_s": round(idle_cpu, 3),
        "idle_cpu_per_20s": round(idle_cpu * 20.0 / idle_s, 3),
        "enqueue_cpu_s": round(c_enq, 3),
        "busy_wall_s": round(busy_s, 2), "busy_cpu_s": round(busy_cpu, 3),
        "cpu_ms_per_msg": round(busy_cpu * 1000 / n, 3),
        "cpu_ms_per_msg_excl_enqueue": round((busy_cpu - c_enq) * 1000 / n, 3),
        "busy_cpu_ms_per_msg_by_thread": {k: round((v - th1.get(k, 0.0)) * 1000 / n, 3) for k, v in th2.items()},
        "per_minute": round(n / busy_s * 60, 1), "ideal_per_minute": round(k * 60 / latency_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.prof_engine", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modems", type=int, default=16)
    ap.add_argument("--latency-s", type=float, default=0.2)
    ap.add_argument("--messages", type=int, default=1600)
    ap.add_argument("--idle-s", type=float, default=20.0)
    ap.add_argument("--pyspy", type=Path, help="write a py-spy speedscope profile of one phase here")
    ap.add_argument("--pyspy-phase", choices=("busy", "idle"), default="busy")
    ap.add_argument("--no-reports", action="store_true",
                    help="messages do not ask for status reports (the cpu bench's do, as here by default)")
    args = ap.parse_args(argv)
    out = asyncio.run(run(args.modems, args.latency_s, args.messages, args.idle_s, args.pyspy, args.pyspy_phase,
                          not args.no_reports))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
