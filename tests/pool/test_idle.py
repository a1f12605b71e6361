"""Idle pool (issue 17): workers with nothing to send do not poll the store; the
pool's one periodic read looks for them and wakes them when a message becomes due."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from typing import Any

from gsmgw.domain import MessageState
from gsmgw.store import NewMessage
from tests.pool.test_pool import Harness, config, harness, modem, start_pool, until

__all__ = ["harness", "start_pool"]  # the fixtures, used by name


def count_calls(obj: Any, name: str) -> list[int]:
    """Count calls of a store method (kept batchable: the executor reads the mark)."""
    calls = [0]
    real = getattr(obj, name)

    @functools.wraps(real)
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(*args, **kwargs)

    setattr(obj, name, counted)
    return calls


async def test_idle_workers_do_not_poll_the_store(harness: Harness, start_pool: Any) -> None:
    claims = count_calls(harness.store.claims, "claim_next")
    due = count_calls(harness.store.messages, "pending_work")
    pool = await start_pool(config(*(modem(f"sim{i}") for i in range(1, 5))))  # poll_interval_s 0.05
    await until(lambda: all(s.driver.state.value == "ready" for s in pool.slots.values()), "modems ready")
    await until(lambda: claims[0] >= 4, "each worker's first look")
    await asyncio.sleep(0.2)
    before = claims[0]
    await asyncio.sleep(1.0)
    # Before issue 17 each of the 4 workers claimed every 0.05 s: about 80 claims here.
    assert claims[0] - before == 0, claims[0] - before
    assert due[0] >= 5  # the pool's one periodic read did look, about every 0.05 s


async def test_a_scheduled_message_is_sent_once_due_without_any_wake_up(harness: Harness, start_pool: Any) -> None:
    pool = await start_pool(config(modem("sim1"), modem("sim2")))
    await until(lambda: all(s.driver.state.value == "ready" for s in pool.slots.values()), "modems ready")
    await asyncio.sleep(0.2)  # the workers found nothing and wait
    # Queued straight into the store (no notify_work), due in 0.3 s.
    res = await harness.store.call(harness.store.messages.enqueue, [NewMessage(
        "+15551239999", "later", "gsm7", 1, send_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.3))])
    [mid] = res.message_ids
    msg = await harness.wait_state(mid, {MessageState.SENT.value}, timeout_s=5.0)
    assert msg["sent_at"] >= msg["send_at"]
