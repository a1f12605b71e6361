"""Per-modem transcript: every raw byte in and out, timestamped, as JSON lines.

One line per chunk: ``{"t": <seconds since open>, "wall": "<UTC ISO>", "dir": "in"|"out"|"event",
"hex": "...", "text": "..."}`` ("event" marks power on/off of the modem). ``hex`` is authoritative (replay uses it); ``text`` is a
readable rendering for humans (``\\r``/``\\n``/Ctrl-Z escaped).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal

Direction = Literal["in", "out", "event"]


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    t_s: float
    wall: str
    direction: Direction
    data: bytes


class Transcript:
    """Append-only transcript file, flushed per chunk so it survives a crash."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = path.open("a", encoding="utf-8")
        self._t0 = time.monotonic()

    def record(self, direction: Direction, data: bytes) -> None:
        if self._fh is None or not data:
            return
        entry = {
            "t": round(time.monotonic() - self._t0, 6),
            "wall": datetime.now(UTC).isoformat(timespec="microseconds"),
            "dir": direction,
            "hex": data.hex(),
            "text": data.decode("latin-1").encode("unicode_escape").decode("ascii"),
        }
        self._fh.write(json.dumps(entry) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def load_transcript(path: Path) -> list[TranscriptEntry]:
    """Read a transcript back (for replay and debugging). Raises ValueError on a bad line."""
    entries: list[TranscriptEntry] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                entries.append(
                    TranscriptEntry(
                        t_s=float(obj["t"]),
                        wall=str(obj["wall"]),
                        direction=obj["dir"],
                        data=bytes.fromhex(obj["hex"]),
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{lineno}: not a transcript line: {exc}") from exc
    return entries


def client_input(entries: list[TranscriptEntry]) -> list[tuple[float, bytes]]:
    """The client's side of a transcript as (seconds since start, bytes), to replay it
    against a fresh emulator (or a real modem) and compare the answers."""
    return [(e.t_s, e.data) for e in entries if e.direction == "in"]


def modem_output(entries: list[TranscriptEntry]) -> bytes:
    return b"".join(e.data for e in entries if e.direction == "out")


def format_transcript(entries: list[TranscriptEntry]) -> str:
    """A readable session: consecutive chunks in one direction are merged, one line each,
    ``<t>  > AT+CMGS=19\\r`` for the client and ``<t>  < \\r\\n> `` for the modem."""
    out: list[str] = []
    marks = {"in": ">", "out": "<", "event": "*"}
    current: TranscriptEntry | None = None
    buf = bytearray()

    def flush() -> None:
        if current is not None:
            text = bytes(buf).decode("latin-1").encode("unicode_escape").decode("ascii")
            out.append(f"{current.t_s:10.6f}  {marks[current.direction]} {text}")

    for e in entries:
        if current is None or e.direction != current.direction or e.direction == "event":
            flush()
            current = e
            buf = bytearray()
        buf.extend(e.data)
    flush()
    return "\n".join(out)
