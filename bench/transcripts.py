"""What the benchmarks read from the emulator's byte transcripts, and a percentile.

All measurements are taken from the modem side: an ``AT+CMGS=`` arriving
("cmd") and a ``+CMGS:`` result leaving ("result"), so every daemon is timed
the same way.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from pathlib import Path

from gsmgw.emulator import load_transcript


def pct(values: list[float], q: float) -> float:
    """The q-quantile by the nearest-rank method; NaN for no values."""
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))]


def _kind(direction: str, data: bytes) -> str | None:
    if direction == "in" and b"AT+CMGS=" in data.upper():
        return "cmd"
    if direction == "out" and b"+CMGS:" in data:
        return "result"
    return None


def marks(path: Path) -> list[tuple[float, str]]:
    """(seconds since the transcript opened, "cmd" | "result"), in order."""
    return [(e.t_s, k) for e in load_transcript(path) if (k := _kind(e.direction, e.data))]


def walls(transcripts: Path, kind: str) -> list[float]:
    """UNIX times of every "cmd" or "result" across a folder of transcripts, sorted."""
    out = []
    for path in sorted(transcripts.glob("*")):
        out += [dt.datetime.fromisoformat(e.wall).timestamp()
                for e in load_transcript(path) if _kind(e.direction, e.data) == kind]
    return sorted(out)


def gaps_s(per_modem_marks: list[list[tuple[float, str]]]) -> list[float]:
    """Idle time on each modem from a +CMGS result to its next AT+CMGS."""
    gaps = []
    for mk in per_modem_marks:
        for (t1, a), (t2, b) in itertools.pairwise(sorted(mk)):
            if a == "result" and b == "cmd":
                gaps.append(t2 - t1)
    return gaps


def utilisation(per_modem_marks: list[list[tuple[float, str]]], latency_s: float) -> float:
    """L × sends over each modem's own busy span (first AT+CMGS to last +CMGS result),
    summed over modems: start-up skew between modems is left out."""
    sends = spans = 0.0
    for mk in per_modem_marks:
        results = [t for t, kd in mk if kd == "result"]
        cmds = [t for t, kd in mk if kd == "cmd"]
        if results and cmds:
            sends += len(results)
            spans += max(results) - min(cmds)
    return latency_s * sends / spans if spans > 0 else float("nan")
