"""Inbound throughput: SMS per second from +CMTI to commit-and-delete, and latency.

K emulated modems (in this process, on real pseudo-terminals) each receive N SMS
at once (a mix of single-part and 3-part messages); the real gateway reads,
decodes, reassembles, commits and deletes them. Reported: messages and parts
per second over the whole burst (until every SIM is empty again), and the p50/p99 latency from the network
delivering the last part of a message to its row being committed.

    python -m bench.inbound --modems 1,4 --messages 50 --json out.json
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
from gsmgw.emulator import FakeModemPool

LONG = "Inbound benchmark, a long message in three parts. " * 8


async def run_one(k: int, n: int, workdir: Path) -> dict[str, Any]:
    async with FakeModemPool(count=k, directory=workdir / "ports",
                             storage_capacity={"SM": 255, "ME": 255}) as fake:
        cfg = Config(
            api=ApiConfig(listen="127.0.0.1:0"),
            store=StoreConfig(url=f"sqlite:///{workdir / 'bench.db'}"),
            inbound=InboundConfig(sweep_interval_s=3600.0),
            modem=tuple(ModemConfig(id=f"sim{i + 1}", port=str(m.path)) for i, m in enumerate(fake.modems)),
        )
        gw = Gateway(cfg, host="bench")
        await gw.start()
        try:
            for slot in gw.pool.slots.values():
                await slot.driver.wait_ready(30)  # type: ignore[attr-defined]
            sent_at: dict[tuple[str, str], float] = {}
            t0 = time.perf_counter()
            parts = 0
            for i in range(n):
                for j, pm in enumerate(fake.modems):
                    sender = f"+4477009{j:02d}{i:03d}"
                    text = LONG if i % 4 == 0 else f"short message {i}"
                    pm.modem.inject_sms(sender, text)
                    parts += 3 if text is LONG else 1
                    sent_at[(f"sim{j + 1}", sender)] = time.time()
            total = n * k
            deadline = time.monotonic() + 120
            while (len(rows := await gw.store.call(gw.store.inbound.list_inbound, limit=total + 1)) < total
                   or any(pm.modem.storages["SM"].used for pm in fake.modems)):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {len(rows)}/{total} inbound after 120 s")
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - t0
            lat = [r["received_at"].timestamp() - sent_at[(r["modem_id"], r["sender"])] for r in rows]
            left = sum(pm.modem.storages["SM"].used for pm in fake.modems)
            return {
                "modems": k, "messages": total, "parts": parts, "seconds": round(elapsed, 3),
                "messages_per_s": round(total / elapsed, 1), "parts_per_s": round(parts / elapsed, 1),
                "latency_p50_ms": round(pct(lat, 0.5) * 1000, 1),
                "latency_p99_ms": round(pct(lat, 0.99) * 1000, 1),
                "left_in_storage": left,
            }
        finally:
            await gw.stop()


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    out = []
    for k in [int(x) for x in args.modems.split(",")]:
        with tempfile.TemporaryDirectory() as d:
            r = await run_one(k, args.messages, Path(d))
            print(json.dumps(r), flush=True)
            out.append(r)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modems", default="1,4")
    p.add_argument("--messages", type=int, default=50, help="SMS per modem (each 4th has 3 parts)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    results = asyncio.run(main_async(args))
    if args.json:
        args.json.write_text(json.dumps({"python": sys.version.split()[0], "platform": platform.platform(),
                                         "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

