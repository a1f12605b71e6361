"""Inbound rules end to end over the emulator: an auto-reply loop between two SIMs is
cut by the rate limit kept in the store; matching order, stop, tags in the inbox API;
forwarding by e-mail (a real aiosmtpd server), signed webhook and the rule.mqtt event;
STOP/START never reach the rules."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

from gsmgw.config import EmailConfig, RuleConfig, SmtpOutConfig, WebhooksConfig
from gsmgw.emulator import FakeModemPool
from gsmgw.store import OutboxEvent
from tests.helpers import Client, make_config, running_gateway
from tests.inbound.conftest import SECRET, Receiver
from tests.inbound.helpers import wait_until
from tests.mail.conftest import MailServer


async def _inbox(c: Client) -> list[dict[str, Any]]:
    status, body = await c.request("GET", "/api/v1/inbox?limit=100")
    assert status == 200, body
    return list(body["items"])


async def test_an_auto_reply_loop_between_two_sims_is_cut_by_the_rate_limit(tmp_path: Path) -> None:
    async with FakeModemPool(count=2, directory=tmp_path / "ports", report_delay_s=0.01) as fake:
        n1, n2 = fake.modems[0].modem.number, fake.modems[1].modem.number
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
        # The worst case: a rule that answers everything, on both SIMs (two bots).
        rule = RuleConfig(name="autoreply", reply="Auto-reply to {sender}: we got \"{text}\"", reply_limit=1,
                          reply_window_s=3600.0)
        cfg = dataclasses.replace(cfg, rules=(rule,))
        async with running_gateway(cfg) as (gw, c):
            gw.rules.consumer.poll_interval_s = 0.02
            for sid in ("sim1", "sim2"):
                await gw.pool.slots[sid].driver.wait_ready(10)
            status, sent = await c.request("POST", "/api/v1/messages", json={"to": n2, "text": "hello", "sim": "sim1"})
            assert status == 202, sent

            async def limited() -> bool:
                runs = await gw.store.call(gw.store.rules.list_runs)
                return any(r["status"] == "limited" for r in runs)

            await wait_until(limited, timeout_s=30, what="the loop guard")
            # sim2 answered sim1 once, sim1 answered sim2 once, then the third reply was cut.
            await asyncio.sleep(0.5)  # nothing more comes
            outbound = await gw.store.call(gw.store.messages.list_messages, limit=100)
            inbound = await _inbox(c)
            assert len(outbound) == 3 and len(inbound) == 3
            replies = [m for m in outbound if m["door"] == "rules"]
            assert sorted((m["to_number"], m["sim_requested"]) for m in replies) == sorted([(n1, "sim2"), (n2, "sim1")])
            assert any(m["text"] == f'Auto-reply to {n1}: we got "hello"' for m in replies)
            runs = await gw.store.call(gw.store.rules.list_runs)
            assert sorted(r["status"] for r in runs if r["action"] == "reply") == ["limited", "sent", "sent"]
            assert gw.rules.limited_total == 1


async def test_order_stop_tags_and_forwards_by_email_webhook_and_mqtt(tmp_path: Path) -> None:
    mail = MailServer()
    await mail.up()
    hook = Receiver()
    await hook.start()
    try:
        async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
            cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
            rules = (
                RuleConfig(name="info", keyword="info", tag=("info",), email=("desk@example.com",),
                           webhook=hook.url, mqtt_topic="info/requests", stop=True),
                RuleConfig(name="order", regex=r"order (?P<n>\d+)", tag=("order",)),
                RuleConfig(name="vip", sender="+4477*", tag=("vip",)),
                RuleConfig(name="sim", sim="sim1", tag=("sim1",)),
                RuleConfig(name="never", sim="sim9", tag=("never",)),
            )
            cfg = dataclasses.replace(
                cfg, rules=rules,
                email=EmailConfig(smtp=SmtpOutConfig(host="127.0.0.1", port=mail.port, security="none",
                                                     from_address="gsmgw@gw.test", timeout_s=2.0),
                                  poll_interval_s=0.02, retry_initial_s=0.05, retry_max_s=0.2),
                webhooks=WebhooksConfig(signing_secret=SECRET, poll_interval_s=0.02, retry_initial_s=0.05,
                                        retry_max_s=0.2, timeout_s=2.0))
            async with running_gateway(cfg) as (gw, c):
                gw.rules.consumer.poll_interval_s = 0.02
                await gw.pool.slots["sim1"].driver.wait_ready(10)
                modem = fake.modems[0].modem
                modem.inject_sms("+447700900001", "INFO opening hours?")      # info, then stop
                modem.inject_sms("+447700900002", "where is my order 42")     # order, vip, sim1
                modem.inject_sms("+15550000003", "plain hello")               # sim1 only
                modem.inject_sms("+447700900004", "Stop")                      # opt-out: no rule sees it

                async def tagged() -> bool:
                    items = await _inbox(c)
                    return len(items) == 4 and sum(bool(i["tags"]) for i in items) == 3

                await wait_until(tagged, what="tags")
                by_from = {i["from"]: i for i in await _inbox(c)}
                assert by_from["+447700900001"]["tags"] == ["info"]
                assert by_from["+447700900002"]["tags"] == ["order", "vip", "sim1"]
                assert by_from["+15550000003"]["tags"] == ["sim1"]
                assert by_from["+447700900004"]["tags"] == []
                status, one = await c.request("GET", f"/api/v1/inbox/{by_from['+447700900001']['id']}")
                assert status == 200 and one["tags"] == ["info"]
                status, vip = await c.request("GET", "/api/v1/inbox?tag=vip")
                assert status == 200 and [i["from"] for i in vip["items"]] == ["+447700900002"]
                status, bad = await c.request("GET", "/api/v1/inbox?tag=no%20spaces")
                assert status == 422 and bad["error"]["code"] == "invalid_query", bad  # as the other query errors
                stop_id = by_from["+447700900004"]["id"]
                assert await gw.store.call(gw.store.rules.list_runs, inbound_id=stop_id) == []

                # The info rule's hand-offs: a mail, a signed webhook, a rule.mqtt event.
                [m] = await mail.wait_for(1)
                assert m.rcpt_tos == ["desk@example.com"]
                assert m.message["Subject"].startswith("[info] SMS from +447700900001 on sim1")
                assert "INFO opening hours?" in m.body
                await hook.wait_for(lambda: hook.of_type("rule.webhook"))
                [h] = hook.hits  # only the rule's event: the receiver subscribes to nothing
                assert h.signature_ok() and h.json["data"]["message"]["text"] == "INFO opening hours?"
                assert h.json["data"]["rule"] == "info"
                [ev] = await gw.store.call(gw.store.events.list_events, type_="rule.mqtt")
                payload = json.loads(ev["payload"])
                assert payload["topic"] == "info/requests"
                assert payload["message"]["id"] == by_from["+447700900001"]["id"]
                await asyncio.sleep(0.2)
                assert len(mail.received) == 1 and len(hook.hits) == 1
    finally:
        await mail.down()
        await hook.stop()


async def test_a_replayed_event_does_not_reply_tag_or_forward_twice_and_reload_adds_rules(tmp_path: Path) -> None:
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
        async with running_gateway(cfg) as (gw, c):
            assert gw.rules is None  # no [[rules]]: nothing runs
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            rule = RuleConfig(name="ack", keyword="ping", tag=("ping",), reply="pong {rest}", email=("a@example.com",))
            await gw.reload(dataclasses.replace(cfg, rules=(rule,)))  # what SIGHUP does
            assert gw.rules is not None
            gw.rules.consumer.poll_interval_s = 0.02
            fake.modems[0].modem.inject_sms("+15550001111", "PING 7")

            async def replied() -> bool:
                return bool(await gw.store.call(gw.store.messages.list_messages, limit=10))

            await wait_until(replied, what="the auto-reply")
            [ev] = [e for e in await gw.store.call(gw.store.events.list_events, type_="sms:received")]
            replay = OutboxEvent(id=ev["id"], type=ev["type"], message_id=ev["message_id"], modem_id=ev["modem_id"],
                                 payload=ev["payload"], created_at=ev["created_at"])
            await gw.rules.handle(replay)  # as after a crash before the cursor moved
            [reply] = await gw.store.call(gw.store.messages.list_messages, limit=10)
            assert reply["text"] == "pong 7" and reply["to_number"] == "+15550001111"
            assert len(await gw.store.call(gw.store.events.list_events, type_="rule.email")) == 1
            [item] = await _inbox(c)
            assert item["tags"] == ["ping"]
