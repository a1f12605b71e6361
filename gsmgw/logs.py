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


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("message_id", "modem_id", "state"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(TRACE if level == "trace" else getattr(logging, level.upper()))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
