"""One modem as the pool holds it: its config, driver, limiter and send state."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from gsmgw.config import ModemConfig
from gsmgw.pool.driver import Driver
from gsmgw.pool.limits import SimLimiter


@dataclass
class ModemSlot:
    cfg: ModemConfig
    driver: Driver
    limiter: SimLimiter
    enabled: bool
    # The port the driver uses now (found by discovery for imei/iccid modems).
    port: str = ""
    driver_task: asyncio.Task[None] | None = None
    # When the driver was last seen not READY (monotonic), for re-discovery.
    down_since: float | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Set whenever the worker holds no claim; shutdown and reload wait on it.
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # The message on the air, and the next one, claimed and encoded meanwhile:
    # maintenance renews both leases so a long send is never taken for a dead host's.
    claim_id: str | None = None
    next_claim_id: str | None = None
    resting_until: float = 0.0
    # Unknown outcomes and modem-class errors in a row; reset by a good send.
    consecutive_failures: int = 0
    sent_parts: int = 0
    failed_parts: int = 0
    last_error: str = ""
    state_reason: str = ""
    storage_used: int | None = None
    storage_total: int | None = None
    # When the send on the air is due to answer (pool clock), from this modem's recent
    # time per part; None when nothing is on the air or no send has been timed yet.
    # Background work (the prune) starts its batches between these.
    send_due: float | None = None
    part_time_s: float | None = None  # smoothed seconds per part written, last sends

    @property
    def id(self) -> str:
        return self.cfg.id

    @property
    def busy(self) -> bool:
        """The worker holds a claim (a send may be on the air)."""
        return not self.idle.is_set()


__all__ = ["ModemSlot"]
