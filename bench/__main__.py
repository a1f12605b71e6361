"""``python -m bench`` (or ``make bench``): every benchmark, one report.

Writes ``bench/RESULTS.md`` (Markdown tables with the date, the machine and the
commands) and ``bench/results/all.json``. Each part can also run alone:
``python -m bench.dispatch``, ``bench.peers``, ``bench.gateway``, ``bench.codec``, ``bench.quirks``,
``bench.smpp``.

    python -m bench                      # everything, full sizes (about 30 minutes)
    python -m bench --only dispatch,intake --quick
    python -m bench --render             # RESULTS.md from the parts saved in bench/results/
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench import procstat

HERE = Path(__file__).parent
PARTS = ("codec", "dispatch", "peers", "cpu", "pinned", "intake", "latency", "scale", "footprint", "multihost",
         "quirks", "smpp")


def run_part(name: str, quick: bool) -> dict[str, Any]:
    if name == "codec":
        from bench import codec

        return codec.run(1.0 if quick else 5.0)
    if name == "dispatch":
        from bench import dispatch

        if quick:
            return asyncio.run(dispatch.run([1], [0.05], 1.0, 1))
        return asyncio.run(dispatch.run([1, 4, 16], [0.5, 3.0], 20.0, 3))
    if name == "peers":
        from bench import peers

        if quick:
            return peers.run([1], [0.05], 3, 1)
        return peers.run([1, 4, 8], [1.0, 3.0], 5, 3)
    if name == "quirks":
        from bench import quirks

        return asyncio.run(quirks.run(5, 0.02) if quick else quirks.run(120, 0.1))
    if name == "multihost":
        from bench import multihost

        if quick:
            return asyncio.run(multihost.run([1], 1, 0.05, 3))
        return asyncio.run(multihost.run([1, 2, 3], 2, 0.2, 50))
    if name in ("cpu", "pinned"):
        from bench import cpu

        return cpu.run(name, quick, progress=lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True))
    if name == "smpp":
        from bench import smpp

        if quick:
            return asyncio.run(smpp.run(runs=1, seconds=1.0, receipts=5))
        return asyncio.run(smpp.run(runs=3, seconds=10.0, receipts=200))
    from bench import gateway

    return asyncio.run(gateway.run(name, quick=quick))


def markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    from bench import codec, dispatch

    out = [
        "# gsmgw benchmark results",
        "",
        f"- date: {meta['date']}",
        f"- machine: {meta['cpus']} CPUs, {meta['cpu']}, Python {meta['python']}"
        + (f", kernel {meta['kernel']}" if meta.get("kernel") else ""),
        f"- command: `{meta['command']}`",
        "- where a median is given, min and max follow in brackets; the machine is shared (2 cores, other jobs "
        "running), so every part names its own command, date and load average (1, 5, 15 min) before and after",
        "- regenerate: `python -m bench --render` (this file from the parts saved in bench/results/), or run "
        "parts again with `python -m bench --only PART[,PART]` (each part's command is under its heading)",
        "",
    ]
    parts_meta = meta.get("parts", {})

    def provenance(name: str) -> list[str]:
        pm = parts_meta.get(name)
        if not pm:
            return []
        lb, la = pm.get("load_before"), pm.get("load_after")
        load = (f"; load average before {' '.join(f'{x:.2f}' for x in lb)}, after {' '.join(f'{x:.2f}' for x in la)}"
                if lb and la else "")
        commit = f" at commit {pm['commit']}" if pm.get("commit") else ""
        return [f"_Measured {pm['date']}{commit} with `{pm['command']}`, {pm.get('cpus')} CPUs ({pm.get('cpu')}), "
                f"kernel {pm.get('kernel', '?')}, Python {pm.get('python')}{load}._", ""]
    if "dispatch" in results:
        out += ["## Modem utilisation (gsmgw)", "", dispatch.to_markdown(results["dispatch"]), ""]
    if "peers" in results:
        from bench import peers

        out += ["## Side by side with gammu-smsd, smstools3 and Kannel", "", *provenance("peers"),
                peers.to_markdown(results["peers"]), ""]
    if "cpu" in results:
        from bench import cpu

        out += ["## CPU per sent message, idle CPU and memory (gsmgw and the peers, from /proc)", "",
                *provenance("cpu"), cpu.cpu_markdown(results["cpu"]), ""]
    if "pinned" in results:
        from bench import cpu

        out += ["## Utilisation with the gateway pinned to one core", "", *provenance("pinned"),
                cpu.pinned_markdown(results["pinned"]), ""]
    if "intake" in results:
        from bench import gateway

        out += ["## API intake (SQLite, durable commits)", "", *provenance("intake"),
                gateway.intake_markdown(results["intake"]), ""]
    if "latency" in results:
        r = results["latency"]
        out += ["## Dispatch latency (HTTP reply → AT+CMGS, idle modem)", "",
                f"{r['messages']} messages: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms "
                "(targets: p50 ≤ 5 ms, p99 ≤ 20 ms)", ""]
    if "scale" in results:
        r = results["scale"]
        out += ["## Scale of the queue", "", "| queued | dispatch/s | gap p50 ms | gap p99 ms | first send after "
                "restart (s) | fill time (s) |", "|---:|---:|---:|---:|---:|---:|"]
        for row in r["rows"]:
            out.append(f"| {row['queued']:,} | {row['dispatch_per_s']} | {row['gap_p50_ms']} | {row['gap_p99_ms']} "
                       f"| {row['first_send_after_restart_s']} | {row['fill_s']} |")
        if "rate_ratio_large_over_small" in r:
            out.append(f"\nDispatch rate, largest over smallest queue: {r['rate_ratio_large_over_small']} "
                       "(target: within 10%); first send after a restart: target ≤ 5 s.")
        out.append("")
    if "footprint" in results:
        r = results["footprint"]
        out += ["## Footprint", "",
                f"{r['modems']} emulated modems: resident memory idle {r['idle_rss_mb']} MB, peak under load "
                f"{r['load_peak_rss_mb']} MB (target ≤ 80 MB); CPU {r['cpu_ms_per_message']} ms per sent message.",
                ""]
    if "multihost" in results:
        from bench import multihost

        out += ["## Several hosts, one PostgreSQL queue", "", multihost.to_markdown(results["multihost"]), ""]
    if "quirks" in results:
        from bench import quirks

        out += ["## Inbound when the first read fails (+CMS ERROR: 321 after +CMTI)", "",
                quirks.to_markdown(results["quirks"]), ""]
    if "smpp" in results:
        from bench import smpp

        out += ["## SMPP server (submit_sm, receipts)", "", smpp.to_markdown(results["smpp"]), ""]
    if "codec" in results:
        out += ["## PDU codec beside python-gammu and python-gsmmodem-new", "", codec.to_markdown(results["codec"]), ""]
    return "\n".join(out)


def _git_commit() -> str | None:
    """The commit measured (gsmgw's code as checked out), or None outside a git checkout."""
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def render(results_dir: Path) -> str | None:
    """The report of every part saved in ``results_dir`` (None if there is none)."""
    results, metas = {}, []
    for name in PARTS:
        path = results_dir / f"{name}.json"
        if path.exists():
            saved = json.loads(path.read_text())
            results[name] = saved["result"]
            metas.append(saved["meta"])
    if not results:
        return None
    meta = dict(metas[-1])
    meta["parts"] = {name: m for name, m in zip(results, metas, strict=True)}
    # Parts may come from different machines: name every one, not only the last.
    meta["cpu"] = "; ".join(sorted({m["cpu"] for m in metas}))
    meta["date"] = ", ".join(sorted({m["date"] for m in metas}))
    meta["command"] = "; ".join(sorted({m["command"] for m in metas}))
    return markdown(results, meta)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help=f"comma list of parts ({', '.join(PARTS)})")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks that each benchmark runs")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="Markdown report (default bench/RESULTS.md)")
    ap.add_argument("--render", action="store_true",
                    help="run nothing: rebuild the report from the parts saved in the results directory")
    ap.add_argument("--results-dir", type=Path, default=HERE / "results",
                    help="where each part's JSON is kept (default bench/results; e.g. bench/results/before)")
    args = ap.parse_args(argv)
    results_dir = args.results_dir
    if args.render:
        report = render(results_dir)
        if report is None:
            ap.error(f"no saved results in {results_dir}")
        args.out.write_text(report + "\n")
        print(report)
        return 0
    parts = [p.strip() for p in args.only.split(",")] if args.only else list(PARTS)
    unknown = set(parts) - set(PARTS)
    if unknown:
        ap.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), **procstat.machine(), "command": command, "parts": {}}
    results: dict[str, Any] = {}
    for name in parts:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        part_meta = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), **procstat.machine(),
                     "command": f"python -m bench --only {name}" + (" --quick" if args.quick else ""),
                     "commit": _git_commit(), "load_before": procstat.loadavg()}
        results[name] = run_part(name, args.quick)
        part_meta["load_after"] = procstat.loadavg()
        part_meta["seconds"] = round(time.perf_counter() - t0)
        meta["parts"][name] = part_meta
        print(f"[bench] {name} done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    report = markdown(results, meta)
    if not args.quick:
        # Each part's figures are kept; the report is rebuilt from every part saved, so a
        # run of some parts updates theirs and keeps the others' (it used to drop them).
        results_dir.mkdir(parents=True, exist_ok=True)
        for name, result in results.items():
            (results_dir / f"{name}.json").write_text(
                json.dumps({"meta": meta["parts"][name], "result": result}, indent=2, default=str))
        report = render(results_dir) or report
    args.out.write_text(report + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
