"""HMAC-SHA256 webhook signatures over the timestamp and the exact body bytes.

Header (one per request)::

    X-Gsmgw-Signature: t=1763766000,v1=5257a869e7...

``v1`` is ``hex(HMAC-SHA256(secret, f"{t}." + body))``. A receiver recomputes it
over the raw body it got, compares in constant time, and refuses a ``t`` too far
from its clock (replay). Several ``v1=`` values may appear during a key rotation.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Gsmgw-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    if not secret:
        raise ValueError("an empty signing secret signs nothing")
    msg = str(int(timestamp)).encode() + b"." + body
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={int(timestamp)},v1={sign(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, *, tolerance_s: float = 300.0,
           now: float | None = None) -> bool:
    """True if ``header`` is a valid signature of ``body`` made within ``tolerance_s``."""
    ts: int | None = None
    sigs: list[str] = []
    for item in header.split(","):
        k, sep, v = item.strip().partition("=")
        if not sep:
            return False
        if k == "t":
            if not v.isdigit():
                return False
            ts = int(v)
        elif k == "v1":
            sigs.append(v)
    if ts is None or not sigs:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    expected = sign(secret, ts, body)
    return any(hmac.compare_digest(expected, s) for s in sigs)
