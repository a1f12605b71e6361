"""Modem utilisation side by side: gsmgw, gammu-smsd and smstools3 on the same emulated pool.

For each cell (K emulated modems, send latency L seconds) and each repeat, every
daemon gets a fresh ``gsmgw fake-modem`` process (K modems, latency L, status
reports after 0.05 s) and the same work: ``N`` queued messages per modem to
off-network numbers, each asking for a status report, all queued before the
daemon starts. The three daemons run one after the other within a repeat, so a
noisy neighbour hits them alike; the figures are medians over the repeats with
min and max.

Everything is measured from the modem side, the same way for all three: the
emulator's byte transcripts give the first ``AT+CMGS`` and the last ``+CMGS``
result, and messages per minute = submits accepted / that span. The ideal is
K·60/L. Ratios are gsmgw over the peer, paired by repeat.

- gsmgw: ``bench.dispatch.run_one`` (gateway in this process, emulator in its own);
- gammu-smsd: one process per modem (how gammu-smsd works), files backend, each
  with its own spool directories and its ``OUT*`` files written up front;
- smstools3 (``smsd``): one device per modem in one ``smsd.conf``, messages as
  files in its ``outgoing`` directory.

The peers' settings, and why, are in bench/PEERS.md.

    python -m bench.peers --modems 1,4,8 --latency-s 1,3 --messages-per-modem 20 --repeats 3 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.dispatch import _cpu_model
from bench.dispatch import run_one as gsmgw_run_one
from bench.transcripts import gaps_s, marks, pct, utilisation
from gsmgw.emulator import load_transcript

DAEMONS = ("gsmgw", "gammu-smsd", "smstools")
PEERS = ("gammu-smsd", "smstools")
REPORT_DELAY_S = 0.05  # as bench.dispatch: status reports come back quickly
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0

# gammu-smsd [smsd] settings, chosen for throughput (see bench/PEERS.md for why).
GAMMU_SMSD_SETTINGS: dict[str, str] = {
    "CommTimeout": "1",  # rescan an empty outbox after 1 s (default 30); the outbox is full up front anyway
    "SendTimeout": "{send_timeout_s}",  # wait for +CMGS at most L + 10 s (default 30)
    "LoopSleep": "0",  # no sleep between main-loop iterations (default 1 s)
    "ReceiveFrequency": "3600",  # do not poll for inbound SMS between sends (default 15 s)
    "StatusFrequency": "0",  # no battery/signal refresh (default 60 s)
    "CheckSecurity": "0",  # no AT+CPIN? per loop (default 1)
    "CheckBattery": "0",  # default 1
    "CheckSignal": "0",  # default 1
    "CheckNetwork": "0",  # no AT+CREG? per loop (default 1)
    "ResetFrequency": "0",  # no preventive resets (default 0)
    "MultipartTimeout": "600",  # default; only matters for inbound
    "DeliveryReport": "log",  # ask for a status report, as gsmgw does (default no)
    "DebugLevel": "0",
}

# smstools3 smsd.conf settings, global part and per modem (see bench/PEERS.md).
SMSTOOLS_GLOBAL: dict[str, str] = {
    "delaytime": "1",  # an idle modem process sleeps 1 s (default 10)
    "delaytime_mainprocess": "1",  # main process looks at outgoing every 1 s (default: delaytime)
    "sleeptime_mainprocess": "1",  # default
    "errorsleeptime": "1",  # after an ERROR answer (default 10)
    "trust_outgoing": "yes",  # files are created by rename: skip the spooling checks
    "spool_directory_order": "yes",  # take files in disk order, no priority/age sorting
    "receive_before_send": "no",
    "max_continuous_sending": "3600",  # never break a sending run to do other tasks (default 300 s)
    "status_signal_quality": "no",  # no AT+CSQ for the status file
    "status_include_counters": "no",
    "loglevel": "5",  # notice: one line per sent message, as an operator would run it
}
SMSTOOLS_MODEM: dict[str, str] = {
    "incoming": "yes",  # needed for status reports: smsd refuses report=yes on a modem with incoming=no
    "check_network": "0",  # no AT+CREG? before each send (default 1)
    "report": "yes",  # ask for a status report, as gsmgw does
    "baudrate": "115200",
    "send_delay": "0",  # write each command at once (default 0)
    "sentsleeptime": "0",  # no pause after a part is sent (default 0)
    "keep_open": "yes",  # default
}


class PeerUnavailable(RuntimeError):
    """The peer's binary is not installed."""


def gammu_smsd_binary() -> str | None:
    return shutil.which("gammu-smsd")


def smstools_binary() -> str | None:
    return shutil.which("smsd") or ("/usr/sbin/smsd" if Path("/usr/sbin/smsd").exists() else None)


def availability() -> dict[str, str | None]:
    """None when the daemon can run, else why not (with the Debian package that provides it)."""
    return {
        "gsmgw": None,
        "gammu-smsd": None if gammu_smsd_binary() else "gammu-smsd not installed (Debian package 'gammu-smsd')",
        "smstools": None if smstools_binary() else "smsd not installed (Debian package 'smstools')",
    }


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    m = re.search(r"[Vv]ersion:? *(\d+(?:\.\d+)+)", out.stdout + out.stderr)
    return m.group(1) if m else "unknown"


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        gsmgw_version = version("gsmgw")
    except PackageNotFoundError:
        gsmgw_version = "unknown"
    out = {"gsmgw": gsmgw_version}
    if gammu_smsd_binary():
        out["gammu-smsd"] = _version([gammu_smsd_binary() or "gammu-smsd", "--version"])
    if smstools_binary():
        out["smstools"] = _version([smstools_binary() or "smsd", "-V"])
    return out


# --------------------------------------------------------------------------- the work


def messages_for(k: int, per_modem: int) -> list[tuple[str, str]]:
    """(destination, text) for every message: the same numbers and texts gsmgw gets."""
    return [(f"+1555400{i:04d}", f"bench message {i}") for i in range(k * per_modem)]


# --------------------------------------------------------------------------- emulator


@contextlib.contextmanager
def emulator(k: int, latency_s: float, workdir: Path) -> Iterator[list[Path]]:
    """A ``gsmgw fake-modem`` process with K modems; yields the K port symlinks."""
    ports, transcripts = workdir / "ports", workdir / "transcripts"
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "fake-modem.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gsmgw", "fake-modem", "--count", str(k), "--dir", str(ports),
             "--latency-s", str(latency_s), "--report-delay-s", str(REPORT_DELAY_S),
             "--transcript-dir", str(transcripts)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        links = [ports / f"ttyGSM{i}" for i in range(k)]
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not all(p.exists() for p in links):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gsmgw fake-modem did not start (see {workdir / 'fake-modem.log'})")
            time.sleep(0.05)
        yield links
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, wait, then SIGKILL: only the process we started, by its PID."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


def _session_members(sid: int) -> list[int]:
    """PIDs in session ``sid`` (a daemon started with start_new_session: its forked children)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:  # fields after "(comm)": state ppid pgrp session ...
            pids.append(int(stat.parent.name))
    return pids


def _stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    """Stop a daemon we started in its own session, and any child it forked, by PID."""
    sid = proc.pid
    _stop(proc)
    for pid in _session_members(sid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while (left := _session_members(sid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _wait_for(done: Callable[[], bool], procs: Sequence[subprocess.Popen[bytes]], timeout_s: float,
              what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{what}: process {p.args[0]!r} exited with {p.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not finished after {timeout_s:.0f} s")
        time.sleep(0.05)


def _run_timeout_s(per_modem: int, latency_s: float) -> float:
    return 60.0 + 6.0 * per_modem * (latency_s + 0.5)


def _count(d: Path) -> int:
    return sum(1 for _ in d.iterdir())


# --------------------------------------------------------------------------- gammu-smsd


def gammu_smsdrc(device: Path, spool: Path, latency_s: float) -> str:
    smsd = {k: v.format(send_timeout_s=int(latency_s + 10)) for k, v in GAMMU_SMSD_SETTINGS.items()}
    lines = ["[gammu]", f"device = {device}", "connection = at115200", "", "[smsd]", "Service = files",
             f"LogFile = {spool / 'smsd.log'}",
             *(f"{name}Path = {spool / name.lower()}/" for name in ("Inbox", "Outbox", "SentSMS", "ErrorSMS")),
             *(f"{k} = {v}" for k, v in smsd.items())]
    return "\n".join(lines) + "\n"


def run_gammu_smsd(k: int, latency_s: float, per_modem: int, workdir: Path) -> Path:
    """One run; returns the transcript directory."""
    binary = gammu_smsd_binary()
    if binary is None:
        raise PeerUnavailable(availability()["gammu-smsd"])
    work = messages_for(k, per_modem)
    timeout_s = _run_timeout_s(per_modem, latency_s)
    with emulator(k, latency_s, workdir) as links:
        spools = []
        for i, link in enumerate(links):
            spool = workdir / f"gammu{i}"
            for name in ("inbox", "outbox", "sentsms", "errorsms"):
                (spool / name).mkdir(parents=True)
            (spool / "smsdrc").write_text(gammu_smsdrc(link, spool, latency_s))
            spools.append(spool)
        # Spread evenly, message j on modem j % K; OUT<priority>_<recipient>_<serial>.txtd
        # (files backend naming; "d" asks for a status report; same priority: name order).
        for j, (number, text) in enumerate(work):
            (spools[j % k] / "outbox" / f"OUTA_{number}_{j:05d}.txtd").write_text(text)
        procs: list[subprocess.Popen[bytes]] = []
        with contextlib.ExitStack() as logs:
            try:
                for spool in spools:
                    procs.append(subprocess.Popen(
                        # -X: gammu-smsd kills itself after that long even if we could not stop it.
                        [binary, "-c", str(spool / "smsdrc"), "-p", str(spool / "smsd.pid"),
                         "-X", str(int(timeout_s + 60))],
                        stdout=subprocess.DEVNULL, stderr=logs.enter_context(open(spool / "stderr.log", "wb")),
                        stdin=subprocess.DEVNULL, start_new_session=True,
                    ))
                _wait_for(lambda: sum(_count(s / "sentsms") + _count(s / "errorsms") for s in spools) >= len(work),
                          procs, timeout_s, "gammu-smsd")
            finally:
                for p in procs:
                    _stop_daemon(p)
        errors = sum(_count(s / "errorsms") for s in spools)
        if errors:
            raise RuntimeError(f"gammu-smsd: {errors} message(s) in errorsms (see {workdir})")
    return workdir / "transcripts"


# --------------------------------------------------------------------------- smstools


def smsd_conf(links: Sequence[Path], workdir: Path) -> str:
    names = [f"GSM{i + 1}" for i in range(len(links))]
    lines = [f"devices = {','.join(names)}"]
    lines += [f"{d} = {workdir / d}" for d in ("outgoing", "checked", "failed", "sent", "incoming")]
    lines += [f"logfile = {workdir / 'smsd.log'}", f"infofile = {workdir / 'smsd.running'}",
              f"pidfile = {workdir / 'smsd.pid'}"]
    lines += [f"{k} = {v}" for k, v in SMSTOOLS_GLOBAL.items()]
    for name, link in zip(names, links, strict=True):
        lines += ["", f"[{name}]", f"device = {link}", *(f"{k} = {v}" for k, v in SMSTOOLS_MODEM.items())]
    return "\n".join(lines) + "\n"


def run_smstools(k: int, latency_s: float, per_modem: int, workdir: Path) -> Path:
    binary = smstools_binary()
    if binary is None:
        raise PeerUnavailable(availability()["smstools"])
    work = messages_for(k, per_modem)
    timeout_s = _run_timeout_s(per_modem, latency_s)
    with emulator(k, latency_s, workdir) as links:
        for d in ("outgoing", "checked", "failed", "sent", "incoming", "tmp"):
            (workdir / d).mkdir()
        (workdir / "smsd.conf").write_text(smsd_conf(links, workdir))
        for j, (number, text) in enumerate(work):
            tmp = workdir / "tmp" / f"bench{j:05d}"
            # "Report: yes" asks for a status report (TP-SRR), as gsmgw and gammu-smsd do.
            tmp.write_text(f"To: {number.lstrip('+')}\nReport: yes\n\n{text}\n")
            tmp.rename(workdir / "outgoing" / tmp.name)  # trust_outgoing: files appear by rename
        with open(workdir / "stderr.log", "wb") as log:
            proc = subprocess.Popen(
                [binary, "-c", str(workdir / "smsd.conf"), "-t"],
                stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
            )
            try:
                _wait_for(lambda: _count(workdir / "sent") + _count(workdir / "failed") >= len(work),
                          [proc], timeout_s, "smsd")
            finally:
                _stop_daemon(proc)
        failed = _count(workdir / "failed")
        if failed:
            raise RuntimeError(f"smsd: {failed} message(s) failed (see {workdir})")
    return workdir / "transcripts"


# --------------------------------------------------------------------------- gsmgw


def run_gsmgw(k: int, latency_s: float, per_modem: int, workdir: Path) -> Path:
    # run_one queues k * round(seconds / latency_s) messages: seconds = per_modem * L.
    asyncio.run(gsmgw_run_one(k, latency_s, per_modem * latency_s, workdir, delivery_reports=True))
    return workdir / "transcripts"


RUNNERS: dict[str, Callable[[int, float, int, Path], Path]] = {
    "gsmgw": run_gsmgw, "gammu-smsd": run_gammu_smsd, "smstools": run_smstools,
}


# --------------------------------------------------------------------------- measurement


_PDU_RE = re.compile(rb"([0-9A-Fa-f]{20,})\x1a")


def _status_reports_requested(path: Path) -> int:
    """Submits whose TP-SRR bit is set (first octet after the SMSC field, bit 0x20)."""
    data = b"".join(e.data for e in load_transcript(path) if e.direction == "in")
    n = 0
    for m in _PDU_RE.finditer(data):
        if len(m.group(1)) % 2:
            continue
        pdu = bytes.fromhex(m.group(1).decode())
        first_octet = pdu[1 + pdu[0]] if len(pdu) > 1 + pdu[0] else 0
        n += bool(first_octet & 0x20)
    return n


def measure(transcripts: Path, k: int, latency_s: float) -> dict[str, Any]:
    """Throughput from the modem side: submits accepted / (last +CMGS result - first AT+CMGS)."""
    files = sorted(transcripts.glob("*"))
    per_modem = [marks(p) for p in files]
    all_marks = [m for mk in per_modem for m in mk]
    sent = sum(1 for _, kind in all_marks if kind == "result")
    if sent == 0:
        raise RuntimeError(f"no +CMGS result in {transcripts}")
    first_cmd = min(t for t, kind in all_marks if kind == "cmd")
    last_result = max(t for t, kind in all_marks if kind == "result")
    elapsed = last_result - first_cmd
    per_min = sent / elapsed * 60.0
    ideal = k * 60.0 / latency_s
    util = utilisation(per_modem, latency_s)
    gaps = gaps_s(per_modem)
    in_submit: list[float] = []  # AT+CMGS to its +CMGS result, less L: the daemon's own time inside a send
    for mk in per_modem:
        in_submit += [t2 - t1 - latency_s for (t1, a), (t2, b) in itertools.pairwise(sorted(mk))
                      if a == "cmd" and b == "result"]
    return {
        "sent": sent,
        "per_modem_sent": [sum(1 for _, kd in mk if kd == "result") for mk in per_modem],
        "status_reports_requested": sum(_status_reports_requested(p) for p in files),
        "elapsed_s": round(elapsed, 3),
        "per_minute": round(per_min, 1),
        "fraction_of_ideal": round(per_min / ideal, 4),
        "utilisation": None if math.isnan(util) else round(util, 4),
        "gap_p50_ms": round(pct(gaps, 0.50) * 1000, 1) if gaps else None,
        "gap_p99_ms": round(pct(gaps, 0.99) * 1000, 1) if gaps else None,
        "submit_overhead_p50_ms": round(pct(in_submit, 0.50) * 1000, 1) if in_submit else None,
    }


def run_cell(daemon: str, k: int, latency_s: float, per_modem: int, workdir: Path) -> dict[str, Any]:
    """One run of one daemon on a fresh emulated pool; the measurement, or the error."""
    t0 = time.monotonic()
    try:
        transcripts = RUNNERS[daemon](k, latency_s, per_modem, workdir)
        result = measure(transcripts, k, latency_s)
        if result["sent"] != k * per_modem:
            raise RuntimeError(f"{result['sent']} submits accepted, {k * per_modem} queued")
    except PeerUnavailable:
        raise
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "wall_s": round(time.monotonic() - t0, 1)}
    return {**result, "wall_s": round(time.monotonic() - t0, 1)}


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4)}


def run(modems: Sequence[int], latencies: Sequence[float], messages_per_modem: int, repeats: int,
        daemons: Sequence[str] = DAEMONS, keep_dir: Path | None = None,
        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every (K, L) cell, ``repeats`` times each daemon in turn; medians with min and max."""
    if messages_per_modem < 2:
        raise ValueError("messages_per_modem must be at least 2 (bench.dispatch queues at least 2 per modem)")
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    unknown = set(daemons) - set(DAEMONS)
    if unknown:
        raise ValueError(f"unknown daemon(s) {sorted(unknown)}; choose from {', '.join(DAEMONS)}")
    missing = {d: why for d, why in availability().items() if why and d in daemons}
    active = [d for d in daemons if d not in missing]
    cells = []
    with tempfile.TemporaryDirectory(prefix="gsmgw-peers-") as tmp:
        root = keep_dir or Path(tmp)
        for k in modems:
            for lat in latencies:
                runs: dict[str, list[dict[str, Any]]] = {d: [] for d in active}
                for r in range(repeats):
                    for d in active:
                        res = run_cell(d, k, lat, messages_per_modem, root / f"k{k}-l{lat}-r{r}-{d}")
                        runs[d].append(res)
                        if progress:
                            progress(f"K={k} L={lat} repeat {r + 1}/{repeats} {d}: "
                                     + (res["error"] if "error" in res else
                                        f"{res['per_minute']}/min ({res['fraction_of_ideal']:.3f})"))
                cells.append(_cell_summary(k, lat, messages_per_modem, runs))
    return {
        "benchmark": "peers",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"cpus": os.cpu_count() or 0, "cpu": _cpu_model(), "python": platform.python_version()},
        "versions": versions(),
        "messages_per_modem": messages_per_modem,
        "repeats": repeats,
        "report_delay_s": REPORT_DELAY_S,
        "unavailable": missing,
        "settings": {"gammu-smsd": GAMMU_SMSD_SETTINGS, "smstools_global": SMSTOOLS_GLOBAL,
                     "smstools_modem": SMSTOOLS_MODEM},
        "cells": cells,
    }


def _cell_summary(k: int, lat: float, per_modem: int, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for d, rs in runs.items():
        ok = [r for r in rs if "error" not in r]
        results[d] = {
            "per_minute": _summary([r["per_minute"] for r in ok]),
            "fraction_of_ideal": _summary([r["fraction_of_ideal"] for r in ok]),
            "utilisation": _summary([r["utilisation"] for r in ok if r["utilisation"] is not None]),
            "gap_p50_ms": _summary([r["gap_p50_ms"] for r in ok if r["gap_p50_ms"] is not None]),
            "submit_overhead_p50_ms": _summary([r["submit_overhead_p50_ms"] for r in ok
                                                if r["submit_overhead_p50_ms"] is not None]),
            "errors": [r["error"] for r in rs if "error" in r],
            "runs": rs,
        }
    ratios: dict[str, Any] = {}
    if "gsmgw" in runs:
        for peer in (d for d in runs if d != "gsmgw"):
            paired = [g["per_minute"] / p["per_minute"] for g, p in zip(runs["gsmgw"], runs[peer], strict=True)
                      if "error" not in g and "error" not in p and p["per_minute"] > 0]
            ratios[peer] = _summary(paired)
    return {"modems": k, "latency_s": lat, "messages": k * per_modem, "ideal_per_minute": round(k * 60.0 / lat, 1),
            "results": results, "gsmgw_over": ratios}


# --------------------------------------------------------------------------- output


def _fmt(s: dict[str, float] | None, digits: int = 1) -> str:
    if s is None:
        return "–"
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}–{s['max']:.{digits}f}]"


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    daemons = [d for d in DAEMONS if any(d in c["results"] for c in report["cells"])]
    peers = [d for d in daemons if d != "gsmgw"]
    lines = [
        f"Modem utilisation side by side, {report['date']}, {m['cpus']} CPUs ({m['cpu']}); "
        f"{report['messages_per_modem']} messages per modem, each asking for a status report; "
        f"median [min–max] of {report['repeats']} run(s) per daemon; fraction of the ideal K·60/L in brackets.",
        "",
        "| K | L (s) | ideal/min | " + " | ".join(f"{d} msgs/min" for d in daemons)
        + "".join(f" | gsmgw ÷ {p}" for p in peers) + " |",
        "|---:|---:|---:|" + "---|" * (len(daemons) + len(peers)),
    ]
    for c in report["cells"]:
        row = [str(c["modems"]), f"{c['latency_s']:g}", f"{c['ideal_per_minute']:g}"]
        for d in daemons:
            r = c["results"].get(d)
            if r is None or r["per_minute"] is None:
                row.append("failed" if r and r["errors"] else "–")
            else:
                row.append(f"{_fmt(r['per_minute'])} ({r['fraction_of_ideal']['median']:.2f})")
        row += [_fmt(c["gsmgw_over"].get(p), 2) for p in peers]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Where the time goes, per modem (medians): utilisation = L × sends over the modem's own first "
        "AT+CMGS → last +CMGS result (start-up skew left out); gap = from a +CMGS result to the next "
        "AT+CMGS; in-send = from AT+CMGS to its result, less L (prompt handling and the daemon's pauses).",
        "",
        "| K | L (s) | " + " | ".join(f"{d} utilisation / gap ms / in-send ms" for d in daemons) + " |",
        "|---:|---:|" + "---:|" * len(daemons),
    ]
    for c in report["cells"]:
        row = [str(c["modems"]), f"{c['latency_s']:g}"]
        for d in daemons:
            r = c["results"].get(d) or {}
            u, g, o = r.get("utilisation"), r.get("gap_p50_ms"), r.get("submit_overhead_p50_ms")
            row.append(" / ".join([f"{u['median']:.3f}" if u else "–", f"{g['median']:.0f}" if g else "–",
                                   f"{o['median']:.0f}" if o else "–"]))
        lines.append("| " + " | ".join(row) + " |")
    errors = [f"- K={c['modems']} L={c['latency_s']:g} {d}: {e}"
              for c in report["cells"] for d, r in c["results"].items() for e in r["errors"]]
    if report.get("unavailable"):
        lines += ["", *(f"- {d} not run: {why}" for d, why in report["unavailable"].items())]
    if errors:
        lines += ["", "Failed runs (left out of the medians):", *errors]
    v = report.get("versions", {})
    lines += ["", "Versions: " + ", ".join(f"{d} {v[d]}" for d in daemons if d in v)
              + ". Settings: bench/PEERS.md."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modems", default="1,4,8", help="comma list of K (default 1,4,8)")
    ap.add_argument("--latency-s", default="1,3", help="comma list of L in seconds (default 1,3)")
    ap.add_argument("--messages-per-modem", type=int, default=20, help="queued messages per modem (default 20)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per cell and daemon; the median is reported")
    ap.add_argument("--daemons", default=",".join(DAEMONS), help=f"comma list (default {','.join(DAEMONS)})")
    ap.add_argument("--json", type=Path, help="write the JSON report here")
    ap.add_argument("--keep-dir", type=Path, help="keep every run's spool, logs and transcripts here")
    ap.add_argument("-q", "--quiet", action="store_true", help="no per-run progress on stderr")
    args = ap.parse_args(argv)
    try:
        report = run([int(x) for x in args.modems.split(",")], [float(x) for x in args.latency_s.split(",")],
                     args.messages_per_modem, args.repeats, [d.strip() for d in args.daemons.split(",")],
                     keep_dir=args.keep_dir,
                     progress=None if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True)))
    except ValueError as exc:
        ap.error(str(exc))
    print(to_markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
