"""Server-side console sessions (in memory) and a throttle for failed sign-ins.

The browser holds only a random session token in an HttpOnly cookie; the API
key that was typed in is checked once and forgotten. A session ends when it is
idle for ``idle_s``, after ``max_s`` in any case, at sign-out, when its key is
revoked, and when the gateway restarts.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TOKEN_BYTES = 32


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass
class Session:
    caller: Any  # gsmgw.intake.Caller
    csrf: str
    created_at: float  # monotonic seconds
    last_seen: float
    checked_at: float  # when the key was last found not revoked
    # One message for the next page (after a redirect): (kind, text), kind "ok" | "error".
    flash: tuple[str, str] | None = None
    # Results shown once on the modems page (USSD answers), by modem id.
    notes: dict[str, str] = field(default_factory=dict)

    def pop_flash(self) -> tuple[str, str] | None:
        flash, self.flash = self.flash, None
        return flash


class Sessions:
    """Sessions by the SHA-256 of their token (the token itself is not kept)."""

    def __init__(self, *, idle_s: float, max_s: float, max_sessions: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self.max_s = max_s
        self.max_sessions = max_sessions
        self.clock = clock
        self._by_digest: dict[bytes, Session] = {}

    def create(self, caller: Any) -> tuple[str, Session]:
        """A new session; returns the token for the cookie, and the session."""
        now = self.clock()
        if len(self._by_digest) >= self.max_sessions:
            self.prune()
            if len(self._by_digest) >= self.max_sessions:
                # Drop the oldest: a flood of sign-ins must not grow memory without bound.
                oldest = min(self._by_digest, key=lambda d: self._by_digest[d].created_at)
                del self._by_digest[oldest]
        token = secrets.token_urlsafe(TOKEN_BYTES)
        session = Session(caller=caller, csrf=secrets.token_urlsafe(TOKEN_BYTES), created_at=now,
                          last_seen=now, checked_at=now)
        self._by_digest[_digest(token)] = session
        return token, session

    def get(self, token: str | None, *, touch: bool = True) -> Session | None:
        """The live session for ``token``; None if unknown or expired (and then it is dropped)."""
        if not token or len(token) > 100:
            return None
        digest = _digest(token)
        session = self._by_digest.get(digest)
        if session is None:
            return None
        now = self.clock()
        if now - session.last_seen > self.idle_s or now - session.created_at > self.max_s:
            del self._by_digest[digest]
            return None
        if touch:
            session.last_seen = now
        return session

    def drop(self, token: str | None) -> None:
        if token:
            self._by_digest.pop(_digest(token), None)

    def drop_key(self, key_id: str) -> int:
        """End every session signed in with this key (it was revoked); returns how many."""
        gone = [d for d, s in self._by_digest.items() if s.caller.id == key_id]
        for d in gone:
            del self._by_digest[d]
        return len(gone)

    def prune(self) -> None:
        now = self.clock()
        self._by_digest = {d: s for d, s in self._by_digest.items()
                           if now - s.last_seen <= self.idle_s and now - s.created_at <= self.max_s}

    def __len__(self) -> int:
        return len(self._by_digest)


class SignInThrottle:
    """Failed sign-ins per client address: ``burst`` at once, then one per ``every_s``.

    API keys are 192-bit random strings, so this is not what keeps them safe; it
    keeps a guessing loop from costing database reads and log lines.
    """

    def __init__(self, *, burst: int = 10, every_s: float = 6.0, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.every_s = every_s
        self.max_clients = max_clients
        self.clock = clock
        self._tokens: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)

    def _level(self, client: str, now: float) -> float:
        tokens, at = self._tokens.get(client, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) / self.every_s)

    def wait_s(self, client: str) -> float:
        """0 if ``client`` may try now, else seconds until it may."""
        level = self._level(client, self.clock())
        return 0.0 if level >= 1.0 else (1.0 - level) * self.every_s

    def failed(self, client: str) -> None:
        now = self.clock()
        if len(self._tokens) >= self.max_clients:
            self._tokens.clear()
        self._tokens[client] = (max(0.0, self._level(client, now) - 1.0), now)


__all__ = ["Session", "Sessions", "SignInThrottle"]
