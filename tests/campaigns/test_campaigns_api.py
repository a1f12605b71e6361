"""Campaigns through the API on a real gateway with emulated modems: a missing
template variable is reported before anything is sent, opted-out contacts are
skipped (counted), campaign messages go after transactional ones, cancel takes
back what is still queued, another key cannot see or touch a campaign, and the
runner never queues more than the window."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

from gsmgw.campaigns import idempotency_key
from gsmgw.config import CampaignsConfig
from gsmgw.emulator import Behaviour, FakeModemPool
from tests.helpers import Client, make_config, running_gateway

PARTS = ("queued", "sent", "delivered", "failed", "opted_out", "cancelled", "pending")


async def _import(c: Client, rows: list[str], group: str) -> dict[str, Any]:
    status, body = await c.request("POST", f"/api/v1/contacts/import?group={group}",
                                   data=("number,name,city\n" + "\n".join(rows)).encode(),
                                   headers={"Content-Type": "text/csv"})
    assert status == 200, body
    return body


async def _progress(c: Client, cid: str) -> dict[str, Any]:
    status, body = await c.request("GET", f"/api/v1/campaigns/{cid}")
    assert status == 200, body
    p = body["progress"]
    assert sum(p[k] for k in PARTS) == p["total"], p
    return {**p, "state": body["state"]}


async def _wait(c: Client, cid: str, pred: Any, timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        p = await _progress(c, cid)
        if pred(p):
            return p
        assert time.monotonic() < deadline, p
        await asyncio.sleep(0.05)


async def test_missing_variable_is_reported_before_start_and_nothing_is_sent(tmp_path: Path) -> None:
    async with running_gateway(make_config(tmp_path)) as (gw, c):
        await _import(c, ["+15550100001,Ann,Oslo", "+15550100002,Bob,", "+15550100003,,Rome"], "g")
        status, camp = await c.request("POST", "/api/v1/campaigns", json={
            "name": "x", "template": "Hi {name} from {city}", "group": "g"})
        assert status == 201 and camp["state"] == "draft", camp
        status, v = await c.request("POST", f"/api/v1/campaigns/{camp['id']}/validate")
        assert status == 200 and not v["ok"] and v["missing_count"] == 2 and v["recipients"] == 3
        assert {(m["number"], tuple(m["variables"])) for m in v["missing"]} == {
            ("+15550100002", ("city",)), ("+15550100003", ("name",))}
        status, err = await c.request("POST", f"/api/v1/campaigns/{camp['id']}/start")
        assert status == 422 and err["error"]["code"] == "missing_variable", err
        assert "2 of 3" in err["error"]["message"]
        status, body = await c.request("GET", f"/api/v1/campaigns/{camp['id']}")
        assert body["state"] == "draft"
        assert await gw.store.call(gw.store.messages.queue_depth) == 0
        # Bad bodies: a clear 422, never a 500.
        for bad, code in [({"name": "x", "template": "t"}, "invalid_target"),
                          ({"name": "x", "template": "t", "group": "nope"}, "unknown_group"),
                          ({"name": "x", "template": "t", "group": "g", "priority": 0}, "invalid_field"),
                          ({"name": "x", "template": "t", "group": "g", "tag": "a"}, "invalid_target"),
                          ({"name": "x", "template": "t", "group": "g", "start_at": "soon"}, "invalid_time"),
                          ({"name": "x", "template": "", "group": "g"}, "invalid_text")]:
            status, err = await c.request("POST", "/api/v1/campaigns", json=bad)
            assert status == 422 and err["error"]["code"] == code, (bad, err)


async def test_opt_outs_skipped_priority_below_transactional_window_and_cancel(tmp_path: Path) -> None:
    async with FakeModemPool(count=1, directory=tmp_path / "ports",
                             behaviours=Behaviour(send_latency_s=0.05)) as fake:
        cfg = dataclasses.replace(make_config(tmp_path, [str(m.path) for m in fake.modems]),
                                  campaigns=CampaignsConfig(poll_interval_s=0.02))
        async with running_gateway(cfg) as (gw, c):
            numbers = [f"+1555020{i:04d}" for i in range(40)]
            # The opted-out ones first: recipients go in contact order.
            await _import(c, [f"{n},N{i},C" for i, n in enumerate(numbers[:3])], "all")
            await asyncio.sleep(0.01)
            await _import(c, [f"{n},N{i},C" for i, n in enumerate(numbers[3:])], "all")
            for n in numbers[:3]:
                assert (await c.request("POST", "/api/v1/optouts", json={"number": n}))[0] == 201
            status, camp = await c.request("POST", "/api/v1/campaigns", json={
                "name": "w", "template": "Hello {name}", "group": "all", "window": 5})
            cid = camp["id"]
            status, body = await c.request("POST", f"/api/v1/campaigns/{cid}/start")
            assert status == 200 and body["state"] == "running"
            p = await _wait(c, cid, lambda p: p["sent"] + p["delivered"] >= 3)
            assert p["opted_out"] == 3 and p["queued"] <= 5, p
            await _wait(c, cid, lambda p: p["queued"] >= 4)
            # A normal message goes before the campaign's queued ones.
            status, sent = await c.request("POST", "/api/v1/messages", json={"to": "+15550999999", "text": "otp"})
            assert status == 202
            await c.wait_state(sent["id"], {"sent", "delivered"})
            normal = await gw.store.call(gw.store.messages.get_message, sent["id"])
            rows = await gw.store.call(gw.store.messages.list_messages, limit=100)
            ahead = [m for m in rows if m.get("campaign_id") == cid and m["created_at"] < normal["created_at"]
                     and (m["sent_at"] is None or m["sent_at"] > normal["sent_at"])]
            assert ahead, [(m["created_at"], m["sent_at"], m["state"], m["priority"]) for m in rows[:12]]
            # At most the window in the queue, at every look.
            for _ in range(10):
                assert (await _progress(c, cid))["queued"] <= 5
                await asyncio.sleep(0.02)
            status, body = await c.request("POST", f"/api/v1/campaigns/{cid}/cancel")
            assert status == 200 and body["state"] == "cancelled"
            p = await _wait(c, cid, lambda p: p["queued"] == 0)
            assert p["cancelled"] > 0 and p["pending"] == 0 and p["state"] == "cancelled", p
            on_air = sum(len(m.modem.sent) for m in fake.modems) - 1
            assert on_air == p["sent"] + p["delivered"] + p["failed"], (on_air, p)
            # Cancel, pause or resume a cancelled campaign: a conflict, said so.
            status, err = await c.request("POST", f"/api/v1/campaigns/{cid}/resume")
            assert status == 409 and err["error"]["code"] == "invalid_state"
            status, _ = await c.request("POST", f"/api/v1/campaigns/{cid}/cancel")
            assert status == 200
            # Each message was submitted under the recipient's idempotency key.
            rows = await gw.store.call(gw.store.campaigns.recipients, cid, limit=100, state="submitted")
            msg = await gw.store.call(gw.store.messages.get_message, rows[0]["message_id"])
            assert msg["idempotency_key"] == idempotency_key(cid, rows[0]["contact_id"])
            assert msg["door"] == "campaign" and msg["priority"] == -5


async def test_another_key_cannot_see_or_touch_a_campaign(tmp_path: Path) -> None:
    async with running_gateway(make_config(tmp_path), scopes=("send", "read")) as (gw, c):
        await _import(c, ["+15550100001,Ann,Oslo"], "g")
        status, camp = await c.request("POST", "/api/v1/campaigns", json={"name": "x", "template": "Hi", "group": "g"})
        _, other = await gw.store.call(gw.store.keys.create_api_key, "other", ["send", "read"])
        _, reader = await gw.store.call(gw.store.keys.create_api_key, "reader", ["read"])
        for method, path in [("GET", ""), ("POST", "/start"), ("POST", "/pause"), ("POST", "/cancel"),
                             ("DELETE", ""), ("GET", "/recipients")]:
            status, _ = await c.request(method, f"/api/v1/campaigns/{camp['id']}{path}", key=other)
            assert status == 404, (method, path)
        status, body = await c.request("GET", "/api/v1/campaigns", key=other)
        assert status == 200 and body["items"] == []
        status, _ = await c.request("POST", f"/api/v1/campaigns/{camp['id']}/start", key=reader)
        assert status == 403
        status, _ = await c.request("POST", "/api/v1/contacts", json={"number": "+15550100009"}, key=reader)
        assert status == 403


async def test_contacts_and_groups_crud(tmp_path: Path) -> None:
    async with running_gateway(make_config(tmp_path)) as (_gw, c):
        status, ann = await c.request("POST", "/api/v1/contacts", json={
            "number": "(555) 010-0001", "name": "Ann", "fields": {"city": "Oslo", "n": 3}, "tags": ["vip"],
            "groups": ["a"]})
        assert status == 201 and ann["number"] == "+15550100001" and ann["fields"] == {"city": "Oslo", "n": "3"}
        status, err = await c.request("POST", "/api/v1/contacts", json={"number": "+15550100001"})
        assert status == 409 and err["error"]["code"] == "duplicate_contact"
        status, err = await c.request("POST", "/api/v1/contacts", json={"number": "hello"})
        assert status == 422 and err["error"]["code"] == "invalid_number"
        status, err = await c.request("POST", "/api/v1/contacts", json={"number": "+15550100002",
                                                                        "fields": {"bad name": "x"}})
        assert status == 422
        status, body = await c.request("PATCH", f"/api/v1/contacts/{ann['id']}", json={"tags": [], "name": "A"})
        assert status == 200 and body["tags"] == [] and body["name"] == "A" and body["groups"] == ["a"]
        status, g = await c.request("POST", "/api/v1/groups", json={"name": "b"})
        assert status == 201
        status, body = await c.request("POST", f"/api/v1/groups/{g['id']}/members",
                                       json={"contacts": [ann["id"], "0" * 24]})
        assert status == 200 and body == {"added": 1}
        status, body = await c.request("GET", f"/api/v1/contacts?group={g['id']}")
        assert [x["id"] for x in body["items"]] == [ann["id"]]
        status, body = await c.request("GET", "/api/v1/groups")
        assert {x["name"]: x["members"] for x in body["items"]} == {"a": 1, "b": 1}
        status, err = await c.request("PATCH", f"/api/v1/groups/{g['id']}", json={"name": "a"})
        assert status == 409
        status, _ = await c.request("DELETE", f"/api/v1/groups/{g['id']}")
        assert status == 200
        async with c.session.get(c.base + "/api/v1/contacts/export",
                                 headers={"Authorization": f"Bearer {c.key}"}) as r:
            assert r.status == 200 and r.content_type == "text/csv"
            text = await r.text()
        assert text.splitlines()[1].startswith("+15550100001,A,a,,,")
        status, _ = await c.request("DELETE", f"/api/v1/contacts/{ann['id']}")
        assert status == 200
        status, _ = await c.request("GET", f"/api/v1/contacts/{ann['id']}")
        assert status == 404


async def test_an_idle_runner_sleeps_until_the_next_scheduled_start_and_then_feeds_it(tmp_path: Path) -> None:
    """With nothing running the runner does not poll every poll_interval_s: it waits up
    to IDLE_WAIT_S, or until the earliest scheduled start_at, and starts that campaign then."""
    import datetime as dt

    from gsmgw.campaigns.runner import IDLE_WAIT_S

    async with running_gateway(make_config(tmp_path)) as (gw, c):
        runner = gw.campaigns
        await runner.run_once()
        assert await runner.next_wait_s() == IDLE_WAIT_S  # nothing running, nothing scheduled
        await _import(c, ["+15550100001,Ann,Oslo", "+15550100002,Bob,Rome"], "g")
        start_at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)).isoformat()
        status, camp = await c.request("POST", "/api/v1/campaigns", json={
            "name": "later", "template": "Hi {name}", "group": "g", "start_at": start_at})
        assert status == 201, camp
        status, started = await c.request("POST", f"/api/v1/campaigns/{camp['id']}/start")
        assert status == 200 and started["state"] == "scheduled", started
        assert 0.25 <= await runner.next_wait_s() <= 1.5
        p = await _wait(c, camp["id"], lambda p: p["queued"] + p["sent"] + p["delivered"] == 2, timeout_s=15.0)
        assert p["state"] in ("running", "completed"), p
