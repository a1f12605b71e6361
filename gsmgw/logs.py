"""Logging setup: human-readable text by default, JSON lines on request.

Level ``trace`` (5) is below DEBUG and is where raw AT traffic goes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

# Secrets must never reach a log line, whatever a lower layer formats.
_SECRET_PATTERNS = [
    (re.compile(r"(AT\+CPIN=)\"?[0-9]+\"?(,\"?[0-9]+\"?)?", re.IGNORECASE), r"\1<redacted>"),
    (re.compile(r"gsk_[0-9a-f]{8}_[A-Za-z0-9_-]+"), "gsk_<redacted>"),
    (re.compile(r"(Bearer\s+)\S+", re.IGNORECASE), r"\1<redacted>"),
]


def redact(text: str) -> str:
    # Every log line passes here (twice): an ASCII line without the words the patterns
    # need cannot match any of them, and is returned without running them (issue 17).
    if text.isascii():
        low = text.lower()
        if "cpin" not in low and "gsk_" not in text and "bearer" not in low:
            return text
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message", "asctime", "taskName",
}


def _json_safe(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then every ``extra=`` field
    (``message_id``, ``modem_id``, ``state``, ``inbound_id``...) as its own key."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_") and key not in out:
                out[key] = _json_safe(value)
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``asctime level logger: message``; tracebacks are redacted too."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root.addHandler(handler)
    root.setLevel(TRACE if level == "trace" else getattr(logging, level.upper()))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


# --- raw AT traffic at TRACE ---------------------------------------------------------

at_trace_log = logging.getLogger("gsmgw.at.trace")


class AtTraceLogger:
    """A modem channel's trace hook that logs raw AT traffic at TRACE, one line per record.

    Bytes are gathered into lines first: an echoed ``AT+CPIN="1234"`` may arrive a
    byte at a time, and only a whole line can be redacted reliably. The ``> ``
    prompt of ``AT+CMGS`` has no line end and is logged as it comes. Any of
    ``secrets`` (the SIM PIN) is masked wherever it appears, whole.
    """

    def __init__(self, modem_id: str, *, secrets: tuple[str, ...] = (), max_line: int = 4096) -> None:
        self.modem_id = modem_id
        self._secrets = tuple(s for s in secrets if s)
        self._buf: dict[str, bytearray] = {"rx": bytearray(), "tx": bytearray()}
        self._max_line = max_line

    @staticmethod
    def enabled() -> bool:
        return at_trace_log.isEnabledFor(TRACE)

    def __call__(self, ts: float, direction: str, data: bytes) -> None:
        buf = self._buf.setdefault(direction, bytearray())
        buf.extend(data)
        while True:
            cut = min((i for i in (buf.find(b"\r"), buf.find(b"\n"), buf.find(b"\x1a")) if i >= 0), default=-1)
            if cut < 0:
                break
            line = bytes(buf[: cut + 1])
            del buf[: cut + 1]
            self._emit(direction, line)
        if buf.endswith(b"> ") or len(buf) >= self._max_line:
            self._emit(direction, bytes(buf))
            buf.clear()

    def _emit(self, direction: str, line: bytes) -> None:
        if line in (b"\r", b"\n"):
            return
        text = redact(repr(line)[2:-1])
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        at_trace_log.log(TRACE, "%s %s %s", self.modem_id, direction, text,
                         extra={"modem_id": self.modem_id, "direction": direction})
