"""CPU and memory of gsmgw and of every peer daemon, from /proc; and gsmgw's utilisation pinned to one core.

Three measures per daemon (gsmgw, gammu-smsd, smstools3, Kannel; the same runners,
emulator and transcript parsing as bench/peers.py), each repeated R times:

- **CPU per sent message**: user + system time of all the daemon's processes
  (``/proc/<pid>/stat``) over the busy period (first ``AT+CMGS`` to last ``+CMGS``
  result on the emulator's wall clock), divided by the messages sent; K modems,
  latency L, N messages per modem, each asking for a status report.
- **Idle CPU**: the same daemon on 16 modems with an empty queue; CPU seconds over
  20 s, after 8 s for start-up.
- **Memory at 64 modems**: peak resident (``VmHWM``, summed over the daemon's
  processes), ``VmRSS`` and ``Pss`` (shared pages split) during a short busy run
  on 64 modems.

``pinned``: gsmgw (``gsmgw run``) under ``taskset -c 0`` and the emulator under
``taskset -c 1``, utilisation at K = 16, L = 0.2 s and K = 64, L = 1 s.

    python -m bench.cpu cpu [--quick] [--json FILE]
    python -m bench.cpu pinned [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import peers, procstat

SIZES: dict[str, dict[str, Any]] = {
    "full": {"busy": (16, 0.5, 6), "idle": (16, 20.0, 8.0), "memory": (64, 0.5, 2), "repeats": 3,
             "pinned": [(16, 0.2, 50), (64, 1.0, 10)]},
    "quick": {"busy": (2, 0.05, 3), "idle": (2, 1.0, 2.0), "memory": (2, 0.05, 2), "repeats": 1,
              "pinned": [(2, 0.05, 3)]},
}


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_cpu(busy: tuple[int, float, int], idle: tuple[int, float, float], memory: tuple[int, float, int],
            repeats: int, daemons: Sequence[str] = peers.DAEMONS, progress: Callable[[str], None] | None = None,
            keep_dir: Path | None = None) -> dict[str, Any]:
    avail = peers.availability()
    active = [d for d in daemons if not avail[d]]
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {d: {"busy": [], "idle": [], "memory": []} for d in active}
    with tempfile.TemporaryDirectory(prefix="gsmgw-cpu-") as tmp:
        root = keep_dir or Path(tmp)
        for r in range(repeats):  # daemons back to back within a repeat: a noisy neighbour hits them alike
            for d in active:
                k, lat, n = busy
                res = peers.run_cell(d, k, lat, n, root / f"busy-r{r}-{d}")
                raw[d]["busy"].append(res)
                k, idle_s, settle_s = idle
                res_i = peers.idle_cell(d, k, idle_s, root / f"idle-r{r}-{d}", settle_s=settle_s)
                raw[d]["idle"].append(res_i)
                k, lat, n = memory
                res_m = peers.run_cell(d, k, lat, n, root / f"mem-r{r}-{d}")
                raw[d]["memory"].append(res_m)
                if progress:
                    progress(f"repeat {r + 1}/{repeats} {d}: "
                             f"busy {res.get('cpu_ms_per_message', res.get('error'))} ms/msg, "
                             f"idle {res_i.get('cpu_s', res_i.get('error'))} CPU-s, "
                             f"K={k} peak {(res_m.get('memory') or {}).get('hwm_mb', res_m.get('error'))} MB")
    rows = {}
    for d, runs in raw.items():
        ok_b = [x for x in runs["busy"] if "error" not in x]
        ok_i = [x for x in runs["idle"] if "error" not in x]
        ok_m = [x for x in runs["memory"] if "error" not in x]
        loads = [x[key][0] for rs in runs.values() for x in rs for key in ("load_before", "load_after")
                 if x.get(key)]
        rows[d] = {
            "cpu_ms_per_message": procstat.spread([x["cpu_ms_per_message"] for x in ok_b]),
            "busy_fraction_of_ideal": procstat.spread([x["fraction_of_ideal"] for x in ok_b]),
            "idle_cpu_s": procstat.spread([x["cpu_s"] for x in ok_i]),
            "idle_processes": procstat.spread([x["memory"].get("processes") for x in ok_i if x.get("memory")], 0),
            "memory_hwm_mb": procstat.spread([x["memory"]["hwm_mb"] for x in ok_m if x.get("memory")], 1),
            "memory_rss_mb": procstat.spread([x["memory"]["rss_mb"] for x in ok_m if x.get("memory")], 1),
            "memory_pss_mb": procstat.spread([x["memory"]["pss_mb"] for x in ok_m
                                              if x.get("memory") and x["memory"].get("pss_mb") is not None], 1),
            "memory_processes": procstat.spread([x["memory"]["processes"] for x in ok_m if x.get("memory")], 0),
            "load_1m": procstat.spread(loads, 2),
            "errors": [f"{kind}: {x['error']}" for kind, rs in runs.items() for x in rs if "error" in x],
            "runs": runs,
        }
    return {"benchmark": "cpu", "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": procstat.machine(),
            "versions": peers.versions(), "busy": {"modems": busy[0], "latency_s": busy[1],
                                                    "messages_per_modem": busy[2]},
            "idle": {"modems": idle[0], "seconds": idle[1], "settle_s": idle[2]},
            "memory": {"modems": memory[0], "latency_s": memory[1], "messages_per_modem": memory[2]},
            "idle_overrides": {d: o for d, o in peers.IDLE_OVERRIDES.items() if d in active},
            "repeats": repeats, "unavailable": {d: why for d, why in avail.items() if why and d in daemons},
            "daemons": rows}


def cpu_markdown(rep: dict[str, Any]) -> str:
    b, i, m = rep["busy"], rep["idle"], rep["memory"]
    f = procstat.fmt_spread
    lines = [
        f"{rep['date']}; median [min–max] of {rep['repeats']} run(s) per daemon, the daemons back to back "
        "within each repeat. CPU = user + system time of all the daemon's processes from `/proc/<pid>/stat` "
        "(10 ms ticks).",
        "",
        f"- CPU per sent message: K = {b['modems']}, L = {b['latency_s']:g} s, {b['messages_per_modem']} "
        "messages per modem (each asking for a status report), CPU over the busy period (first AT+CMGS → last "
        "+CMGS result) ÷ messages sent;",
        f"- idle: {i['modems']} modems, empty queue, CPU-s over {i['seconds']:g} s after {i['settle_s']:g} s "
        "of start-up" + ("; " + ", ".join(f"{d} with " + ", ".join(f"{k} = {v}" for k, v in o.items())
                                          for d, o in rep.get("idle_overrides", {}).items())
                         + " (its default; the busy runs' 0 spins on an empty outbox)"
                         if rep.get("idle_overrides") else "") + ";",
        f"- memory: {m['modems']} modems during a busy run ({m['messages_per_modem']} messages per modem, "
        f"L = {m['latency_s']:g} s): peak resident VmHWM, VmRSS at the peak, and Pss (shared pages split), "
        "summed over the daemon's processes.",
        "",
        f"| daemon | CPU ms / sent msg | busy run: fraction of K·60/L | idle CPU-s / {i['seconds']:g} s "
        f"| processes at {m['modems']} modems | peak RSS (VmHWM) MB | VmRSS MB | Pss MB | load (1 min) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for d, r in rep["daemons"].items():
        procs = r["memory_processes"]
        lines.append(
            f"| {d} | {f(r['cpu_ms_per_message'], 2)} | {f(r['busy_fraction_of_ideal'], 2)} "
            f"| {f(r['idle_cpu_s'], 2)} | "
            f"{int(procs['median']) if procs else '–'} | {f(r['memory_hwm_mb'], 1)} | {f(r['memory_rss_mb'], 1)} "
            f"| {f(r['memory_pss_mb'], 1)} | {f(r['load_1m'], 1)} |")
    targets = "Targets for gsmgw (#17): CPU ≤ 2 ms per sent message, idle ≤ 0.1 CPU-s per 20 s at 16 modems, "
    targets += "RSS ≤ 80 MB at 64 modems."
    lines += ["", targets]
    errors = [f"- {d}: {e}" for d, r in rep["daemons"].items() for e in r["errors"]]
    if rep.get("unavailable"):
        lines += ["", *(f"- {d} not run: {why}" for d, why in rep["unavailable"].items())]
    if errors:
        lines += ["", "Failed runs (left out):", *errors]
    v = rep.get("versions", {})
    lines += ["", "Versions: " + ", ".join(f"{d} {v[d]}" for d in rep["daemons"] if d in v)
              + ". Settings: bench/PEERS.md."]
    return "\n".join(lines)


def run_pinned(cells: Sequence[tuple[int, float, int]], repeats: int,
               progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """gsmgw on CPU 0, the emulator on CPU 1 (taskset), each cell ``repeats`` times."""
    reports = [peers.run([k], [lat], n, repeats, daemons=["gsmgw"], progress=progress, pin=(0, 1))
               for k, lat, n in cells]
    return {"benchmark": "pinned", "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": procstat.machine(),
            "pinned": {"daemon_cpu": 0, "emulator_cpu": 1}, "repeats": repeats,
            "cells": [c for rep in reports for c in rep["cells"]]}


def pinned_markdown(rep: dict[str, Any]) -> str:
    f = procstat.fmt_spread
    lines = [
        f"{rep['date']}; `gsmgw run` under `taskset -c {rep['pinned']['daemon_cpu']}`, `gsmgw fake-modem` under "
        f"`taskset -c {rep['pinned']['emulator_cpu']}`; median [min–max] of {rep['repeats']} run(s). Fraction = "
        "messages per minute (first AT+CMGS → last +CMGS result) ÷ K·60/L; utilisation per modem as in the "
        "peers table.",
        "",
        "| K | L (s) | messages | fraction of K·60/L | per-modem utilisation | gap p50 ms | CPU ms / msg "
        "| peak RSS MB | load (1 min) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in rep["cells"]:
        r = c["results"]["gsmgw"]
        lines.append(f"| {c['modems']} | {c['latency_s']:g} | {c['messages']} | {f(r['fraction_of_ideal'], 3)} "
                     f"| {f(r['utilisation'], 3)} | {f(r['gap_p50_ms'], 1)} | {f(r['cpu_ms_per_message'], 2)} "
                     f"| {f(r['hwm_mb'], 1)} | {f(r['load_1m'], 1)} |")
        lines += [f"| | | failed: {e} | | | | | | |" for e in r["errors"]]
    lines += ["", "Target (#17): ≥ 0.97 of K·60/L in both cells."]
    return "\n".join(lines)


def run(which: str, quick: bool = False, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    s = SIZES["quick" if quick else "full"]
    if which == "cpu":
        return run_cpu(s["busy"], s["idle"], s["memory"], s["repeats"], progress=progress)
    if which == "pinned":
        return run_pinned(s["pinned"], s["repeats"], progress=progress)
    raise ValueError(which)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", choices=("cpu", "pinned"))
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one run (smoke test)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    rep = run(args.which, args.quick, progress=_progress)
    print(cpu_markdown(rep) if args.which == "cpu" else pinned_markdown(rep))
    if args.json:
        args.json.write_text(json.dumps(rep, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
