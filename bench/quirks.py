"""Inbound latency with a module that announces SMS before it can read them (issue 16).

One emulated SIM800 answers the first ``AT+CMGR`` of every index a ``+CMTI`` announced
with ``+CMS ERROR: 321`` (the write had not completed). The real gateway runs with the
periodic sweep an hour away, so only the read retry can bring a message in quickly.
Measured: the time from the ``+CMTI`` (the simulated network storing the SMS, which
prints it at once) to the message's inbox row (``received_at``), over N single-part SMS
arriving one every ``--interval-s``; the same without the error, for comparison.

    python -m bench.quirks --messages 120 --interval-s 0.1 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.transcripts import pct
from gsmgw.config import ApiConfig, Config, InboundConfig, ModemConfig, StoreConfig
from gsmgw.daemon import Gateway
from gsmgw.emulator import Behaviour, FakeModemPool

TARGET_P99_S = 2.0


async def run_one(n: int, interval_s: float, transient_error: int | None, workdir: Path) -> dict[str, Any]:
    behaviour = Behaviour(transient_read_error=transient_error)
    async with FakeModemPool(count=1, directory=workdir / "ports", behaviours=behaviour,
                             storage_capacity={"SM": 255, "ME": 255}) as fake:
        sim = fake.modems[0].modem
        cfg = Config(
            api=ApiConfig(listen="127.0.0.1:0"),
            store=StoreConfig(url=f"sqlite:///{workdir / 'bench.db'}"),
            inbound=InboundConfig(sweep_interval_s=3600.0),
            modem=(ModemConfig(id="sim1", port=str(fake.modems[0].path)),),
        )
        gw = Gateway(cfg, host="bench")
        await gw.start()
        try:
            await gw.pool.slots["sim1"].driver.wait_ready(30)  # type: ignore[attr-defined]
            # Let the sweep that follows READY pass: from here on only +CMTI reads count.
            deadline = time.monotonic() + 10
            while gw.pool.inbound.sweeps_total < 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            announced: dict[str, float] = {}
            for i in range(n):
                sender = f"+44770090{i:04d}"
                announced[sender] = time.time()  # +CMTI is written in this same call
                sim.inject_sms(sender, f"quirk bench {i}")
                await asyncio.sleep(interval_s)
            deadline = time.monotonic() + 60
            # Every row committed and every SMS deleted from the SIM (the delete follows the commit).
            while len(rows := await gw.store.call(gw.store.inbound.list_inbound, limit=n + 1)) < n or sim.storages["SM"].used:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {len(rows)}/{n} inbound after 60 s")
                await asyncio.sleep(0.01)
            lat = [r["received_at"].timestamp() - announced[r["sender"]] for r in rows]
            return {
                "transient_error": transient_error, "messages": n, "interval_s": interval_s,
                "p50_ms": round(pct(lat, 0.5) * 1000, 1), "p99_ms": round(pct(lat, 0.99) * 1000, 1),
                "max_ms": round(max(lat) * 1000, 1),
                "read_retries": gw.pool.inbound.read_retries_total,
                "sweeps": gw.pool.inbound.sweeps_total,
                "left_in_storage": sim.storages["SM"].used,
            }
        finally:
            await gw.stop()


async def run(n: int = 120, interval_s: float = 0.1) -> dict[str, Any]:
    results = []
    for error in (321, None):
        with tempfile.TemporaryDirectory() as d:
            results.append(await run_one(n, interval_s, error, Path(d)))
    return {"results": results, "target_p99_ms": TARGET_P99_S * 1000}


def to_markdown(report: dict[str, Any]) -> str:
    out = ["| first AT+CMGR answers | SMS | one every | p50 ms | p99 ms | max ms | extra reads | sweeps |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        first = f"+CMS ERROR: {r['transient_error']}" if r["transient_error"] else "the SMS"
        out.append(f"| {first} | {r['messages']} | {r['interval_s']} s | {r['p50_ms']} | {r['p99_ms']} | "
                   f"{r['max_ms']} | {r['read_retries']} | {r['sweeps']} |")
    out.append(f"\nTime from +CMTI to the inbox row; the periodic sweep is an hour away, so the first row shows "
               f"the read retry alone (target: p99 ≤ {report['target_p99_ms']:.0f} ms).")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=120, help="inbound SMS per run (default 120)")
    p.add_argument("--interval-s", type=float, default=0.1, help="pause between two SMS (default 0.1)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.messages < 1 or args.interval_s < 0:
        p.error("--messages must be >= 1 and --interval-s >= 0")
    logging.basicConfig(level=logging.WARNING)
    report = asyncio.run(run(args.messages, args.interval_s))
    print(to_markdown(report))
    if args.json:
        args.json.write_text(json.dumps({"python": sys.version.split()[0], "platform": platform.platform(),
                                         **report}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
