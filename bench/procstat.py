"""What the benchmarks read from /proc: a daemon's CPU time and memory, the load, the machine.

CPU is user + system time (``/proc/<pid>/stat`` fields 14 and 15, in clock ticks) summed
over every process of the daemon (gammu-smsd runs one per modem, smstools forks one per
modem, Kannel is bearerbox + smsbox). A ``Sampler`` thread records it with the wall
clock every ``interval_s``, so the CPU spent over any window (for example the busy
period read from the emulator's transcripts) can be taken afterwards.

Memory: ``VmRSS`` and ``VmHWM`` (peak resident) from ``/proc/<pid>/status``, summed over
the daemon's processes, and ``Pss`` from ``/proc/<pid>/smaps_rollup`` where the kernel
has it (shared pages split between the processes that map them: the fair sum for a
daemon of many processes).
"""

from __future__ import annotations

import bisect
import contextlib
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of one process in kB (empty if it is gone)."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out


def pss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def session_members(sid: int) -> list[int]:
    """PIDs in session ``sid`` (a daemon started with start_new_session, and what it forked)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid:  # fields after "(comm)": state ppid pgrp session ...
            pids.append(int(stat.parent.name))
    return pids


def memory_mb(pids: Iterable[int]) -> dict[str, Any]:
    """Summed RSS, peak RSS (VmHWM) and PSS of the processes, in MB."""
    pids = list(pids)
    rss = hwm = 0
    pss: int | None = 0
    for pid in pids:
        st = status_kb(pid)
        rss += st.get("VmRSS", 0)
        hwm += st.get("VmHWM", 0)
        p = pss_kb(pid)
        pss = None if p is None or pss is None else pss + p
    return {"processes": len(pids), "rss_mb": round(rss / 1024, 1), "hwm_mb": round(hwm / 1024, 1),
            "pss_mb": None if pss is None else round(pss / 1024, 1)}


class Sampler:
    """Samples (wall time, summed CPU seconds) of a daemon's processes in a thread.

    A process seen once keeps its last CPU figure after it exits, so the sum never
    goes backwards. ``memory`` keeps the largest summed VmHWM/RSS seen.
    """

    def __init__(self, pids: Callable[[], Iterable[int]], interval_s: float = 0.1) -> None:
        self._pids = pids
        self.interval_s = interval_s
        self.times: list[float] = []
        self.cpu: list[float] = []
        self.memory: dict[str, Any] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)

    def sample(self) -> None:
        pids = list(self._pids())
        for pid in pids:
            c = cpu_s(pid)
            if c or pid not in self._last:
                self._last[pid] = max(c, self._last.get(pid, 0.0))
        self.times.append(time.time())
        self.cpu.append(sum(self._last.values()))
        mem = memory_mb(pids) if pids else {}
        if mem and mem["hwm_mb"] >= self.memory.get("hwm_mb", 0):
            self.memory = mem

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def __enter__(self) -> Sampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(Exception):
            self.sample()

    def at(self, t: float) -> float:
        """Summed CPU seconds at wall time ``t`` (linear between the samples around it)."""
        if not self.times:
            return float("nan")
        i = bisect.bisect_left(self.times, t)
        if i <= 0:
            return self.cpu[0]
        if i >= len(self.times):
            return self.cpu[-1]
        t0, t1 = self.times[i - 1], self.times[i]
        c0, c1 = self.cpu[i - 1], self.cpu[i]
        return c0 + (c1 - c0) * ((t - t0) / (t1 - t0) if t1 > t0 else 1.0)

    def between(self, t0: float, t1: float) -> float:
        return self.at(t1) - self.at(t0)


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine() -> dict[str, Any]:
    return {"cpu": cpu_model(), "cpus": os.cpu_count() or 0, "kernel": platform.release(),
            "python": platform.python_version()}


def spread(values: Iterable[float | None], digits: int = 3) -> dict[str, Any] | None:
    """min, median and max (and n) of the values that are not None."""
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"min": round(min(v), digits), "median": round(statistics.median(v), digits),
            "max": round(max(v), digits), "n": len(v)}


def fmt_spread(s: dict[str, Any] | None, digits: int = 2, unit: str = "") -> str:
    """``median [min–max]`` (n runs), or – for no value."""
    if not s:
        return "–"
    return f"{s['median']:.{digits}f}{unit} [{s['min']:.{digits}f}–{s['max']:.{digits}f}]"
