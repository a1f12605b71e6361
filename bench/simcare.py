"""SIM care costs nothing when it is off, and the claim stays on its index with caps on.

Two measurements:

1. **Utilisation** of K emulated modems at send latency L (the real gateway, the
   emulator in its own process, as ``bench.dispatch``), with SIM care ``off`` (the
   defaults), and with ``caps`` on but not binding (month, distinct-recipient and
   warm-up caps far above the load, recipient quiet hours off, no pacing delay), each
   run ``--repeats`` times: min / median / max. With ``--baseline-src DIR`` (a tree
   of another commit, e.g. ``git archive main | tar -x -C DIR``) the same cell runs
   there through ``python -m bench.dispatch`` for the comparison with main.
2. **The claim** on a queue of ``--queue`` messages in SQLite: its EXPLAIN QUERY PLAN
   with caps and pacing in force (must walk ``ix_messages_claim``, never sort), and
   the time per claim (claim + release) with SIM care off and with caps on.

    python -m bench.simcare --modems 2 --latency-s 0.2 --seconds 6 --repeats 3 --queue 100000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.transcripts import marks, utilisation
from gsmgw.config import ApiConfig, Config, DispatchConfig, ModemConfig, StoreConfig
from gsmgw.daemon import Gateway
from gsmgw.domain import MessageState
from gsmgw.pool import pacing
from gsmgw.pool.pacing import CarePolicy
from gsmgw.store import CareRecord, ClaimCare, NewMessage, PartResult, Store

MODES: dict[str, dict[str, Any]] = {
    "off": {},
    # Every cap on, none binding: the claim reads the counters and adds its terms.
    "caps": {"max_per_month": 10**6, "max_recipients_per_day": 10**5, "max_recipients_per_month": 10**6,
             "max_per_day": 10**6, "warmup_start_per_day": 10**5, "warmup_days": 30},
}


async def run_one(mode: str, k: int, latency_s: float, seconds: float, workdir: Path) -> dict[str, Any]:
    n_messages = k * max(2, round(seconds / latency_s))
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    ports, transcripts = workdir / "ports", workdir / "transcripts"
    fake = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gsmgw", "fake-modem", "--count", str(k), "--dir", str(ports),
        "--latency-s", str(latency_s), "--report-delay-s", "0.05", "--transcript-dir", str(transcripts),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        links = [ports / f"ttyGSM{i}" for i in range(k)]
        deadline = time.monotonic() + 30
        while not all(p.exists() for p in links):
            if time.monotonic() > deadline or fake.returncode is not None:
                raise RuntimeError("gsmgw fake-modem did not start")
            await asyncio.sleep(0.05)
        cfg = Config(
            api=ApiConfig(listen="127.0.0.1:0"),
            store=StoreConfig(url=f"sqlite:///{workdir / 'bench.db'}"),
            dispatch=DispatchConfig(poll_interval_s=1.0, sticky_s=0),
            modem=tuple(ModemConfig(id=f"sim{i + 1}", port=str(p), send_timeout_s=latency_s + 10, **MODES[mode])
                        for i, p in enumerate(links)),
        )
        gw = Gateway(cfg, host="bench")
        await gw.store.call(gw.store.migrate)
        batch = [NewMessage(f"+1555400{i:04d}", f"bench message {i}", "gsm7", 1) for i in range(n_messages)]
        for i in range(0, n_messages, 500):
            await gw.store.call(gw.store.messages.enqueue, batch[i:i + 500])
        await gw.start()
        try:
            t_wait = time.monotonic() + seconds * 4 + 60
            while True:
                counts = await gw.store.call(gw.store.messages.counts_by_state)
                if sum(v for s, v in counts.items() if s not in ("queued", "sending")) >= n_messages:
                    break
                if time.monotonic() > t_wait:
                    raise RuntimeError(f"bench did not finish: {counts}")
                await asyncio.sleep(0.2)
        finally:
            await gw.stop()
    finally:
        if fake.returncode is None:
            fake.terminate()
            await fake.wait()
    per_modem = [marks(p) for p in sorted(transcripts.glob("*"))]
    return {"mode": mode, "messages": n_messages, "utilisation": round(utilisation(per_modem, latency_s), 4)}


def baseline(src: Path, k: int, latency_s: float, seconds: float, repeats: int) -> list[float]:
    """The same cell with another tree's code (``python -m bench.dispatch`` there)."""
    out = []
    for _ in range(repeats):
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            env = {**os.environ, "PYTHONPATH": str(src)}
            subprocess.run([sys.executable, "-m", "bench.dispatch", "--modems", str(k), "--latency-s", str(latency_s),
                            "--seconds", str(seconds), "--json", f.name], cwd=src, env=env, check=True,
                           stdout=subprocess.DEVNULL)
            out.append(json.loads(Path(f.name).read_text())["results"][0]["utilisation"])
    return out


def spread(xs: list[float]) -> dict[str, float]:
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs)}


# --- the claim on a big queue ---------------------------------------------------------------


def claim_bench(queue: int, workdir: Path, claims: int = 200) -> dict[str, Any]:
    from sqlalchemy import event  # to read the SQL the store sends

    store = Store(f"sqlite:///{workdir / 'claim.db'}", host="bench", sqlite_synchronous="OFF")
    store.migrate()
    try:
        t = dt.datetime.now(dt.UTC)
        far = t + dt.timedelta(days=30)
        batch = [NewMessage(f"+49151{i:08d}", "bulk", "gsm7", 1, priority=i % 3, valid_until=far)
                 for i in range(queue)]
        for i in range(0, queue, 5000):
            store.messages.enqueue(batch[i:i + 5000])
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        t = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        policy = CarePolicy(pace_min_s=60, pace_max_s=90, per_month=10**6, recipients_per_day=1,
                            recipients_per_month=10**6, per_day=10**6, warmup_start_per_day=10**5, warmup_days=30)

        def care(now: dt.datetime) -> ClaimCare:
            month, first, last = pacing.month_keys(now, "UTC")
            return ClaimCare(day=pacing.day_key(now, "UTC"), month=month, month_first_day=first,
                             month_last_day=last, gate=lambda u: pacing.gate(policy, u, now))

        # One send: the SIM is now paced (bulk waits) and its distinct-day cap is reached.
        c = store.claims.claim_next("sim1", lease_s=60, now=t, care=care(t))
        assert c is not None
        month = pacing.month_keys(t, "UTC")[0]
        store.claims.settle_claim(c.id, [PartResult(1, MessageState.SENT, tp_mr=1)],
                                  care=CareRecord("sim1", c.to_number, pacing.day_key(t, "UTC"), month,
                                                  t + dt.timedelta(seconds=60), t))
        # A second message to the same number, an OTP: what the paced, capped SIM may still take.
        store.messages.enqueue([NewMessage(c.to_number, "code", "gsm7", 1, priority=9, valid_until=far)])

        seen: list[tuple[str, Any]] = []

        def grab(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
            if "ORDER BY messages.priority DESC" in statement:
                seen.append((statement, params))

        event.listen(store.engine, "before_cursor_execute", grab)
        otp = store.claims.claim_next("sim1", lease_s=60, now=t, care=care(t))
        event.remove(store.engine, "before_cursor_execute", grab)
        assert otp is not None
        store.claims.settle_claim(otp.id, [], uncount_attempt=True)
        sql, params = seen[-1]
        with store.engine.connect() as conn:
            plan = [r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params).all()]
        assert any("ix_messages_claim" in p for p in plan) and not any("TEMP B-TREE" in p for p in plan), plan

        def per_claim_ms(with_care: bool, modem: str) -> float:
            t0 = time.perf_counter()
            for _ in range(claims):
                got = store.claims.claim_next(modem, lease_s=60, now=t, care=care(t) if with_care else None)
                if got is not None:
                    store.claims.settle_claim(got.id, [], uncount_attempt=True)
            return (time.perf_counter() - t0) / claims * 1000

        out = {"queue": queue, "plan": plan, "claims": claims,
               "ms_per_claim_off": round(per_claim_ms(False, "sim3"), 3),
               "ms_per_claim_caps_paced": round(per_claim_ms(True, "sim1"), 3),
               "ms_per_claim_caps_unpaced": round(per_claim_ms(True, "sim4"), 3)}
        # The worst case: paced, and no exempt message anywhere in the queue (the claim finds nothing).
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE messages SET state = 'cancelled' WHERE priority = 9")
        out["ms_per_claim_paced_nothing_exempt"] = round(per_claim_ms(True, "sim1"), 3)
        return out
    finally:
        store.close()


async def run(k: int, latency_s: float, seconds: float, repeats: int, queue: int,
              baseline_src: Path | None) -> dict[str, Any]:
    logging.getLogger().setLevel(logging.WARNING)
    out: dict[str, Any] = {"benchmark": "simcare", "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                           "load_before": os.getloadavg(), "modems": k, "latency_s": latency_s,
                           "seconds": seconds, "repeats": repeats, "utilisation": {}}
    with tempfile.TemporaryDirectory(prefix="gsmgw-simcare-") as tmp:
        for r in range(repeats):  # interleaved, so that a load swing hits every mode alike
            for mode in MODES:
                res = await run_one(mode, k, latency_s, seconds, Path(tmp) / f"{mode}-{r}")
                out["utilisation"].setdefault(mode, []).append(res["utilisation"])
        if baseline_src is not None:
            out["utilisation"]["baseline"] = await asyncio.to_thread(baseline, baseline_src, k, latency_s, seconds,
                                                                     repeats)
        out["claim"] = await asyncio.to_thread(claim_bench, queue, Path(tmp))
    out["spread"] = {mode: spread(xs) for mode, xs in out["utilisation"].items()}
    out["load_after"] = os.getloadavg()
    return out


def to_markdown(r: dict[str, Any]) -> str:
    lines = [f"SIM care, {r['modems']} modems, L = {r['latency_s']} s, {r['seconds']} s per run, "
             f"{r['repeats']} runs; load before {r['load_before'][0]:.2f}, after {r['load_after'][0]:.2f}", "",
             "| mode | utilisation min | median | max |", "|---|---|---|---|"]
    for mode, s in r["spread"].items():
        lines.append(f"| {mode} | {s['min']:.3f} | {s['median']:.3f} | {s['max']:.3f} |")
    c = r["claim"]
    lines += ["", f"Claim on a queue of {c['queue']} (SQLite, {c['claims']} claims each): "
              f"off {c['ms_per_claim_off']} ms, caps on {c['ms_per_claim_caps_unpaced']} ms, "
              f"caps on + paced + distinct cap reached {c['ms_per_claim_caps_paced']} ms, "
              f"paced with nothing exempt queued {c['ms_per_claim_paced_nothing_exempt']} ms", "",
              "EXPLAIN QUERY PLAN (caps on, paced):", *[f"    {p}" for p in c["plan"]]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.simcare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modems", type=int, default=2)
    ap.add_argument("--latency-s", type=float, default=0.2)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--queue", type=int, default=100_000, help="queued messages for the claim measurement")
    ap.add_argument("--baseline-src", type=Path, help="another tree (e.g. main) to run the same cell with")
    ap.add_argument("--json", type=Path, help="write the JSON report here")
    args = ap.parse_args(argv)
    report = asyncio.run(run(args.modems, args.latency_s, args.seconds, args.repeats, args.queue, args.baseline_src))
    print(to_markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
