"""Dispatch throughput against the ideal K·60/L, and the idle gap on a busy modem.

For each K (emulated modems) and L (network send latency per SMS), queue enough
messages to keep every modem busy for about ``--seconds``, run the real gateway
(store, pool, driver over pseudo-terminals) against the emulator, and report:

- throughput in messages per minute and as a fraction of K·60/L, measured from
  the first ``AT+CMGS`` to the last ``+CMGS`` result (start-up excluded);
- the gap between one ``+CMGS`` result and the next ``AT+CMGS`` on the same
  modem (p50/p99): time the modem sits idle between sends.

The emulator runs as a separate ``gsmgw fake-modem`` process, as real modems
are outside the gateway; the gaps come from its byte transcripts.

    python -m bench.dispatch --modems 1,4,16 --latency-s 0.5,3 --seconds 20 --json out.json
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

from bench.transcripts import gaps_s, marks, pct, utilisation
from gsmgw.config import ApiConfig, Config, DispatchConfig, ModemConfig, StoreConfig
from gsmgw.daemon import Gateway
from gsmgw.store import NewMessage


async def run_one(k: int, latency_s: float, seconds: float, workdir: Path,
                  delivery_reports: bool = True) -> dict[str, Any]:
    """One cell: the emulator in its own process (as real modems are outside the
    gateway), the gateway in this one; gaps are read from the emulator's transcripts."""
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
            dispatch=DispatchConfig(poll_interval_s=1.0, sticky_s=0, delivery_reports=delivery_reports),
            modem=tuple(
                ModemConfig(id=f"sim{i + 1}", port=str(p), send_timeout_s=latency_s + 10)
                for i, p in enumerate(links)
            ),
        )
        gw = Gateway(cfg, host="bench")
        await gw.store.call(gw.store.migrate)
        batch = [NewMessage(f"+1555400{i:04d}", f"bench message {i}", "gsm7", 1, delivery_report=delivery_reports)
                 for i in range(n_messages)]
        for i in range(0, n_messages, 500):
            await gw.store.call(gw.store.messages.enqueue, batch[i:i + 500])
        await gw.start()
        try:
            t_wait = time.monotonic() + seconds * 4 + 60
            while True:
                counts = await gw.store.call(gw.store.messages.counts_by_state)
                done = sum(v for s, v in counts.items() if s not in ("queued", "sending"))
                if done >= n_messages:
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
    marks_per_modem = [marks(p) for p in sorted(transcripts.glob("*"))]
    all_marks = [m for mk in marks_per_modem for m in mk]
    first_cmd = min(t for t, kind in all_marks if kind == "cmd")
    last_result = max(t for t, kind in all_marks if kind == "result")
    # Transcript clocks start per modem within milliseconds of each other; the
    # batch's wall time is compared with the ideal n·L/K.
    elapsed = last_result - first_cmd
    per_min = n_messages / elapsed * 60.0
    ideal = k * 60.0 / latency_s
    gaps = gaps_s(marks_per_modem)
    return {
        "modems": k,
        "latency_s": latency_s,
        "messages": n_messages,
        "elapsed_s": round(elapsed, 3),
        "per_minute": round(per_min, 1),
        "ideal_per_minute": round(ideal, 1),
        "fraction_of_ideal": round(per_min / ideal, 4),
        "utilisation": round(utilisation(marks_per_modem, latency_s), 4),
        "gap_p50_ms": round(pct(gaps, 0.50) * 1000, 2),
        "gap_p99_ms": round(pct(gaps, 0.99) * 1000, 2),
        "gap_max_ms": round(max(gaps) * 1000, 2) if gaps else None,
    }


async def run(modems: list[int], latencies: list[float], seconds: float, repeats: int = 1) -> dict[str, Any]:
    logging.getLogger().setLevel(logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gsmgw-bench-") as tmp:
        for k in modems:
            for lat in latencies:
                runs = [await run_one(k, lat, seconds, Path(tmp) / f"k{k}-l{lat}-r{r}") for r in range(repeats)]
                fr = [r["fraction_of_ideal"] for r in runs]
                best = sorted(runs, key=lambda r: r["fraction_of_ideal"])[len(runs) // 2]
                rows.append({**best, "fraction_min": min(fr), "fraction_max": max(fr), "repeats": repeats})
    return {
        "benchmark": "dispatch",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"cpus": _cpu_count(), "cpu": _cpu_model(), "python": platform.python_version()},
        "seconds_per_run": seconds,
        "results": rows,
    }


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Dispatch benchmark, {report['date']}, {report['machine']['cpus']} CPUs ({report['machine']['cpu']})",
        "",
        "| K modems | L (s) | messages | msgs/min | ideal K·60/L | fraction (median [min–max]) "
        "| per-modem utilisation | gap p50 ms | gap p99 ms |",
        "|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['modems']} | {r['latency_s']} | {r['messages']} | {r['per_minute']} | {r['ideal_per_minute']} "
            f"| {r['fraction_of_ideal']:.3f} [{r['fraction_min']:.3f}–{r['fraction_max']:.3f}] "
            f"| {r['utilisation']:.3f} | {r['gap_p50_ms']} | {r['gap_p99_ms']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.dispatch", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modems", default="1,4,16", help="comma list of K (default 1,4,16)")
    ap.add_argument("--latency-s", default="0.5,3", help="comma list of L in seconds (default 0.5,3)")
    ap.add_argument("--seconds", type=float, default=20.0, help="busy time per run (default 20)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per cell; the median is reported")
    ap.add_argument("--json", type=Path, help="write the JSON report here")
    args = ap.parse_args(argv)
    report = asyncio.run(
        run([int(x) for x in args.modems.split(",")], [float(x) for x in args.latency_s.split(",")],
            args.seconds, args.repeats)
    )
    print(to_markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
