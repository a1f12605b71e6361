"""Throughput of 1, 2 and 3 gateway hosts sharing one PostgreSQL queue, against the ideal.

Each host is a `gsmgw run` process with its own emulated modems (a `gsmgw
fake-modem` process per host, latency L); all share one fresh PostgreSQL
database. Messages are queued up front; throughput is counted from the first
AT+CMGS to the last +CMGS result across all modems (from the emulator
transcripts), and compared with the ideal H·M·60/L.

    python -m bench.multihost --hosts 1,2,3 --modems-per-host 2 --latency-s 0.2 --messages-per-modem 50
    (PostgreSQL URL from GSMGW_BENCH_PG_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.gateway import fake_modems
from bench.transcripts import walls
from gsmgw.store import NewMessage, Store

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _fresh_db(base: str) -> tuple[str, str]:
    name = f"gsmgw_bench_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(base).set(database=name).render_as_string(hide_password=False), name


def _drop_db(base: str, name: str) -> None:
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


async def run_one(hosts: int, modems_per_host: int, latency_s: float, per_modem: int, base: str,
                  workdir: Path) -> dict[str, Any]:
    url, name = await asyncio.to_thread(_fresh_db, base)
    total = hosts * modems_per_host * per_modem
    try:
        store = Store(url, host="bench")
        await store.call(store.migrate)
        batch = [NewMessage(f"+1561{i:07d}", f"multi {i}", "gsm7", 1, delivery_report=False) for i in range(total)]
        for i in range(0, total, 1000):
            await store.call(store.messages.enqueue, batch[i:i + 1000])
        store.close()
        procs = []
        stacks = []
        try:
            for h in range(hosts):
                cm = fake_modems(workdir / f"h{h}", modems_per_host, latency_s)
                ports, transcripts = await cm.__aenter__()
                stacks.append((cm, transcripts))
                cfg = workdir / f"h{h}.toml"
                modems = "".join(f'[[modem]]\nid = "h{h}m{i}"\nport = "{p}"\n' for i, p in enumerate(ports))
                cfg.write_text(f'[api]\nlisten = "127.0.0.1:0"\n[store]\nurl = "{url}"\nhost_id = "h{h}"\n'
                               f'[dispatch]\nsticky_s = 0\n[logging]\nlevel = "warning"\n{modems}')
                procs.append(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "gsmgw", "run", "--config", str(cfg),
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL))
            deadline = time.monotonic() + total * latency_s / (hosts * modems_per_host) * 4 + 60
            while sum(len(walls(t, "cmd")) for _, t in stacks) < total:
                if time.monotonic() > deadline:
                    raise RuntimeError("multi-host bench did not finish")
                await asyncio.sleep(0.2)
            await asyncio.sleep(latency_s + 0.5)
        finally:
            for p in procs:
                if p.returncode is None:
                    p.terminate()
            for p in procs:
                await p.wait()
            for cm, _ in stacks:
                await cm.__aexit__(None, None, None)
        # Wall-clock span across hosts: transcripts carry wall times.
        cmds = sorted(w for _, t in stacks for w in walls(t, "cmd"))
        results = sorted(w for _, t in stacks for w in walls(t, "result"))
        elapsed = results[-1] - cmds[0]
        per_min = total / elapsed * 60
        ideal = hosts * modems_per_host * 60 / latency_s
        return {"hosts": hosts, "modems": hosts * modems_per_host, "latency_s": latency_s, "messages": total,
                "per_minute": round(per_min, 1), "ideal_per_minute": round(ideal, 1),
                "fraction_of_ideal": round(per_min / ideal, 4)}
    finally:
        await asyncio.to_thread(_drop_db, base, name)


async def run(hosts: list[int], modems_per_host: int, latency_s: float, per_modem: int,
              base: str | None = None) -> dict[str, Any]:
    base = base or os.environ.get("GSMGW_BENCH_PG_URL") or os.environ.get("GSMGW_TEST_PG_URL") or DEFAULT_PG
    rows = []
    with tempfile.TemporaryDirectory(prefix="gsmgw-bench-mh-") as tmp:
        for h in hosts:
            rows.append(await run_one(h, modems_per_host, latency_s, per_modem, base, Path(tmp) / f"run{h}"))
    return {"benchmark": "multihost", "results": rows}


def to_markdown(report: dict[str, Any]) -> str:
    lines = ["| hosts | modems | L (s) | messages | msgs/min | ideal | fraction |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        lines.append(f"| {r['hosts']} | {r['modems']} | {r['latency_s']} | {r['messages']} | {r['per_minute']} "
                     f"| {r['ideal_per_minute']} | {r['fraction_of_ideal']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.multihost", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", default="1,2,3")
    ap.add_argument("--modems-per-host", type=int, default=2)
    ap.add_argument("--latency-s", type=float, default=0.2)
    ap.add_argument("--messages-per-modem", type=int, default=50)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    report = asyncio.run(run([int(h) for h in args.hosts.split(",")], args.modems_per_host, args.latency_s,
                             args.messages_per_modem))
    print(to_markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
