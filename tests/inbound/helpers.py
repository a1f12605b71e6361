"""Gateway configs with webhooks and fast inbound timings."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from gsmgw.config import Config, InboundConfig, WebhooksConfig, WebhookSubscription
from tests.helpers import make_config
from tests.inbound.conftest import SECRET


def inbound_config(tmp_path: Path, ports: list[str], *, hook_url: str | None = None,
                   events: tuple[str, ...] = ("*",), webhooks: dict[str, Any] | None = None,
                   **inbound: Any) -> Config:
    cfg = make_config(tmp_path, ports)
    subs = (WebhookSubscription(hook_url, events),) if hook_url else ()
    w = WebhooksConfig(subscription=subs, signing_secret=SECRET, retry_initial_s=0.05, retry_max_s=0.2,
                       poll_interval_s=0.02, timeout_s=2.0, **(webhooks or {}))
    i = InboundConfig(**{"sweep_interval_s": 5.0, "reassembly_timeout_s": 30.0, **inbound})
    return dataclasses.replace(cfg, webhooks=w, inbound=i)


async def wait_until(pred: Any, timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        value = pred()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached after {timeout_s} s")
        await asyncio.sleep(0.01)
