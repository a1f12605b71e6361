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
import concurrent.futures
import contextlib
import http.server
import itertools
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench import procstat
from bench.transcripts import gaps_s, marks, pct, utilisation, walls
from gsmgw.emulator import load_transcript

DAEMONS = ("gsmgw", "gammu-smsd", "smstools", "kannel")
PEERS = ("gammu-smsd", "smstools", "kannel")
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


def kannel_binaries() -> tuple[str, str] | None:
    found = [shutil.which(b) or (f"/usr/sbin/{b}" if Path(f"/usr/sbin/{b}").exists() else None)
             for b in ("bearerbox", "smsbox")]
    return (found[0], found[1]) if found[0] and found[1] else None


def availability() -> dict[str, str | None]:
    """None when the daemon can run, else why not (with the Debian package that provides it)."""
    return {
        "gsmgw": None,
        "gammu-smsd": None if gammu_smsd_binary() else "gammu-smsd not installed (Debian package 'gammu-smsd')",
        "smstools": None if smstools_binary() else "smsd not installed (Debian package 'smstools')",
        "kannel": None if kannel_binaries() else "bearerbox/smsbox not installed (Debian package 'kannel')",
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
    if kb := kannel_binaries():
        out["kannel"] = _kannel_version(kb[0])
    return out


def _kannel_version(bearerbox: str) -> str:
    """bearerbox has no --version; Debian's package version, else its banner."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "kannel"], capture_output=True, text=True,
                             timeout=10, stdin=subprocess.DEVNULL)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().split("-")[0]
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "unknown"


# --------------------------------------------------------------------------- the work


def messages_for(k: int, per_modem: int) -> list[tuple[str, str]]:
    """(destination, text) for every message: the same numbers and texts gsmgw gets."""
    return [(f"+1555400{i:04d}", f"bench message {i}") for i in range(k * per_modem)]


# --------------------------------------------------------------------------- emulator


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    """``taskset -c CPU argv`` when a CPU is given (and taskset exists), else argv."""
    if cpu is None:
        return argv
    taskset = shutil.which("taskset")
    if taskset is None:
        raise RuntimeError("taskset not found (Debian package 'util-linux')")
    return [taskset, "-c", str(cpu), *argv]


@contextlib.contextmanager
def emulator(k: int, latency_s: float, workdir: Path, cpu: int | None = None) -> Iterator[list[Path]]:
    """A ``gsmgw fake-modem`` process with K modems (pinned to ``cpu`` if given); yields the K port symlinks."""
    ports, transcripts = workdir / "ports", workdir / "transcripts"
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "fake-modem.log", "wb") as log:
        proc = subprocess.Popen(
            pinned([sys.executable, "-m", "gsmgw", "fake-modem", "--count", str(k), "--dir", str(ports),
             "--latency-s", str(latency_s), "--report-delay-s", str(REPORT_DELAY_S),
             "--transcript-dir", str(transcripts)], cpu),
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


_session_members = procstat.session_members


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


def _hold(seconds: float, procs: Sequence[subprocess.Popen[bytes]], what: str) -> None:
    """Sleep ``seconds``, failing if one of the processes exits meanwhile."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{what}: process {p.args[0]!r} exited with {p.returncode}")
        time.sleep(min(0.1, left))


class Probe:
    """How a run waits while its daemon runs, sampling the daemon's CPU and memory from /proc.

    With ``idle_s`` None (a busy run) it waits until the work is done; the CPU over the busy
    period is taken afterwards from the samples. With ``idle_s`` the queue is empty: it waits
    ``settle_s`` for start-up (init, probes), then holds ``idle_s`` and keeps that window.
    """

    def __init__(self, idle_s: float | None = None, settle_s: float = 8.0, interval_s: float = 0.2) -> None:
        self.idle_s, self.settle_s, self.interval_s = idle_s, settle_s, interval_s
        self.sampler: procstat.Sampler | None = None
        self.window: tuple[float, float] | None = None

    def run(self, pids: Callable[[], Sequence[int]], done: Callable[[], bool],
            procs: Sequence[subprocess.Popen[bytes]], timeout_s: float, what: str,
            start: Callable[[], None] | None = None) -> None:
        self.sampler = procstat.Sampler(pids, self.interval_s)
        with self.sampler:
            if start:
                start()
            if self.idle_s is None:
                _wait_for(done, procs, timeout_s, what)
            else:
                _hold(self.settle_s, procs, what)
                t0 = time.time()
                _hold(self.idle_s, procs, what)
                self.window = (t0, time.time())

    def idle_cpu_s(self) -> float:
        assert self.sampler is not None and self.window is not None
        return self.sampler.between(*self.window)


def _cached_members(sid: int, every_s: float = 1.0) -> Callable[[], list[int]]:
    """The session's PIDs, re-scanned from /proc at most every ``every_s`` (a scan is not free)."""
    state: dict[str, Any] = {"t": -1e9, "pids": [sid]}

    def pids() -> list[int]:
        now = time.monotonic()
        if now - state["t"] > every_s:
            state["pids"], state["t"] = procstat.session_members(sid) or [sid], now
        return list(state["pids"])

    return pids


_RESULT_HEX = b"+CMGS:".hex().encode()


def results_so_far(transcripts: Path) -> int:
    """+CMGS results in the transcripts so far (a cheap count for "done"; measure() parses)."""
    n = 0
    for path in transcripts.glob("*"):
        with contextlib.suppress(OSError):
            n += path.read_bytes().count(_RESULT_HEX)
    return n


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


def run_gammu_smsd(k: int, latency_s: float, per_modem: int, workdir: Path, probe: Probe | None = None,
                   pin: tuple[int, int] | None = None) -> Path:
    """One run; returns the transcript directory."""
    binary = gammu_smsd_binary()
    if binary is None:
        raise PeerUnavailable(availability()["gammu-smsd"])
    work = messages_for(k, per_modem)
    timeout_s = _run_timeout_s(per_modem, latency_s)
    with emulator(k, latency_s, workdir, pin[1] if pin else None) as links:
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
                        pinned([binary, "-c", str(spool / "smsdrc"), "-p", str(spool / "smsd.pid"),
                                "-X", str(int(timeout_s + 60))], pin[0] if pin else None),
                        stdout=subprocess.DEVNULL, stderr=logs.enter_context(open(spool / "stderr.log", "wb")),
                        stdin=subprocess.DEVNULL, start_new_session=True,
                    ))
                (probe or Probe()).run(
                    lambda: [p.pid for p in procs],  # one process per modem, none forks
                    lambda: sum(_count(s / "sentsms") + _count(s / "errorsms") for s in spools) >= len(work),
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


def run_smstools(k: int, latency_s: float, per_modem: int, workdir: Path, probe: Probe | None = None,
                 pin: tuple[int, int] | None = None) -> Path:
    binary = smstools_binary()
    if binary is None:
        raise PeerUnavailable(availability()["smstools"])
    work = messages_for(k, per_modem)
    timeout_s = _run_timeout_s(per_modem, latency_s)
    with emulator(k, latency_s, workdir, pin[1] if pin else None) as links:
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
                pinned([binary, "-c", str(workdir / "smsd.conf"), "-t"], pin[0] if pin else None),
                stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
            )
            try:
                (probe or Probe()).run(
                    _cached_members(proc.pid),  # the main process and the modem processes it forks
                    lambda: _count(workdir / "sent") + _count(workdir / "failed") >= len(work),
                    [proc], timeout_s, "smsd")
            finally:
                _stop_daemon(proc)
        failed = _count(workdir / "failed")
        if failed:
            raise RuntimeError(f"smsd: {failed} message(s) failed (see {workdir})")
    return workdir / "transcripts"


# --------------------------------------------------------------------------- gsmgw


def gsmgw_config(links: Sequence[Path], db: Path, port: int, latency_s: float) -> str:
    modems = "".join(f'\n[[modem]]\nid = "sim{i + 1}"\nport = "{p}"\nsend_timeout_s = {latency_s + 10}\n'
                     for i, p in enumerate(links))
    return (f'[api]\nlisten = "127.0.0.1:{port}"\n[store]\nurl = "sqlite:///{db}"\n'
            f'[dispatch]\npoll_interval_s = 1.0\nsticky_s = 0\ndelivery_reports = true\n'
            f'[logging]\nlevel = "warning"\n{modems}')


def fill_gsmgw(db: Path, work: Sequence[tuple[str, str]]) -> None:
    """Queue the work in a fresh store before the daemon starts (setup: no fsync per batch)."""
    from gsmgw.store import NewMessage, Store

    store = Store(f"sqlite:///{db}", sqlite_synchronous="OFF")
    try:
        store.migrate()
        batch = [NewMessage(number, text, "gsm7", 1, delivery_report=True) for number, text in work]
        for i in range(0, len(batch), 500):
            store.messages.enqueue(batch[i:i + 500])
    finally:
        store.close()


def run_gsmgw(k: int, latency_s: float, per_modem: int, workdir: Path, probe: Probe | None = None,
              pin: tuple[int, int] | None = None) -> Path:
    """``gsmgw run`` as its own process (like the peers), SQLite store, queue filled before it starts."""
    from bench.gateway import _free_port

    work = messages_for(k, per_modem)
    timeout_s = _run_timeout_s(per_modem, latency_s)
    with emulator(k, latency_s, workdir, pin[1] if pin else None) as links:
        db = workdir / "gsmgw.db"
        if work:
            fill_gsmgw(db, work)
        cfg = workdir / "gsmgw.toml"
        cfg.write_text(gsmgw_config(links, db, _free_port(), latency_s))
        with open(workdir / "gsmgw.log", "wb") as log:
            proc = subprocess.Popen(
                pinned([sys.executable, "-m", "gsmgw", "run", "--config", str(cfg)], pin[0] if pin else None),
                stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
            )
            try:
                (probe or Probe()).run(lambda: [proc.pid],
                                       lambda: results_so_far(workdir / "transcripts") >= len(work),
                                       [proc], timeout_s, "gsmgw")
            finally:
                _stop_daemon(proc)
    return workdir / "transcripts"


# --------------------------------------------------------------------------- Kannel


KANNEL_SMSC: dict[str, str] = {
    "smsc": "at",
    "modemtype": "bench",  # the [modems] group below: no auto-detection round trips
    "speed": "115200",
    "sim-buffering": "false",  # do not poll the SIM for stored messages
}
KANNEL_MODEM: dict[str, str] = {
    "id": "bench",
    "name": '"gsmgw fake-modem (SIM800 personality)"',
    "detect-string": '"SIMCOM"',
    "speed": "115200",
}


def kannel_conf(links: Sequence[Path], workdir: Path, ports: dict[str, int], *, log_level: int = 1) -> str:
    """bearerbox + smsbox: one ``smsc = at`` group per modem, file store, DLRs in memory."""
    lines = [
        "group = core", f"admin-port = {ports['admin']}", "admin-password = adminpw",
        "admin-interface = 127.0.0.1", f"smsbox-port = {ports['box']}", "smsbox-interface = 127.0.0.1",
        "box-allow-ip = 127.0.0.1", f'log-file = "{workdir / "bearerbox.log"}"', f"log-level = {log_level}",
        f'access-log = "{workdir / "access.log"}"',
        # Kannel's file store: appended and rewritten, never fsync'd (see bench/PEERS.md).
        "store-type = file", f'store-location = "{workdir / "kannel.store"}"', "dlr-storage = internal", "",
        "group = modems", *(f"{k} = {v}" for k, v in KANNEL_MODEM.items()), "",
    ]
    for i, link in enumerate(links):
        lines += ["group = smsc", f"smsc-id = gsm{i}", f"device = {link}",
                  *(f"{k} = {v}" for k, v in KANNEL_SMSC.items()), ""]
    lines += [
        "group = smsbox", "bearerbox-host = 127.0.0.1", f"bearerbox-port = {ports['box']}",
        f"sendsms-port = {ports['sendsms']}", "sendsms-interface = 127.0.0.1",
        f'log-file = "{workdir / "smsbox.log"}"', f"log-level = {log_level}", "",
        "group = sendsms-user", "username = bench", "password = benchpw", "max-messages = 1",
        "concatenation = false", "",
    ]
    return "\n".join(lines) + "\n"


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def _dlr_sink() -> Iterator[int]:
    """A loopback HTTP server that answers 200 to Kannel's dlr-url calls; yields its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, name="bench-dlr-sink", daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def kannel_online(admin_port: int) -> int:
    """SMSC connections bearerbox reports online (admin status.txt)."""
    url = f"http://127.0.0.1:{admin_port}/status.txt?password=adminpw"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.read().decode(errors="replace").count("(online")
    except (OSError, ValueError):
        return 0


def sendsms_url(port: int, to: str, text: str, dlr_port: int | None = None) -> str:
    q = {"username": "bench", "password": "benchpw", "from": "bench", "to": to, "text": text}
    if dlr_port is not None:  # dlr-mask makes the AT driver set TP-SRR: a status report, as the others ask
        q |= {"dlr-mask": "3", "dlr-url": f"http://127.0.0.1:{dlr_port}/dlr?type=%d"}
    return f"http://127.0.0.1:{port}/cgi-bin/sendsms?" + urllib.parse.urlencode(q)


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@contextlib.contextmanager
def kannel_running(links: Sequence[Path], workdir: Path, pin: int | None = None,
                   timeout_s: float = 2 * STARTUP_TIMEOUT_S) -> Iterator[tuple[dict[str, int],
                                                                       list[subprocess.Popen[bytes]]]]:
    """bearerbox + smsbox on the ports; yields (ports, processes) once every SMSC is online."""
    kb = kannel_binaries()
    if kb is None:
        raise PeerUnavailable(availability()["kannel"])
    from bench.gateway import _free_port

    ports = {"admin": _free_port(), "box": _free_port(), "sendsms": _free_port()}
    conf = workdir / "kannel.conf"
    conf.write_text(kannel_conf(links, workdir, ports))
    procs: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as logs:
        try:
            for binary, name in zip(kb, ("bearerbox", "smsbox"), strict=True):
                if name == "smsbox":  # it gives up at once if bearerbox does not listen yet
                    _wait_for(lambda: _port_open(ports["box"]), procs, timeout_s, "bearerbox start-up")
                procs.append(subprocess.Popen(
                    # -v 2: warnings and worse on stderr (the log file keeps log-level 1, info)
                    pinned([binary, "-v", "2", str(conf)], pin), stdout=subprocess.DEVNULL,
                    stderr=logs.enter_context(open(workdir / f"{name}.stderr", "wb")),
                    stdin=subprocess.DEVNULL, start_new_session=True))
            _wait_for(lambda: kannel_online(ports["admin"]) >= len(links) and _port_open(ports["sendsms"]),
                      procs, timeout_s, "kannel start-up")
            yield ports, procs
        finally:
            for p in reversed(procs):
                _stop_daemon(p)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def run_kannel(k: int, latency_s: float, per_modem: int, workdir: Path, probe: Probe | None = None,
               pin: tuple[int, int] | None = None) -> Path:
    """bearerbox + smsbox, one ``smsc = at`` per modem; the work goes in through sendsms once
    every SMSC is online (Kannel has no queue to fill before it starts)."""
    if kannel_binaries() is None:
        raise PeerUnavailable(availability()["kannel"])
    work = messages_for(k, per_modem)
    timeout_s = _run_timeout_s(per_modem, latency_s) + 3.0 * per_modem  # its AT driver pauses ~2 s per send
    with emulator(k, latency_s, workdir, pin[1] if pin else None) as links, _dlr_sink() as dlr_port, \
            kannel_running(links, workdir, pin[0] if pin else None) as (ports, procs):
        statuses: list[int] = []

        def submit() -> None:
            urls = [sendsms_url(ports["sendsms"], n, t, dlr_port) for n, t in work]
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                statuses.extend(pool.map(_get, urls))
            refused = [st for st in statuses if st != 202]
            if refused:
                raise RuntimeError(f"kannel sendsms refused {len(refused)} of {len(work)} (HTTP {refused[0]})")

        (probe or Probe()).run(lambda: [p.pid for p in procs],
                               lambda: results_so_far(workdir / "transcripts") >= len(work),
                               procs, timeout_s, "kannel", start=submit if work else None)
    return workdir / "transcripts"


RUNNERS: dict[str, Callable[..., Path]] = {
    "gsmgw": run_gsmgw, "gammu-smsd": run_gammu_smsd, "smstools": run_smstools, "kannel": run_kannel,
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


def run_cell(daemon: str, k: int, latency_s: float, per_modem: int, workdir: Path,
             pin: tuple[int, int] | None = None) -> dict[str, Any]:
    """One run of one daemon on a fresh emulated pool; the measurement, or the error.

    Besides the modem-side figures: the daemon's CPU (user + system, all its processes, from
    /proc) over the busy period (first AT+CMGS to last +CMGS result, wall clock from the
    transcripts) per sent message, its peak memory, and the 1-minute load before and after.
    """
    t0 = time.monotonic()
    load_before = procstat.loadavg()
    probe = Probe()
    try:
        transcripts = RUNNERS[daemon](k, latency_s, per_modem, workdir, probe=probe, pin=pin)
        result = measure(transcripts, k, latency_s)
        if result["sent"] != k * per_modem:
            raise RuntimeError(f"{result['sent']} submits accepted, {k * per_modem} queued")
    except PeerUnavailable:
        raise
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "wall_s": round(time.monotonic() - t0, 1)}
    assert probe.sampler is not None
    busy_cpu = probe.sampler.between(min(walls(transcripts, "cmd")), max(walls(transcripts, "result")))
    return {**result, "cpu_busy_s": round(busy_cpu, 3),
            "cpu_ms_per_message": round(busy_cpu / result["sent"] * 1000, 3),
            "memory": probe.sampler.memory, "load_before": load_before, "load_after": procstat.loadavg(),
            "pinned": list(pin) if pin else None, "wall_s": round(time.monotonic() - t0, 1)}


# Settings that only matter with nothing to do, set back to the daemon's default for the idle
# measure: with LoopSleep = 0 (chosen for throughput) gammu-smsd re-reads an empty outbox
# without pause, 27.8 CPU-s per 20 s at 16 modems (measured 2026-11-28); nobody runs it so idle.
IDLE_OVERRIDES: dict[str, dict[str, str]] = {"gammu-smsd": {"LoopSleep": "1"}}


@contextlib.contextmanager
def _idle_settings(daemon: str) -> Iterator[None]:
    saved = dict(GAMMU_SMSD_SETTINGS)
    GAMMU_SMSD_SETTINGS.update(IDLE_OVERRIDES.get(daemon, {}))
    try:
        yield
    finally:
        GAMMU_SMSD_SETTINGS.clear()
        GAMMU_SMSD_SETTINGS.update(saved)


def idle_cell(daemon: str, k: int, idle_s: float, workdir: Path, settle_s: float = 8.0) -> dict[str, Any]:
    """The daemon on K modems with nothing to send: CPU over ``idle_s`` after ``settle_s`` of start-up."""
    load_before = procstat.loadavg()
    probe = Probe(idle_s=idle_s, settle_s=settle_s)
    try:
        with _idle_settings(daemon):
            RUNNERS[daemon](k, 1.0, 0, workdir, probe=probe)
    except PeerUnavailable:
        raise
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    assert probe.sampler is not None
    return {"idle_s": idle_s, "cpu_s": round(probe.idle_cpu_s(), 3), "memory": probe.sampler.memory,
            "load_before": load_before, "load_after": procstat.loadavg()}


def _summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4)}


def run(modems: Sequence[int], latencies: Sequence[float], messages_per_modem: int, repeats: int,
        daemons: Sequence[str] = DAEMONS, keep_dir: Path | None = None,
        progress: Callable[[str], None] | None = None, pin: tuple[int, int] | None = None) -> dict[str, Any]:
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
                        res = run_cell(d, k, lat, messages_per_modem, root / f"k{k}-l{lat}-r{r}-{d}", pin=pin)
                        runs[d].append(res)
                        if progress:
                            progress(f"K={k} L={lat} repeat {r + 1}/{repeats} {d}: "
                                     + (res["error"] if "error" in res else
                                        f"{res['per_minute']}/min ({res['fraction_of_ideal']:.3f}), "
                                        f"{res['cpu_ms_per_message']} ms CPU/msg, load {res['load_before'][:1]}"))
                cells.append(_cell_summary(k, lat, messages_per_modem, runs))
    return {
        "benchmark": "peers",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": procstat.machine(),
        "pinned": {"daemon_cpu": pin[0], "emulator_cpu": pin[1]} if pin else None,
        "versions": versions(),
        "messages_per_modem": messages_per_modem,
        "repeats": repeats,
        "report_delay_s": REPORT_DELAY_S,
        "unavailable": missing,
        "settings": {"gammu-smsd": GAMMU_SMSD_SETTINGS, "smstools_global": SMSTOOLS_GLOBAL,
                     "smstools_modem": SMSTOOLS_MODEM, "kannel_smsc": KANNEL_SMSC, "kannel_modem": KANNEL_MODEM},
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
            "cpu_ms_per_message": _summary([r["cpu_ms_per_message"] for r in ok]),
            "hwm_mb": _summary([r["memory"]["hwm_mb"] for r in ok if r.get("memory")]),
            "load_1m": _summary([r["load_before"][0] for r in ok if r.get("load_before")]
                                + [r["load_after"][0] for r in ok if r.get("load_after")]),
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
    pin = report.get("pinned")
    lines = [
        (f"Daemon pinned to CPU {pin['daemon_cpu']} (taskset), emulator to CPU {pin['emulator_cpu']}. " if pin else "")
        + f"Modem utilisation side by side, {report['date']}, {m['cpus']} CPUs ({m['cpu']}); "
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
    lines += [
        "",
        "CPU per sent message (ms: user + system time of all the daemon's processes from /proc over the busy "
        "period, ÷ messages sent) and peak resident memory (MB: VmHWM summed over its processes); "
        "1-minute load during the runs:",
        "",
        "| K | L (s) | " + " | ".join(f"{d} CPU ms/msg / peak MB" for d in daemons) + " | load |",
        "|---:|---:|" + "---:|" * len(daemons) + "---|",
    ]
    for c in report["cells"]:
        row = [str(c["modems"]), f"{c['latency_s']:g}"]
        loads: list[float] = []
        for d in daemons:
            r = c["results"].get(d) or {}
            row.append(f"{_fmt(r.get('cpu_ms_per_message'), 2)} / {_fmt(r.get('hwm_mb'), 0)}")
            if r.get("load_1m"):
                loads += [r["load_1m"]["min"], r["load_1m"]["max"]]
        row.append(f"{min(loads):.1f}–{max(loads):.1f}" if loads else "–")
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
