"""Import of 100,000 contacts from CSV: rows per second, and what the import does to
the rest of the gateway meanwhile (event-loop lag, the store writer's latency for a
one-message enqueue, as the API's sends see it).

    python -m bench.contacts [--rows 100000] [--runs 3] [--json out.json]

Each run imports a fresh file (numbers national and international, a name, three
fields, a tag column, 0.1 % bad rows) into a new SQLite store through
``ContactsService.import_csv`` (batches of ``[campaigns] import_batch_rows``),
then imports it again with ``on_duplicate=update``; the lag and enqueue figures are
also measured for 3 s before the import (the baseline on this machine, at this load). Prints min / median / max over
the runs and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from gsmgw.campaigns import ContactsService, ImportOptions
from gsmgw.config import Config
from gsmgw.store import NewMessage, Store


def make_csv(rows: int, seed: int = 1) -> bytes:
    rnd = random.Random(seed)
    out = ["number,name,city,plan,due,tags"]
    for i in range(rows):
        if i % 1000 == 999:
            number = "not a number"
        elif i % 2:
            number = f"07700 9{i:05d}"  # national (GB)
        else:
            number = f"+44 7700 8{i:05d}"
        out.append(f"{number},Name {i},{rnd.choice(['Leeds', 'York', 'Hull'])},{rnd.choice(['gold', 'basic'])},"
                   f"2026-12-{1 + i % 28:02d},{rnd.choice(['a', 'b', 'a|b', ''])}")
    return ("\n".join(out) + "\n").encode()


async def one_run(data: bytes, rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        store = Store(f"sqlite:///{Path(d) / 'b.db'}")
        await store.call(store.migrate)
        svc = ContactsService(store, lambda: Config())
        lags: list[float] = []
        writes: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:  # event-loop lag: how late a 10 ms sleep wakes
            while not stop.is_set():
                t = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append(time.perf_counter() - t - 0.01)

        async def sender() -> None:  # the API's sends: one enqueue every 20 ms
            while not stop.is_set():
                t = time.perf_counter()
                await store.call(store.messages.enqueue, [NewMessage("+15550100001", "x", "gsm7", 1)])
                writes.append(time.perf_counter() - t)
                await asyncio.sleep(0.02)

        tasks = [asyncio.create_task(ticker()), asyncio.create_task(sender())]
        await asyncio.sleep(3.0)  # the same measures without an import: the baseline
        base_lags, base_writes = sorted(lags), sorted(writes)
        lags.clear()
        writes.clear()
        t0 = time.perf_counter()
        r1 = await svc.import_csv(data, ImportOptions(default_region="GB"))
        t1 = time.perf_counter()
        r2 = await svc.import_csv(data, ImportOptions(default_region="GB", on_duplicate="update"))
        t2 = time.perf_counter()
        stop.set()
        await asyncio.gather(*tasks)
        store.close()
    assert r1.created + r1.invalid == rows and r2.updated == r1.created, (r1.as_dict(), r2.as_dict())
    lags.sort()
    writes.sort()
    return {"base_loop_lag_p99_ms": base_lags[int(len(base_lags) * 0.99)] * 1000,
            "base_enqueue_p50_ms": base_writes[len(base_writes) // 2] * 1000,
            "base_enqueue_p99_ms": base_writes[int(len(base_writes) * 0.99)] * 1000,
            "create_rows_per_s": rows / (t1 - t0), "update_rows_per_s": rows / (t2 - t1),
            "invalid": r1.invalid, "loop_lag_p99_ms": lags[int(len(lags) * 0.99)] * 1000,
            "loop_lag_max_ms": lags[-1] * 1000, "enqueue_p50_ms": writes[len(writes) // 2] * 1000,
            "enqueue_p99_ms": writes[int(len(writes) * 0.99)] * 1000, "enqueue_max_ms": writes[-1] * 1000}


def _mmm(values: list[float]) -> str:
    return f"{min(values):.0f} / {statistics.median(values):.0f} / {max(values):.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    data = make_csv(args.rows)
    load_before = os.getloadavg()
    runs = [asyncio.run(one_run(data, args.rows)) for _ in range(args.runs)]
    load_after = os.getloadavg()
    print(f"Import of {args.rows:,} contacts ({len(data) / 1e6:.1f} MB CSV, {runs[0]['invalid']} bad rows), "
          f"SQLite, {args.runs} runs: min / median / max")
    print("| measure | min / median / max |")
    print("|---|---:|")
    for key, label in [("create_rows_per_s", "new contacts, rows/s"), ("update_rows_per_s", "same file again "
                       "(update), rows/s"), ("loop_lag_p99_ms", "event-loop lag p99, ms"),
                       ("loop_lag_max_ms", "event-loop lag max, ms"),
                       ("base_loop_lag_p99_ms", "baseline (no import) event-loop lag p99, ms"),
                       ("base_enqueue_p50_ms", "baseline enqueue p50, ms"),
                       ("base_enqueue_p99_ms", "baseline enqueue p99, ms"), ("enqueue_p50_ms", "one-message enqueue "
                       "meanwhile p50, ms"), ("enqueue_p99_ms", "enqueue p99, ms"), ("enqueue_max_ms",
                                                                                  "enqueue max, ms")]:
        vals = [r[key] for r in runs]
        fmt = _mmm(vals) if "rows" in key else " / ".join(f"{v:.1f}" for v in (min(vals), statistics.median(vals),
                                                                                max(vals)))
        print(f"| {label} | {fmt} |")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} ({os.cpu_count()} CPUs)")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "load": [load_before, load_after]}, indent=1))


if __name__ == "__main__":
    main()
