"""Every door goes through the one intake service: each message records the door
that took it, and the door's own data (Kannel's DLR request, the Android app's
message id) is a column of its own, not text in callback_url."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from gsmgw.config import WebhooksConfig
from tests.helpers import make_config, running_gateway


async def test_each_door_records_itself_and_its_data(tmp_path: Path) -> None:
    cfg = dataclasses.replace(make_config(tmp_path), webhooks=WebhooksConfig(allowed_hosts=("127.0.0.1",)))
    async with running_gateway(cfg) as (gw, c):
        status, native = await c.request("POST", "/api/v1/messages", json={"to": "+15551234567", "text": "a"})
        assert status == 202
        status, android = await c.request("POST", "/message", json={
            "id": "app-1", "phoneNumbers": ["+15551234568", "+15551234569"], "textMessage": {"text": "b"}})
        assert status == 202
        params = {"username": "ops", "password": c.key, "to": "+15551234570", "text": "c", "dlr-mask": "3",
                  "dlr-url": "http://127.0.0.1:9/dlr?t=%d"}
        async with c.session.get(c.base + "/cgi-bin/sendsms", params=params) as r:
            assert r.status == 202, await r.text()
        rows = {r["to_number"]: r for r in [await gw.store.call(gw.store.messages.get_message, m["id"])
                                            for m in (await c.request("GET", "/api/v1/messages"))[1]["items"]]}
        assert rows["+15551234567"]["door"] == "api" and rows["+15551234567"]["door_data"] is None
        for n in ("+15551234568", "+15551234569"):  # every row of the batch knows the app's id
            assert rows[n]["door"] == "android" and json.loads(rows[n]["door_data"]) == {"id": "app-1"}
        kannel = rows["+15551234570"]
        assert kannel["door"] == "kannel" and kannel["callback_url"] is None
        dlr = json.loads(kannel["door_data"])
        assert (dlr["mask"], dlr["url"], dlr["user"], dlr["host"]) == (3, params["dlr-url"], "ops", gw.host)
        assert native["messages"][0]["id"] in {r["id"] for r in rows.values()} and android["id"] == "app-1"
