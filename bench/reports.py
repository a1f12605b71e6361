"""Reports and retention at scale: the report query over a year at 10,000 messages a
day, the rollup's speed, and pruning 1 M rows while the gateway sends.

1. **Report query.** 3.6 M synthetic messages (365 days x 10,000; 4 SIMs, 5 keys, 10
   campaigns, outcomes, latencies, costs drawn at random) are aggregated into the
   daily rollup table exactly as the rollup files them (one row per day x SIM x key x
   campaign, counters and latency histogram), bulk-inserted into a SQLite store, and
   ``GET /api/v1/reports``'s query is timed for a whole year, per SIM/key/campaign
   and per day/month (the year by month reads report_monthly). "Synthetic rollup
   build" is the time to aggregate the 3.6 M messages and insert the rows.
2. **Rollup speed.** N messages with their outbox events are written as the gateway
   writes them, then ``store.rollup.roll`` counts them (the real code): events/s.
3. **Pruning during dispatch.** A store holding 1 M prunable rows (messages, parts and
   events older than the retention, counted and read by every consumer) is pruned by
   ``gsmgw.housekeeping.prune`` (the real code: batches, pauses) while the real
   gateway sends through emulated modems (``gsmgw fake-modem`` in its own process,
   as in ``bench.dispatch``); the gap between one ``+CMGS`` result and the next
   ``AT+CMGS`` on a modem (p50/p99) is compared with the same run without pruning.

Each measurement runs ``--repeats`` times (default 3): min, median and max are given,
with the load average before and after.

    python -m bench.reports --json bench/results/reports.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update

from bench.transcripts import gaps_s, marks, pct
from gsmgw.config import (
    ApiConfig,
    Config,
    DispatchConfig,
    ModemConfig,
    RetentionConfig,
    StoreConfig,
)
from gsmgw.housekeeping import classify_error, prune
from gsmgw.store import NewMessage, Store
from gsmgw.store import tables as t
from gsmgw.store.rollup import COUNTERS, HIST_COLUMNS, N_BUCKETS, latency_bucket

DAY0 = dt.date(2025, 1, 1)
SIMS = [f"sim{i}" for i in range(1, 5)]
KEYS = [f"key{i}" for i in range(1, 6)]
CAMPAIGNS = ["", *(f"camp{i}" for i in range(1, 11))]


def spread(xs: list[float]) -> dict[str, float]:
    return {"min": round(min(xs), 4), "median": round(statistics.median(xs), 4), "max": round(max(xs), 4)}


def load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()
    except OSError:
        return "?"


# --- 1. the report query ------------------------------------------------------------------


def synthetic_rollup(days: int, per_day: int, seed: int = 7) -> list[dict[str, Any]]:
    """The rollup rows of ``days`` x ``per_day`` random messages."""
    rnd = random.Random(seed)
    rows: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for d in range(days):
        day = (DAY0 + dt.timedelta(days=d)).isoformat()
        for _ in range(per_day):
            k = (day, rnd.choice(SIMS), rnd.choice(KEYS), rnd.choice(CAMPAIGNS))
            r = rows.get(k)
            if r is None:
                r = rows[k] = {c: 0 for c in COUNTERS} | {"hist": [0] * N_BUCKETS}
            parts = 1 if rnd.random() < 0.8 else 2
            r["messages"] += 1
            r["cost_micros"] += 50_000 * parts
            x = rnd.random()
            if x < 0.90:
                r["parts_sent"] += parts
                r["parts_delivered"] += parts
                r["messages_delivered"] += 1
                r["hist"][latency_bucket(rnd.expovariate(1 / 8.0))] += 1
            elif x < 0.95:
                r["parts_sent"] += parts
                r["failed_report"] += 1
                r["messages_failed"] += 1
            elif x < 0.98:
                r["failed_" + rnd.choice(("permanent", "transient", "modem"))] += parts
                r["messages_failed"] += 1
            else:
                r["failed_expired"] += parts
            if rnd.random() < 0.02:
                r["replies"] += 1
            if rnd.random() < 0.002:
                r["optouts"] += 1
    return [{"day": k[0], "sim": k[1], "api_key_id": k[2], "campaign_id": k[3],
             **{c: v[c] for c in COUNTERS}, **dict(zip(HIST_COLUMNS, v["hist"], strict=True))}
            for k, v in rows.items()]


def bench_query(workdir: Path, days: int, per_day: int, repeats: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    rows = synthetic_rollup(days, per_day)
    store = Store(f"sqlite:///{workdir / 'reports.db'}")
    store.migrate()
    monthly: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for r in rows:
        k = (r["day"][:7], r["sim"], r["api_key_id"], r["campaign_id"])
        m = monthly.get(k)
        if m is None:
            monthly[k] = {**{c: v for c, v in r.items() if c != "day"}, "month": k[0]}
        else:
            for c in (*COUNTERS, *HIST_COLUMNS):
                m[c] += r[c]
    with store.engine.begin() as conn:
        for i in range(0, len(rows), 5000):
            conn.execute(insert(t.report_daily), rows[i:i + 5000])
        months = list(monthly.values())
        for i in range(0, len(months), 5000):
            conn.execute(insert(t.report_monthly), months[i:i + 5000])
    build_s = time.perf_counter() - t0
    last = DAY0 + dt.timedelta(days=days - 1)
    out: dict[str, Any] = {"messages": days * per_day, "rollup_rows": len(rows), "build_s": round(build_s, 2),
                           "queries": {}}
    try:
        for group_by in ("sim", "key", "campaign"):
            for period in ("day", "month"):
                times = []
                for _ in range(repeats):
                    q0 = time.perf_counter()
                    res = store.rollup.report(group_by=group_by, period=period, date_from=DAY0, date_to=last)
                    times.append(time.perf_counter() - q0)
                assert sum(r["messages"] for r in res) == days * per_day
                out["queries"][f"{group_by}/{period}"] = {"rows": len(res), "seconds": spread(times)}
    finally:
        store.close()
    return out


# --- 2. the rollup's speed -------------------------------------------------------------------


def seed_messages(store: Store, n: int, *, old: bool, rolled: bool) -> None:
    """``n`` one-part delivered messages with their events, as the gateway leaves them."""
    base = dt.datetime(2025, 1, 1, tzinfo=dt.UTC) if old else dt.datetime.now(dt.UTC)
    chunk = 5000
    for start in range(0, n, chunk):
        msgs, parts, events = [], [], []
        for i in range(start, min(n, start + chunk)):
            mid = f"{i:032x}"
            at = base + dt.timedelta(seconds=i * 8.64)
            msgs.append({"id": mid, "batch_id": mid[:24], "api_key_id": KEYS[i % 5], "to_number": "+15550001111",
                         "text": "bench", "encoding": "gsm7", "parts_total": 1, "state": "delivered",
                         "priority": 0, "modem_id": SIMS[i % 4], "created_at": at, "updated_at": at,
                         "send_at": at, "valid_until": at, "sent_at": at,
                         "delivered_at": at + dt.timedelta(seconds=5), "cost_micros": 50_000,
                         "flash": False, "delivery_report": True, "transactional": False,
                         "resend_unknown": False, "concat_ref": 0, "attempts": 1,
                         "report_mark": "{}" if rolled else None})
            parts.append({"message_id": mid, "seq": 1, "state": "delivered", "modem_id": SIMS[i % 4],
                          "recipient": "+15550001111", "sent_at": at, "delivered_at": at})
            events.append({"type": "sms:delivered", "message_id": mid, "payload": "{}", "created_at": at})
        with store.engine.begin() as conn:
            conn.execute(insert(t.messages), msgs)
            conn.execute(insert(t.message_parts), parts)
            conn.execute(insert(t.events), events)
    if rolled:  # as if every consumer had read them and the rollup had counted them
        with store.engine.begin() as conn:
            top = conn.execute(select(func.max(t.events.c.id))).scalar_one()
            conn.execute(update(t.webhook_cursor).values(last_event_id=top))
            conn.execute(insert(t.webhook_cursor).values(name="reports", last_event_id=top,
                                                         updated_at=dt.datetime.now(dt.UTC)))


def bench_rollup(workdir: Path, n: int, repeats: int) -> dict[str, Any]:
    rates = []
    for r in range(repeats):
        store = Store(f"sqlite:///{workdir / f'roll{r}.db'}")
        try:
            store.migrate()
            seed_messages(store, n, old=False, rolled=False)
            t0 = time.perf_counter()
            done = 0
            while True:
                res = store.rollup.roll(classify_error, limit=500)
                done += res.events
                if not res.more:
                    break
            rates.append(done / (time.perf_counter() - t0))
        finally:
            store.close()
    return {"messages": n, "events_per_s": spread(rates)}


# --- 3. pruning during dispatch --------------------------------------------------------------


def count_rows(store: Store) -> int:
    """Messages + parts + events: what the prune deletes here."""
    with store.engine.connect() as conn:
        return sum(int(conn.execute(select(func.count()).select_from(tb)).scalar_one())
                   for tb in (t.messages, t.message_parts, t.events))


async def dispatch_cell(workdir: Path, template: Path | None, *, k: int, latency_s: float, n_messages: int,
                        prune_rows: bool, retention: RetentionConfig) -> dict[str, Any]:
    from gsmgw.daemon import Gateway

    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    db = workdir / "bench.db"
    if template is not None:
        await asyncio.to_thread(shutil.copyfile, template, db)
        # The copy's hundreds of MB of dirty pages, written back during the run, made the
        # gateway's fsyncs wait on the file system's journal (gaps of 0.1-1.2 s, with and
        # without pruning): they go to disk before the run.
        await asyncio.to_thread(os.sync)
    ports, transcripts = workdir / "ports", workdir / "transcripts"
    fake = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gsmgw", "fake-modem", "--count", str(k), "--dir", str(ports),
        "--latency-s", str(latency_s), "--report-delay-s", "0.05", "--transcript-dir", str(transcripts),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    pruned: dict[str, Any] = {}
    try:
        links = [ports / f"ttyGSM{i}" for i in range(k)]
        deadline = time.monotonic() + 30
        while not all(p.exists() for p in links):
            if time.monotonic() > deadline:
                raise RuntimeError("gsmgw fake-modem did not start")
            await asyncio.sleep(0.05)
        cfg = Config(api=ApiConfig(listen="127.0.0.1:0"), store=StoreConfig(url=f"sqlite:///{db}"),
                     dispatch=DispatchConfig(poll_interval_s=1.0, sticky_s=0),
                     retention=RetentionConfig(daily_at=""),
                     modem=tuple(ModemConfig(id=f"sim{i + 1}", port=str(p), send_timeout_s=latency_s + 10)
                                 for i, p in enumerate(links)))
        gw = Gateway(cfg, host="bench")
        await gw.store.call(gw.store.migrate)
        batch = [NewMessage(f"+1555400{i:04d}", f"bench {i}", "gsm7", 1) for i in range(n_messages)]
        for i in range(0, n_messages, 500):
            await gw.store.call(gw.store.messages.enqueue, batch[i:i + 500])
        await gw.start()
        task = None
        rows_before = await gw.store.call(count_rows, gw.store) if prune_rows else 0
        try:
            if prune_rows:
                t0 = time.monotonic()
                task = asyncio.create_task(prune(gw.store, retention, actor="bench", quiet=gw.pool.quiet_wait_s))
            while True:
                # Queued + sending, from the read lane: the benchmark's own look must not
                # hold the writer thread (a GROUP BY over the 333,000 old messages took 30 ms
                # there and showed up as the worst gaps of the prune runs).
                if await gw.store.call_read(gw.store.messages.queue_depth) == 0:
                    break
                await asyncio.sleep(0.2)
            if task is not None:
                # The gaps are those of the sends, all made while the prune ran: stop it here
                # and count what it deleted meanwhile (rows/s at its duty cycle).
                window_s = time.monotonic() - t0
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                rows = await gw.store.call(count_rows, gw.store)
                pruned.update(window_s=round(window_s, 1), rows=rows_before - rows,
                              rows_per_s=round((rows_before - rows) / window_s))
        finally:
            if task is not None and not task.done():
                task.cancel()
            await gw.stop()
    finally:
        if fake.returncode is None:
            fake.terminate()
            await fake.wait()
    per_modem = [marks(p) for p in sorted(transcripts.glob("*"))]
    gaps = gaps_s(per_modem)
    return {"gap_p50_ms": round(pct(gaps, 0.5) * 1000, 2), "gap_p99_ms": round(pct(gaps, 0.99) * 1000, 2),
            "gap_max_ms": round(max(gaps) * 1000, 2), "gaps": len(gaps), "pruned": pruned}


async def bench_prune(workdir: Path, rows: int, repeats: int, k: int, latency_s: float,
                      n_messages: int, batch_rows: int = 200, pause_s: float = 0.05,
                      duty_cycle: float = 0.2, batch_ms: float = RetentionConfig().batch_ms) -> dict[str, Any]:
    template = workdir / "template.db"
    store = Store(f"sqlite:///{template}")
    t0 = time.perf_counter()
    try:
        store.migrate()
        seed_messages(store, rows // 3, old=True, rolled=True)  # message + part + event = 3 rows
    finally:
        store.close()
    seed_s = time.perf_counter() - t0
    keep = RetentionConfig(messages_days=30, events_days=30, webhook_deliveries_days=30, inbound_days=30,
                           batch_rows=batch_rows, pause_s=pause_s, duty_cycle=duty_cycle,
                           batch_ms=batch_ms)
    with_p, without, big = [], [], []
    for r in range(repeats):
        without.append(await dispatch_cell(workdir / f"plain{r}", None, k=k, latency_s=latency_s,
                                           n_messages=n_messages, prune_rows=False, retention=keep))
        big.append(await dispatch_cell(workdir / f"big{r}", template, k=k, latency_s=latency_s,
                                       n_messages=n_messages, prune_rows=False, retention=keep))
        with_p.append(await dispatch_cell(workdir / f"prune{r}", template, k=k, latency_s=latency_s,
                                          n_messages=n_messages, prune_rows=True, retention=keep))
    return {
        "rows": rows, "seed_s": round(seed_s, 1), "modems": k, "latency_s": latency_s, "messages": n_messages,
        "batch_rows": keep.batch_rows, "batch_ms": keep.batch_ms, "pause_s": keep.pause_s, "duty_cycle": keep.duty_cycle,
        "without_prune": {"gap_p50_ms": spread([x["gap_p50_ms"] for x in without]),
                          "gap_p99_ms": spread([x["gap_p99_ms"] for x in without])},
        "same_store_without_prune": {"gap_p50_ms": spread([x["gap_p50_ms"] for x in big]),
                                     "gap_p99_ms": spread([x["gap_p99_ms"] for x in big])},
        "with_prune": {"gap_p50_ms": spread([x["gap_p50_ms"] for x in with_p]),
                       "gap_p99_ms": spread([x["gap_p99_ms"] for x in with_p]),
                       "rows_per_s": spread([x["pruned"]["rows_per_s"] for x in with_p]),
                       "rows_pruned_during_sends": [x["pruned"]["rows"] for x in with_p]},
        "runs": {"without": without, "same_store_without": big, "with": with_p},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.reports", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--per-day", type=int, default=10_000)
    ap.add_argument("--rollup-messages", type=int, default=50_000)
    ap.add_argument("--prune-rows", type=int, default=1_000_000)
    ap.add_argument("--modems", type=int, default=2)
    ap.add_argument("--latency-s", type=float, default=0.5)
    ap.add_argument("--messages", type=int, default=200, help="messages sent in each dispatch run")
    ap.add_argument("--batch-rows", type=int, default=200, help="[retention] batch_rows for the prune")
    ap.add_argument("--duty-cycle", type=float, default=0.2, help="[retention] duty_cycle for the prune")
    ap.add_argument("--batch-ms", type=float, default=RetentionConfig().batch_ms,
                    help="[retention] batch_ms for the prune")
    ap.add_argument("--pause-s", type=float, default=0.05, help="[retention] pause_s for the prune")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=("query", "rollup", "prune"), action="append")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    parts = args.only or ["query", "rollup", "prune"]
    report: dict[str, Any] = {"benchmark": "reports", "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                              "cpus": os.cpu_count(), "load_before": load()}
    with tempfile.TemporaryDirectory(prefix="gsmgw-bench-reports-") as tmp:
        w = Path(tmp)
        if "query" in parts:
            report["query"] = bench_query(w, args.days, args.per_day, args.repeats)
            print(json.dumps(report["query"]), flush=True)
        if "rollup" in parts:
            report["rollup"] = bench_rollup(w, args.rollup_messages, args.repeats)
            print(json.dumps(report["rollup"]), flush=True)
        if "prune" in parts:
            report["prune"] = asyncio.run(bench_prune(w, args.prune_rows, args.repeats, args.modems,
                                                      args.latency_s, args.messages, args.batch_rows,
                                                      args.pause_s, args.duty_cycle, args.batch_ms))
            print(json.dumps({k: v for k, v in report["prune"].items() if k != "runs"}), flush=True)
    report["load_after"] = load()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
