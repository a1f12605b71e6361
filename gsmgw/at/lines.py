"""Incremental AT framer: raw bytes in, lines and ``> `` prompts out.

Pure: no asyncio, no I/O. The framer never raises on input; garbage bytes
(NULs, non-UTF-8, stray control characters) become replacement characters or
are dropped, so one bad byte cannot kill a port.

Wire facts it rests on (3GPP TS 27.007 §4.1/§5.2, V.250):
* responses are framed ``<CR><LF>text<CR><LF>``, but echo lines end with a
  bare ``<CR>`` and some modules (SIM800, Huawei) mix the two, so both CR and
  LF terminate a line and empty lines are skipped;
* the ``AT+CMGS`` prompt is ``<CR><LF>> `` (greater-than, space) with no line
  terminator after it (TS 27.005 §3.5.1), so it must be recognised while it
  is still the unterminated tail of the buffer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Above this, an unterminated line is flushed as-is (a module spewing binary
# garbage without CR/LF must not grow the buffer forever).
MAX_LINE_BYTES = 64 * 1024

CTRL_Z = b"\x1a"
ESC = b"\x1b"

# Control characters removed from decoded lines (everything below 0x20 except
# TAB; CR/LF never reach here). NUL and Ctrl-Z echoes are the usual offenders.
_DROP = {c: None for c in range(0x20) if c != 0x09}
_DROP[0x7F] = None
_EOL = re.compile(rb"[\r\n]")


@dataclass(frozen=True, slots=True)
class Line:
    text: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """The ``> `` prompt that asks for the PDU after ``AT+CMGS=<len>``."""


Frame = Line | Prompt
PROMPT = Prompt()


def clean(raw: bytes) -> str:
    """Decode one raw line: UTF-8 with replacement, control characters dropped, trimmed."""
    return raw.decode("utf-8", errors="replace").translate(_DROP).strip()


class LineFramer:
    """Feed bytes, get frames. Keeps only the unterminated tail between calls."""

    def __init__(self) -> None:
        self._buf = bytearray()
        # Set by the channel while it waits for the CMGS prompt; outside a
        # submit a line that starts with ">" is just a line.
        self.expect_prompt = False

    def feed(self, data: bytes) -> list[Frame]:
        if self.expect_prompt:
            return self._feed_bytewise(data)
        # Outside a submit no prompt is looked for: split on CR/LF in C rather than
        # byte by byte in Python (the framer was the busiest function of a modem's
        # read path). Same frames as the bytewise loop, which the tests compare.
        if 0x00 in data:
            data = data.replace(b"\x00", b"")  # NUL padding seen on some USB CDC-ACM ports after resume
        out: list[Frame] = []
        self._buf += data
        if not _EOL.search(self._buf):
            self._cut_long(out)
            return out
        pieces = _EOL.split(self._buf)
        tail = pieces.pop()
        for piece in pieces:
            for i in range(0, len(piece), MAX_LINE_BYTES):
                self._emit(piece[i:i + MAX_LINE_BYTES], out)
        self._buf = bytearray(tail)
        self._cut_long(out)
        return out

    def _cut_long(self, out: list[Frame]) -> None:
        """An unterminated tail at the size limit goes out in MAX_LINE_BYTES chunks."""
        while len(self._buf) >= MAX_LINE_BYTES:
            chunk = bytes(self._buf[:MAX_LINE_BYTES])
            del self._buf[:MAX_LINE_BYTES]
            self._emit(chunk, out)

    @staticmethod
    def _emit(raw: bytes | bytearray, out: list[Frame]) -> None:
        if raw:
            text = clean(bytes(raw))
            if text:
                out.append(Line(text))

    def _feed_bytewise(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        for byte in data:
            if byte in (0x0D, 0x0A):
                self._flush(out)
                continue
            if byte == 0x00:
                continue  # NUL padding seen on some USB CDC-ACM ports after resume
            self._buf.append(byte)
            if len(self._buf) >= MAX_LINE_BYTES:
                self._flush(out)
            elif self.expect_prompt and self._buf.lstrip() in (b">", b"> "):
                # The prompt is complete at ">"; a following space is eaten
                # as leading whitespace of whatever comes next.
                self._buf.clear()
                self.expect_prompt = False
                out.append(PROMPT)
        return out

    def pending(self) -> bytes:
        """The unterminated tail (for tracing and tests)."""
        return bytes(self._buf)

    def reset(self) -> None:
        self._buf.clear()
        self.expect_prompt = False

    def _flush(self, out: list[Frame]) -> None:
        if not self._buf:
            return
        text = clean(bytes(self._buf))
        self._buf.clear()
        if text:
            out.append(Line(text))


# --- final result codes ------------------------------------------------------


class FinalKind:
    OK = "OK"
    ERROR = "ERROR"
    CME = "CME"
    CMS = "CMS"
    OTHER = "OTHER"  # NO CARRIER, BUSY, NO ANSWER, NO DIALTONE, COMMAND NOT SUPPORT


@dataclass(frozen=True, slots=True)
class Final:
    kind: str
    code: int | None = None
    text: str = ""
    line: str = ""


_OTHER_FINALS = (
    "NO CARRIER",
    "BUSY",
    "NO ANSWER",
    "NO DIALTONE",
    "COMMAND NOT SUPPORT",  # Huawei/ZTE answer to unknown commands instead of ERROR
    "TOO MANY PARAMETERS",  # ZTE
)


_MODEM_ERROR = re.compile(r"^MODEM ERROR: (\d+)$")


def parse_final(line: str) -> Final | None:
    """Recognise a final result code line; ``None`` for anything else.

    ``+CME ERROR: 10`` (numeric, after ``AT+CMEE=1``), ``+CME ERROR: SIM not
    inserted`` (verbose, ``AT+CMEE=2``), ``+CMS ERROR: 500`` are all finals.
    """
    s = line.strip()
    # Numeric result codes (ATV0) are not recognised: the init sequence sends
    # ATV1 first, and a bare "0" is also a legitimate response body line.
    if s == "OK":
        return Final(FinalKind.OK, line=s)
    if s == "ERROR":
        return Final(FinalKind.ERROR, line=s)
    for prefix, kind in (("+CME ERROR:", FinalKind.CME), ("+CMS ERROR:", FinalKind.CMS)):
        if s.upper().startswith(prefix):
            rest = s[len(prefix) :].strip()
            try:
                return Final(kind, code=int(rest), line=s)
            except ValueError:
                return Final(kind, code=None, text=rest, line=s)
    if s in _OTHER_FINALS:
        return Final(FinalKind.OTHER, text=s, line=s)
    m = _MODEM_ERROR.match(s)
    if m:
        # "MODEM ERROR: 5" ends a command on some Qualcomm-based cards (ModemManager
        # src/mm-serial-parsers.c treats it as an error final).
        return Final(FinalKind.OTHER, code=int(m.group(1)), text=s, line=s)
    return None
