"""Intake probe (issue 17): single POSTs/s with wrk and the server's CPU per POST.

A real ``gsmgw run`` process (bench.gateway.Gw: SQLite, synchronous=FULL, no
modems) takes ``wrk -t1 -c32`` single-message POSTs for ``--seconds``; the
server's utime+stime is read from /proc/<pid>/stat before and after, so the
figure is CPU per accepted (committed) message. ``--pyspy FILE`` records the
server with py-spy meanwhile (speedscope).

    python -m bench.prof_intake --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.gateway import Gw, wrk_lua
from bench.prof_engine import spy_start, spy_stop


async def run(seconds: float, connections: int, pyspy: Path | None) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="gsmgw-intake-") as tmp:
        work = Path(tmp)
        gw = Gw(work)
        await gw.start()
        try:
            assert gw.proc is not None
            lua = work / "post.lua"
            lua.write_text(wrk_lua(gw.key, same=False))
            spy = None
            if pyspy is not None:
                spy = spy_start(pyspy, gw.proc.pid)
            c0 = gw.cpu_s()
            res = await asyncio.to_thread(
                subprocess.run,
                [wrk, "-t1", f"-c{connections}", f"-d{max(1, int(seconds))}s", "--latency", "-s", str(lua),
                 gw.url + "/api/v1/messages"],
                capture_output=True, text=True, timeout=seconds + 60,
            )
            cpu = gw.cpu_s() - c0
            spy_stop(spy)
            text = res.stdout
            rps = float(next(ln.split()[1] for ln in text.splitlines() if ln.startswith("Requests/sec")))
            total = int(next(ln.split()[0] for ln in text.splitlines() if "requests in" in ln))
            non2xx = next((int(ln.split()[-1]) for ln in text.splitlines() if "Non-2xx" in ln), 0)
            p99 = next((ln.split()[1] for ln in text.splitlines() if ln.strip().startswith("99%")), "")
            p50 = next((ln.split()[1] for ln in text.splitlines() if ln.strip().startswith("50%")), "")
        finally:
            await gw.stop()
    return {"seconds": seconds, "connections": connections, "requests_per_s": round(rps, 1),
            "requests": total, "non_2xx": non2xx, "p50": p50, "p99": p99,
            "server_cpu_s": round(cpu, 2), "server_cpu_ms_per_post": round(cpu * 1000 / max(1, total), 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.prof_intake", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--pyspy", type=Path)
    args = ap.parse_args(argv)
    print(json.dumps(asyncio.run(run(args.seconds, args.connections, args.pyspy))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
