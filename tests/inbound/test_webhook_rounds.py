"""The webhook sender's rounds against a real SQLite store and a real receiver on 127.0.0.1:
a round whose fan-out queued no delivery (no receiver wants its events) does not look
for due deliveries; one that queued some delivers them in the same round."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from gsmgw.config import Config, WebhooksConfig, WebhookSubscription
from gsmgw.store import Store
from gsmgw.webhooks.sender import WebhookSender
from tests.helpers import until


async def test_events_no_receiver_wants_cost_no_claim_and_wanted_ones_are_delivered(tmp_path: Path) -> None:
    got: list[str] = []

    async def receive(request: web.Request) -> web.Response:
        got.append(request.headers["X-Gsmgw-Event"])
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/h", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]

    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    store.migrate()
    calls: list[str] = []
    real_call = store.call

    async def counting_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fn.__name__)
        return await real_call(fn, *args, **kwargs)

    store.call = counting_call  # type: ignore[method-assign]
    cfg = Config(webhooks=WebhooksConfig(subscription=(WebhookSubscription(f"http://127.0.0.1:{port}/h",
                                                                           ("modem:offline",)),)))
    sender = WebhookSender(cfg, store)
    try:
        await sender.start()
        await until(lambda: "claim_webhook_deliveries" in calls, "the first round's look at the outbox")
        await asyncio.sleep(0.2)
        calls.clear()
        # Read past, wanted by nobody: a fan-out and nothing more.
        await real_call(store.events.add_event, "modem:online", modem_id="sim1")
        await until(lambda: "webhook_fanout" in calls, "the round after the commit")
        await asyncio.sleep(0.3)
        assert calls.count("claim_webhook_deliveries") == 0, calls
        # Wanted: queued, claimed and delivered in the same round.
        await real_call(store.events.add_event, "modem:offline", modem_id="sim1")
        await until(lambda: store.webhooks.webhook_counts().get("delivered") == 1, "the delivery settled")
        assert got == ["modem:offline"]
        assert calls.count("claim_webhook_deliveries") == 1, calls
    finally:
        await sender.stop()
        store.close()
        await runner.cleanup()
