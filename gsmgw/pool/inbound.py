"""Inbound SMS: indications and sweeps → decode → reassemble → commit → delete."""

from __future__ import annotations

from typing import Any


class InboundProcessor:
    """Created by the pool; receives every driver event the pool does not consume itself."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def on_modem_ready(self, slot: Any) -> None:
        return None

    def on_event(self, slot: Any, ev: Any) -> None:
        return None
