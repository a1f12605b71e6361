"""Per-SIM send limits (pure: the caller passes the clock).

Limits are counted in SMS parts (what the operator bills and throttles), over
sliding windows of a minute, an hour and a day.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


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
        while self._sent and self._sent[0] + 86400.0 <= now:
            self._sent.popleft()

    def wait_s(self, now: float, parts: int = 1) -> float:
        """0 when ``parts`` may be sent now, else the seconds until they may."""
        self._trim(now)
        wait = 0.0
        for window_s, cap in self.limits.as_windows():
            if parts > cap:
                return float("inf")  # can never fit on this SIM
            # Sends still counting in the window, oldest first. A send leaves the
            # window at ts + window_s exactly (the same float sum as the wait below).
            inside = [ts for ts in self._sent if ts + window_s > now]
            excess = len(inside) + parts - cap
            if excess > 0:
                # The excess-th oldest send inside the window must leave it first.
                # +1 µs: now + wait must land at or past the leaving time despite rounding.
                wait = max(wait, inside[excess - 1] + window_s - now + 1e-6)
        return wait

    def record(self, now: float, parts: int = 1) -> None:
        self._trim(now)
        self._sent.extend([now] * parts)

    def used(self, now: float, window_s: float) -> int:
        return sum(1 for ts in self._sent if ts + window_s > now)


def quiet_wait_s(spec: str, now_minutes: float) -> float:
    """Seconds until a "HH:MM-HH:MM" quiet window ends, or 0 outside it.

    ``now_minutes`` is minutes since local midnight. A window may wrap midnight
    ("22:00-07:00"); an empty spec or a zero-length window is never quiet.
    """
    if not spec:
        return 0.0
    start_s, end_s = spec.split("-")
    start = int(start_s[:2]) * 60 + int(start_s[3:])
    end = int(end_s[:2]) * 60 + int(end_s[3:])
    if start == end:
        return 0.0
    if start < end:
        inside = start <= now_minutes < end
    else:
        inside = now_minutes >= start or now_minutes < end
    if not inside:
        return 0.0
    return ((end - now_minutes) % 1440) * 60.0
