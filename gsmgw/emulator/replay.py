"""Play a recorded session (``gsmgw probe --record``) back as a modem, to drive gsmgw with it.

A transcript (JSON lines, :mod:`gsmgw.emulator.transcript`) is turned into answers by
command: everything the module sent after the host wrote ``AT+CGMM`` (until the host
wrote again) is the answer to ``AT+CGMM``. On replay the driver may ask in another order,
or ask again (polls): each command gets its recorded answers in turn, the last one
repeats, and a command never recorded answers ``ERROR`` (as a module that does not know
it would). Output before the first command (boot URCs) is sent at power-on.

So a transcript from a module gsmgw has never met becomes a regression test: replay it
against the driver and check it reaches READY (tests/modem/test_replay.py) — or run
``gsmgw fake-modem --replay FILE`` and point any gsmgw at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gsmgw.emulator.transcript import TranscriptEntry, load_transcript

CTRL_Z = b"\x1a"
ESC = b"\x1b"
PDU_KEY = "<PDU>"
"""Key of the answer to a PDU written after the ``> `` prompt (the PDU itself differs per run)."""

_PIN = re.compile(r'(AT\+CPIN=)"?[^"\r]*"?', re.IGNORECASE)


def redact_command(line: str) -> str:
    """The form a command is stored and looked up in: the SIM PIN (and a PUK) masked."""
    return _PIN.sub(r'\1"****"', line)


def command_key(data: bytes) -> str:
    """``b"AT+CGMM\\r"`` → ``"AT+CGMM"``; a PDU ending in Ctrl-Z → :data:`PDU_KEY`."""
    if data.endswith(CTRL_Z):
        return PDU_KEY
    text = data.decode("latin-1").strip().upper()
    return redact_command(text)


@dataclass
class ReplayScript:
    preamble: bytes = b""
    answers: dict[str, list[tuple[float, bytes]]] = field(default_factory=dict)
    """command key -> recorded (seconds from the command to the first byte of answer, answer)."""

    @classmethod
    def from_entries(cls, entries: list[TranscriptEntry]) -> ReplayScript:
        script = cls()
        key: str | None = None
        written_at = 0.0
        answer = bytearray()
        first_out: float | None = None

        def close() -> None:
            if key is not None:
                latency_s = (first_out - written_at) if first_out is not None else 0.0
                script.answers.setdefault(key, []).append((max(0.0, latency_s), bytes(answer)))

        for e in entries:
            if e.direction == "event":
                continue
            if e.direction == "in":
                if e.data == ESC:
                    continue  # a cancelled prompt: nothing to answer
                close()
                key, written_at, answer, first_out = command_key(e.data), e.t_s, bytearray(), None
            else:
                if key is None:
                    script.preamble += e.data
                    continue
                if first_out is None:
                    first_out = e.t_s
                answer.extend(e.data)
        close()
        return script

    @classmethod
    def load(cls, path: Path) -> ReplayScript:
        script = cls.from_entries(load_transcript(path))
        if not script.answers:
            raise ValueError(f"{path}: no command was recorded in this transcript")
        return script


class ReplayModem:
    """A modem that answers from a :class:`ReplayScript`; plugs into :class:`~gsmgw.emulator.pty.PtyModem`."""

    def __init__(self, script: ReplayScript, *, number: str = "replay", time_scale: float = 0.0,
                 max_delay_s: float = 2.0) -> None:
        if time_scale < 0 or max_delay_s < 0:
            raise ValueError("time_scale and max_delay_s must be >= 0")
        self.script = script
        self.number = number
        self.time_scale = time_scale
        """Recorded answer latencies are replayed times this (0: answer at once)."""
        self.max_delay_s = max_delay_s
        self.on_drop: Callable[[], None] | None = None
        self.behaviour = _NoReplug()
        self.unknown: list[str] = []
        """Commands the driver sent that the transcript never answered (they got ERROR)."""
        self.asked: list[str] = []
        self._next: dict[str, int] = {}
        self._sink: Callable[[bytes], None] | None = None
        self._buf = bytearray()
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_file(cls, path: Path, **kw: Any) -> ReplayModem:
        return cls(ReplayScript.load(path), **kw)

    def attach(self, sink: Callable[[bytes], None]) -> None:
        self._sink = sink
        self._buf.clear()
        self._task = asyncio.get_running_loop().create_task(self._answer_loop(), name=f"replay-{self.number}")
        if self.script.preamble:
            sink(self.script.preamble)

    def feed(self, data: bytes) -> None:
        self._buf.extend(data)
        while True:
            cut = min((i for i in (self._buf.find(b"\r"), self._buf.find(CTRL_Z), self._buf.find(ESC)) if i >= 0),
                      default=-1)
            if cut < 0:
                return
            chunk = bytes(self._buf[: cut + 1])
            del self._buf[: cut + 1]
            if chunk.endswith(ESC):
                continue
            if chunk.strip(b"\r\n"):
                self._queue.put_nowait(command_key(chunk.lstrip(b"\n")))

    async def _answer_loop(self) -> None:
        while True:
            key = await self._queue.get()
            self.asked.append(key)
            recorded = self.script.answers.get(key)
            if not recorded:
                self.unknown.append(key)
                self._write(b"\r\nERROR\r\n")
                continue
            i = self._next.get(key, 0)
            latency_s, answer = recorded[min(i, len(recorded) - 1)]
            self._next[key] = i + 1
            delay_s = min(latency_s * self.time_scale, self.max_delay_s)
            await asyncio.sleep(delay_s)
            self._write(answer)

    def _write(self, data: bytes) -> None:
        if self._sink is not None and data:
            self._sink(data)

    async def detach(self) -> None:
        self._sink = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def aclose(self) -> None:
        await self.detach()


@dataclass
class _NoReplug:
    replug_after_s: float | None = None
