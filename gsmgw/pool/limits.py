"""Per-SIM send limits (pure: the caller passes the clock).

Limits are counted in SMS parts (what the operator bills and throttles), over
sliding windows of a minute, an hour and a day.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

WINDOWS_S = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}


@dataclass(frozen=True, slots=True)
class Limits:
    per_minute: int = 0  # 0 = unlimited
    per_hour: int = 0
    per_day: int = 0

    def as_windows(self) -> list[tuple[float, int]]:
        pairs = [(60.0, self.per_minute), (3600.0, self.per_hour), (86400.0, self.per_day)]
        return [(w, n) for (w, n) in pairs if n > 0]


class SimLimiter:
    """Sliding-window counters; ``wait_s(now, parts)`` says how long until a send fits."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._sent: deque[float] = deque()  # one timestamp per part, oldest first

    def _trim(self, now: float) -> None:
        horizon = now - 86400.0
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()

    def wait_s(self, now: float, parts: int = 1) -> float:
        """0 when ``parts`` may be sent now, else the seconds until they may."""
        self._trim(now)
        wait = 0.0
        for window_s, cap in self.limits.as_windows():
            if parts > cap:
                return float("inf")  # can never fit on this SIM
            # Timestamps inside the window, newest last.
            inside = [ts for ts in self._sent if ts > now - window_s]
            excess = len(inside) + parts - cap
            if excess > 0:
                # The excess-th oldest send inside the window must leave it first.
                wait = max(wait, inside[excess - 1] + window_s - now)
        return wait

    def record(self, now: float, parts: int = 1) -> None:
        self._trim(now)
        self._sent.extend([now] * parts)

    def used(self, now: float, window_s: float) -> int:
        return sum(1 for ts in self._sent if ts > now - window_s)
