"""One exception tree for gsmgw.

Lower layers raise these; the API layer maps them to stable JSON error codes.
"""

from __future__ import annotations


class GsmgwError(Exception):
    """Base of every error gsmgw raises on purpose."""


class ConfigError(GsmgwError):
    """A configuration file is invalid; the message names file, key and expectation."""


# --- SMS codec -------------------------------------------------------------


class CodecError(GsmgwError, ValueError):
    """Malformed PDU or text that cannot be encoded; the only error the codec raises."""


# --- Modems ----------------------------------------------------------------


class ModemError(GsmgwError):
    """Anything that went wrong talking to a modem."""


class PortClosed(ModemError):
    """The serial port vanished or was closed (unplug, EOF, EIO)."""


class ATTimeout(ModemError):
    """No final result within the command's timeout."""


class ATError(ModemError):
    """The modem answered plain ``ERROR`` (or another non-OK final result)."""

    def __init__(self, command: str, final: str = "ERROR") -> None:
        super().__init__(f"{command!r} failed: {final}")
        self.command = command
        self.final = final


class CMEError(ATError):
    """``+CME ERROR: <code>`` (equipment / SIM errors, TS 27.007 §9.2)."""

    def __init__(self, command: str, code: int | None, text: str = "") -> None:
        super().__init__(command, f"+CME ERROR: {code if code is not None else text}")
        self.code = code
        self.text = text


class CMSError(ATError):
    """``+CMS ERROR: <code>`` (message service errors, TS 27.005 §3.2.5)."""

    def __init__(self, command: str, code: int | None, text: str = "") -> None:
        super().__init__(command, f"+CMS ERROR: {code if code is not None else text}")
        self.code = code
        self.text = text


class SimError(ModemError):
    """The SIM is locked, PUK-locked, absent, or the PIN was refused."""


# --- Store / API -------------------------------------------------------------


class StoreError(GsmgwError):
    """The database refused an operation."""


class StoreInUse(StoreError):
    """Another live gateway holds this store (SQLite) or this host id (PostgreSQL).

    The message says who holds it (pid, machine, since when) and what to do;
    ``holder`` is the who alone.
    """

    def __init__(self, message: str, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder


class StoreMissing(StoreError):
    """A store that should exist does not (removed, or a mistyped path); nothing was created."""


class ListenError(GsmgwError):
    """The API could not listen (port in use, no such address); one line with the fix."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(f"{reason}: {fix}")
        self.reason = reason
        self.fix = fix


class ValidationError(GsmgwError):
    """Caller input is invalid. ``code`` is stable and machine-readable."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class AdmissionError(GsmgwError):
    """Valid input the gateway will not take now: a caller's rate or daily quota, or a
    full queue. ``code`` is stable (``rate_limited``, ``quota_exceeded``,
    ``queue_full``); ``retry_after_s`` says when trying again may succeed."""

    def __init__(self, code: str, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


class UnavailableError(AdmissionError):
    """The gateway cannot take messages at all now (its store was removed, replaced or
    is unwritable): HTTP 503, ``store_unavailable``. A door that knows only
    AdmissionError still refuses the request."""


class ConflictError(GsmgwError):
    """The request contradicts an earlier one: an Idempotency-Key reused with a
    different request (``idempotency_conflict``). HTTP 409; nothing was queued."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- SMPP door ----------------------------------------------------------------


class SmppError(GsmgwError, ValueError):
    """A malformed or refused SMPP PDU; the only error the SMPP codec raises.

    ``status`` is the SMPP command_status to answer with (ESME_R*), and
    ``command_id`` / ``sequence_number`` those of the offending PDU when its
    header could be read (0 otherwise).
    """

    def __init__(self, message: str, *, status: int, command_id: int = 0, sequence_number: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.command_id = command_id
        self.sequence_number = sequence_number
