"""The inbox, opt-out, USSD/balance and webhook routes against a running gateway."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from urllib.parse import quote

from gsmgw.emulator import FakeModemPool
from tests.helpers import running_gateway
from tests.inbound.helpers import inbound_config, wait_until

CUSTOMER = "+447700900500"


async def test_reply_is_linked_to_the_conversation_and_inbox_filters_and_pages(tmp_path: Path) -> None:
    async with FakeModemPool(count=2, directory=tmp_path / "ports") as fake:
        cfg = inbound_config(tmp_path, [str(m.path) for m in fake.modems])
        async with running_gateway(cfg) as (gw, c):
            for sid in ("sim1", "sim2"):
                await gw.pool.slots[sid].driver.wait_ready(10)
            _, first = await c.request("POST", "/api/v1/messages", json={"to": CUSTOMER, "text": "a", "sim": "sim1"})
            await c.wait_state(first["id"], {"sent", "delivered"})
            _, last = await c.request("POST", "/api/v1/messages", json={"to": CUSTOMER, "text": "Confirm? Y/N",
                                                                          "sim": "sim2"})
            await c.wait_state(last["id"], {"sent", "delivered"})
            # The reply comes in on sim2 (the customer answers the number that wrote last).
            fake.modems[1].modem.inject_sms(CUSTOMER, "Y")
            fake.modems[0].modem.inject_sms("+447700900599", "unrelated")
            # A national rendering of the customer's number still finds the conversation.
            fake.modems[0].modem.inject_sms("07700900500", "also me")
            await wait_until(lambda: len(gw.store.inbound.list_inbound()) == 3, what="three inbound")
            status, body = await c.request("GET", f"/api/v1/inbox?from={quote(CUSTOMER)}")
            assert status == 200
            [reply] = body["items"]
            assert reply["in_reply_to"] == last["id"] and reply["sim"] == "sim2" and reply["text"] == "Y"
            status, body = await c.request("GET", "/api/v1/inbox?from=07700900500")
            assert [m["text"] for m in body["items"]] == ["also me"]  # stored as the network gave it
            by_text = {m["text"]: m for m in (await c.request("GET", "/api/v1/inbox"))[1]["items"]}
            assert by_text["also me"]["in_reply_to"] == first["id"]  # same SIM as the message it answers
            assert by_text["unrelated"]["in_reply_to"] is None
            status, body = await c.request("GET", "/api/v1/inbox?sim=sim1")
            assert {m["text"] for m in body["items"]} == {"unrelated", "also me"}
            # Cursor paging: newest first, no overlap, no gap.
            seen: list[str] = []
            cursor = None
            while True:
                path = "/api/v1/inbox?limit=1" + (f"&cursor={cursor}" if cursor else "")
                status, page = await c.request("GET", path)
                seen += [m["id"] for m in page["items"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen == sorted(seen, reverse=True) and len(set(seen)) == 3
            status, body = await c.request("GET", "/api/v1/inbox?since=2099-01-01T00:00:00Z")
            assert body["items"] == []
            for bad in ("complete=maybe", "since=yesterday", "limit=0", "from=%01"):
                status, body = await c.request("GET", f"/api/v1/inbox?{bad}")
                assert status == 422, (bad, body)
            status, _ = await c.request("GET", "/api/v1/inbox/nope")
            assert status == 404


async def test_optout_list_through_the_api(tmp_path: Path) -> None:
    cfg = inbound_config(tmp_path, [])
    async with running_gateway(cfg) as (gw, c):
        status, body = await c.request("POST", "/api/v1/optouts", json={"number": "+44 7700 900501", "note": "asked"})
        assert status == 201 and body == {"number": "+447700900501", "opted_out": True, "added": True}
        status, body = await c.request("POST", "/api/v1/optouts", json={"number": "+447700900501"})
        assert status == 200 and body["added"] is False
        status, body = await c.request("GET", "/api/v1/optouts/%2B447700900501")
        assert status == 200
        status, body = await c.request("POST", "/api/v1/messages", json={"to": "+447700900501", "text": "x"})
        assert status == 422 and body["error"]["code"] == "opted_out"
        for bad in ({"number": "12"}, {"number": "+447700900501", "colour": "red"}, {"note": "x"}):
            status, body = await c.request("POST", "/api/v1/optouts", json=bad)
            assert status == 422, bad
        status, lst = await c.request("GET", "/api/v1/optouts")
        assert lst["items"][0]["note"] == "asked" and lst["items"][0]["source"] == "api"
        # Lifting needs admin.
        _, send_only = await gw.store.call(gw.store.keys.create_api_key, "crm", ["send", "read"])
        status, body = await c.request("DELETE", "/api/v1/optouts/%2B447700900501", key=send_only)
        assert status == 403
        status, body = await c.request("DELETE", "/api/v1/optouts/%2B447700900501")
        assert status == 200 and body["opted_out"] is False
        status, body = await c.request("DELETE", "/api/v1/optouts/%2B447700900501")
        assert status == 404
        status, body = await c.request("POST", "/api/v1/messages", json={"to": "+447700900501", "text": "x"})
        assert status == 202


async def test_ussd_and_periodic_balance_check_with_low_balance_event(tmp_path: Path) -> None:
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        cfg = inbound_config(tmp_path, [str(m.path) for m in fake.modems], balance_ussd="*100#",
                             balance_low=20.0, balance_interval_s=3600.0)
        async with running_gateway(cfg) as (gw, c):
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            status, body = await c.request("POST", "/api/v1/modems/sim1/ussd", json={"code": "*100#"})
            assert status == 200, body
            assert body["text"] == fake.modems[0].modem.behaviour.ussd_reply
            status, body = await c.request("POST", "/api/v1/modems/sim9/ussd", json={"code": "*100#"})
            assert status == 404
            for bad in ({"code": 'AT"; +CMGD=1'}, {"code": ""}, {"code": "*100#", "timeout_s": 0}):
                status, body = await c.request("POST", "/api/v1/modems/sim1/ussd", json=bad)
                assert status == 422, bad
            status, body = await c.request("POST", "/api/v1/modems/sim1/ussd", json={"code": "*999#"})
            assert status == 502 and body["error"]["code"] == "ussd_failed"

            async def low_event() -> list[dict]:
                return await gw.store.call(gw.store.events.list_events, type_="balance:low")

            await wait_until(low_event, what="balance:low")
            [ev] = await low_event()
            assert ev["modem_id"] == "sim1"
            status, bal = await c.request("GET", "/api/v1/modems/sim1/balance")
            assert status == 200 and bal["value"] == 12.34
            _, read_only = await gw.store.call(gw.store.keys.create_api_key, "ro", ["read"])
            status, _ = await c.request("POST", "/api/v1/modems/sim1/ussd", json={"code": "*100#"}, key=read_only)
            assert status == 403


async def test_webhook_admin_routes_and_callback_url_host_check(tmp_path: Path) -> None:
    cfg = inbound_config(tmp_path, [], hook_url="http://127.0.0.1:9/hook", events=("sms:*",))
    cfg = dataclasses.replace(cfg, webhooks=dataclasses.replace(cfg.webhooks, allowed_hosts=("crm.lan",)))
    async with running_gateway(cfg) as (gw, c):
        status, body = await c.request("GET", "/api/v1/webhooks")
        assert status == 200
        assert body["subscriptions"] == [{"url": "http://127.0.0.1:9/hook", "events": ["sms:*"]}]
        assert body["signed"] is True and body["allowed_callback_hosts"] == ["crm.lan"]
        status, body = await c.request("POST", "/api/v1/messages", json={
            "to": "+447700900502", "text": "x", "callback_url": "http://evil.example/steal"})
        assert status == 422 and body["error"]["code"] == "callback_not_allowed"
        status, body = await c.request("POST", "/api/v1/messages", json={
            "to": "+447700900502", "text": "x", "callback_url": "http://crm.lan/cb"})
        assert status == 202
        assert (await c.request("DELETE", f"/api/v1/messages/{body['id']}"))[0] == 200
        status, body = await c.request("POST", "/api/v1/webhooks/deliveries/retry")
        assert status == 200 and body == {"requeued": 0}
        status, body = await c.request("GET", "/api/v1/events?type=sms:cancelled")
        assert status == 200 and len(body["items"]) == 1
        _, read_only = await gw.store.call(gw.store.keys.create_api_key, "ro", ["read"])
        status, _ = await c.request("GET", "/api/v1/webhooks", key=read_only)
        assert status == 403
