"""The overview's data, computed at most every few seconds whoever asks (every
open console shares it), and the Server-Sent Events stream that pushes it."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from gsmgw.console.deps import ConsoleDeps
from gsmgw.console.queries import Queries

TILES_EVERY_S = 2.0
# Counting the queue walks its index (a good part of a second per million queued on
# a Pi, on SQLite's one writer thread): seldom.
QUEUE_EVERY_S = 15.0
STATS_EVERY_S = 10.0


def _limits(limits: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The SIM's configured limits with how much of each is used (0 = no limit: left out)."""
    if not limits:
        return []
    out = []
    for window, per, used in (("min", "per_minute", "used_minute"), ("hour", "per_hour", "used_hour"),
                              ("day", "per_day", "used_day")):
        cap = limits.get(per) or 0
        if cap > 0:
            n = int(limits.get(used) or 0)
            out.append({"window": window, "used": n, "cap": cap, "full": n >= cap})
    return out


def tile(m: dict[str, Any], today: dict[str, int] | None, balance: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": m["id"],
        "host": m.get("host") or "",
        "remote": bool(m.get("remote")),
        "state": m.get("state") or "unknown",
        "reason": m.get("state_reason") or "",
        "enabled": bool(m.get("enabled", True)),
        "busy": bool(m.get("busy")),
        "resting": bool(m.get("resting")),
        "operator": m.get("operator") or "",
        "csq": m.get("signal_csq"),
        "registration": m.get("registration") or "",
        "model": " ".join(x for x in (m.get("manufacturer"), m.get("model")) if x),
        "own_number": m.get("own_number") or "",
        "sent_today": (today or {}).get("sent", 0),
        "failed_today": (today or {}).get("failed", 0),
        "limits": _limits(m.get("limits")),
        "last_error": m.get("last_error") or "",
        "balance": balance,
        "storage_used": m.get("storage_used"),
        "storage_total": m.get("storage_total"),
    }


def _series(rows: list[tuple[str, int, int]], sims: list[str], start_s: int, bucket_s: int,
            n: int) -> dict[str, Any]:
    """uPlot's shape: x (bucket starts, Unix seconds) and one list per SIM, zeros filled in."""
    x = [start_s + i * bucket_s for i in range(n)]
    index = {b: i for i, b in enumerate(x)}
    series = {sim: [0] * n for sim in sims}
    for sim, bucket, count in rows:
        i = index.get(bucket)
        if i is None:
            continue
        series.setdefault(sim, [0] * n)[i] += count
    return {"x": x, "series": series, "bucket_s": bucket_s}


class Live:
    def __init__(self, q: Queries, deps: ConsoleDeps) -> None:
        self.q = q
        self.deps = deps
        self._tiles: tuple[float, dict[str, Any]] | None = None
        self._queue: tuple[float, dict[str, Any]] | None = None
        self._stats: tuple[float, dict[str, Any]] | None = None
        self._tiles_lock = asyncio.Lock()
        self._stats_lock = asyncio.Lock()

    async def tiles(self) -> dict[str, Any]:
        """SIM tiles and the queue; recomputed at most every TILES_EVERY_S."""
        async with self._tiles_lock:
            now = time.monotonic()
            if self._tiles is not None and now - self._tiles[0] < TILES_EVERY_S:
                return self._tiles[1]
            q = self.q
            modems = await q.modems()
            counts = await q.sim_counts_today()
            if self._queue is None or now - self._queue[0] >= QUEUE_EVERY_S:
                self._queue = (now, await q.queue())
            queue = dict(self._queue[1])
            balances = self.deps.balances()
            oldest = await q.oldest_due()
            queue["oldest_age_s"] = (dt.datetime.now(dt.UTC) - oldest).total_seconds() if oldest else None
            data = {
                "tiles": [tile(m, counts.get(m["id"]), balances.get(m["id"])) for m in modems],
                "queue": queue,
                "sent_today": sum(v.get("sent", 0) for v in counts.values()),
                "failed_today": sum(v.get("failed", 0) for v in counts.values()),
                "ready": sum(1 for m in modems if m.get("state") == "ready" and m.get("enabled", True)),
                "at": dt.datetime.now(dt.UTC),
            }
            self._tiles = (now, data)
            return data

    async def stats(self) -> dict[str, Any]:
        """Charts, delivery figures and recent errors; recomputed at most every STATS_EVERY_S."""
        async with self._stats_lock:
            now = time.monotonic()
            if self._stats is not None and now - self._stats[0] < STATS_EVERY_S:
                return self._stats[1]
            q = self.q
            utc_now = dt.datetime.now(dt.UTC)
            epoch = int(utc_now.timestamp())
            sims = [m["id"] for m in await q.modems()]
            hour_start = (epoch // 60 - 59) * 60
            day_start = (epoch // 3600 - 23) * 3600
            hour_rows = await q.throughput(dt.datetime.fromtimestamp(hour_start, dt.UTC), 60)
            day_rows = await q.throughput(dt.datetime.fromtimestamp(day_start, dt.UTC), 3600)
            data = {
                "hour": _series(hour_rows, sims, hour_start, 60, 60),
                "day": _series(day_rows, sims, day_start, 3600, 24),
                "delivery_hour": await q.delivery(utc_now - dt.timedelta(hours=1)),
                "delivery_day": await q.delivery(utc_now - dt.timedelta(days=1)),
                "errors": await q.recent_errors(utc_now - dt.timedelta(days=1)),
                "at": utc_now,
            }
            self._stats = (now, data)
            return data


def sse(event: str, html: str) -> bytes:
    """One Server-Sent Event; every line of the fragment is a data: line."""
    lines = [f"event: {event}"] + [f"data: {line}" for line in html.splitlines() or [""]]
    return ("\n".join(lines) + "\n\n").encode()


__all__ = ["Live", "sse", "tile"]
