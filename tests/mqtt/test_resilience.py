"""Inbound SMS exactly once on its topic (also across a gateway restart), a broker that
restarts, a gateway that starts while the broker is down, rule.mqtt, USSD and notify."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from gsmgw.daemon import Gateway
from gsmgw.emulator import FakeModemPool
from tests.mqtt.conftest import mqtt_config
from tests.mqtt.helpers import Mosquitto, free_port, recorder
from tests.mqtt.test_door import gateway, wait_ready

pytestmark = pytest.mark.mqtt


async def test_inbound_sms_arrives_once_also_across_a_gateway_restart(
        tmp_path: Path, broker: tuple[str, int], names: dict[str, str], store_url: str) -> None:
    base = names["base"]
    topic = f"{base}/events/sms/received"
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        cfg = mqtt_config(tmp_path, [str(m.path) for m in fake.modems], broker, names, store_url)
        async with recorder(*broker, f"{base}/#") as rec:
            async with gateway(cfg, tmp_path):
                await wait_ready(rec, base)
                fake.modems[0].modem.inject_sms("+447700900999", "Front door opened")
                first = await rec.wait_topic(topic)
                assert first["type"] == "sms:received"
                assert (first["data"]["from"], first["data"]["text"]) == ("+447700900999", "Front door opened")
                last = await rec.wait_topic(f"{base}/inbound/last")
                assert last["text"] == "Front door opened" and last["event_id"] == first["event_id"]
                ev = await rec.wait_topic(f"{base}/inbound/event")
                assert ev["event_type"] == "received"  # what HA's event entity needs
            # Stopped: an SMS arrives meanwhile and waits on the SIM.
            fake.modems[0].modem.inject_sms("+447700900998", "While you were away")
            async with gateway(cfg, tmp_path):
                await rec.wait(lambda m: m.topic == topic and m.json()["data"]["text"] == "While you were away")
                await asyncio.sleep(1.0)  # time for any repeat to show
        got = [m.json() for m in rec.on(topic)]
        assert [g["data"]["text"] for g in got] == ["Front door opened", "While you were away"]
        assert len({g["event_id"] for g in got}) == 2


async def test_gateway_survives_a_broker_restart_and_loses_no_event(
        tmp_path: Path, own_broker: Mosquitto, names: dict[str, str]) -> None:
    base, prefix = names["base"], names["prefix"]
    await own_broker.start()
    try:
        async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
            # The gateway retries every second, our recorder every 0.1 s: the recorder is
            # subscribed again before the gateway publishes the event it kept.
            cfg = mqtt_config(tmp_path, [str(m.path) for m in fake.modems], ("127.0.0.1", own_broker.port), names,
                              reconnect_initial_s=1.0, reconnect_max_s=1.0)
            async with gateway(cfg, tmp_path) as gw, \
                    recorder("127.0.0.1", own_broker.port, f"{base}/#", f"{prefix}/#") as rec:
                await wait_ready(rec, base)
                connects = gw.mqtt.connects
                await own_broker.kill()  # retained state is gone with it (no persistence)
                for _ in range(200):
                    if not gw.mqtt.status()["connected"]:
                        break
                    await asyncio.sleep(0.02)
                assert gw.mqtt.status()["connected"] is False
                # An SMS comes while the broker is down: the outbox keeps it.
                fake.modems[0].modem.inject_sms("+447700900997", "Broker was down")
                deadline = time.monotonic() + 10
                while not await gw.store.call(gw.store.inbound.list_inbound):
                    assert time.monotonic() < deadline, "the SMS was not received"
                    await asyncio.sleep(0.05)
                rec.messages.clear()
                await own_broker.start()  # the same port
                # The gateway reconnects by itself, says online and re-publishes everything.
                online = await rec.wait(lambda m: m.topic == f"{base}/status" and m.payload == b"online")
                assert online
                # 5 gateway + 4 SIM entities (no notify, no balance: their configs are cleared).
                await rec.wait(lambda m: m.topic.endswith("/config") and m.payload != b"", count=9)
                await rec.wait_topic(f"{base}/sim/sim1/state")
                got = await rec.wait(lambda m: m.topic == f"{base}/events/sms/received")
                assert got[0].json()["data"]["text"] == "Broker was down"
                assert gw.mqtt.connects == connects + 1
                await asyncio.sleep(0.5)
                assert len(rec.on(f"{base}/events/sms/received")) == 1
    finally:
        await own_broker.kill()


async def test_the_cursor_moves_only_after_the_broker_acknowledged(
        tmp_path: Path, own_broker: Mosquitto, names: dict[str, str]) -> None:
    """A broker that takes the publish but never answers (SIGSTOP): the event stays
    unconsumed in the outbox; once the broker answers it arrives, with its one event id."""
    base = names["base"]
    await own_broker.start()
    assert own_broker.proc is not None
    stopped = False
    try:
        async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
            cfg = mqtt_config(tmp_path, [str(m.path) for m in fake.modems], ("127.0.0.1", own_broker.port), names,
                              publish_timeout_s=0.5)
            async with gateway(cfg, tmp_path) as gw, \
                    recorder("127.0.0.1", own_broker.port, f"{base}/events/#") as rec:
                # Connected, everything published, and the outbox consumer running.
                deadline = time.monotonic() + 10
                # (The cursor exists from the door's start, before it connects.)
                while not (gw.mqtt.status()["connected"] and gw.mqtt._consumer is not None
                           and await gw.store.call(gw.store.events.cursor, gw.mqtt.consumer_name) is not None):
                    assert time.monotonic() < deadline, "the door did not connect"
                    await asyncio.sleep(0.02)
                os.kill(own_broker.proc.pid, signal.SIGSTOP)
                stopped = True
                fake.modems[0].modem.inject_sms("+447700900996", "Unacknowledged")
                deadline = time.monotonic() + 10
                while not (rows := await gw.store.call(gw.store.events.list_events, type_="sms:received")):
                    assert time.monotonic() < deadline, "the SMS was not received"
                    await asyncio.sleep(0.05)
                event_id = rows[0]["id"]
                # Publishes time out (0.5 s each) and are retried; none may move the cursor.
                failures = gw.mqtt.status()["event_failures"]
                deadline = time.monotonic() + 15
                while gw.mqtt.status()["event_failures"] < failures + 3:
                    assert time.monotonic() < deadline, "no publish attempt failed"
                    await asyncio.sleep(0.05)
                print("CHECK", event_id, await gw.store.call(gw.store.events.cursor, gw.mqtt.consumer_name), time.monotonic(), gw.mqtt.status())
                assert await gw.store.call(gw.store.events.cursor, gw.mqtt.consumer_name) < event_id
                os.kill(own_broker.proc.pid, signal.SIGCONT)
                stopped = False
                got = await rec.wait(lambda m: m.topic == f"{base}/events/sms/received")
                deadline = time.monotonic() + 10
                while await gw.store.call(gw.store.events.cursor, gw.mqtt.consumer_name) < event_id:
                    assert time.monotonic() < deadline, "the cursor did not move after the broker answered"
                    await asyncio.sleep(0.05)
                # At least once: repeats (publishes that timed out, then went through) carry the same id.
                assert {m.json()["event_id"] for m in got} == {event_id}
    finally:
        if stopped and own_broker.proc is not None:
            os.kill(own_broker.proc.pid, signal.SIGCONT)
        await own_broker.kill()


async def test_gateway_starts_and_serves_while_the_broker_is_down(
        tmp_path: Path, names: dict[str, str]) -> None:
    cfg = mqtt_config(tmp_path, [], ("127.0.0.1", free_port()), names)
    gw = Gateway(cfg, host="test-host")
    started = time.monotonic()
    await gw.start()
    try:
        assert time.monotonic() - started < 5
        async with aiohttp.ClientSession() as s, s.get(gw.base_url + "/healthz") as r:
            assert r.status == 200
        await asyncio.sleep(0.5)  # a few reconnect attempts (backoff 0.1 s .. 0.5 s)
        st = gw.mqtt.status()
        assert st["connected"] is False and st["connects"] == 0 and st["last_error"]
        # /readyz still says ready (SMS go out) and names the broker as the problem.
        async with aiohttp.ClientSession() as s, s.get(gw.base_url + "/readyz") as r:
            body = await r.json()
            assert r.status == 200 and body["readiness"] == "degraded"
            assert any(x.startswith("mqtt: not connected to mqtt://127.0.0.1:") for x in body["reasons"]), body
    finally:
        await gw.stop()


async def test_rule_mqtt_events_go_to_their_subtopic_and_unsafe_ones_are_skipped(
        tmp_path: Path, broker: tuple[str, int], names: dict[str, str]) -> None:
    base = names["base"]
    cfg = mqtt_config(tmp_path, [], broker, names)
    async with gateway(cfg, tmp_path) as gw, recorder(*broker, f"{base}/#") as rec:
        await rec.wait_topic(f"{base}/gateway/state")
        message = {"id": "in1", "from": "+447700900999", "text": "ALARM", "sim": "sim1"}
        for topic in ("/abs", "a/#", "+", "", "alerts/door"):
            # The rules helper writes these with EventType.RULE_MQTT ("rule.mqtt").
            await gw.store.call(gw.store.events.add_event, "rule.mqtt",
                                payload={"topic": topic, "message": message})
        got = await rec.wait_topic(f"{base}/rules/alerts/door")
        assert got == message
        await asyncio.sleep(0.3)
        rule_topics = {m.topic for m in rec.messages if "/rules" in m.topic or "abs" in m.topic}
        assert rule_topics == {f"{base}/rules/alerts/door"}


async def test_ussd_command_replies_and_the_reply_is_an_event(
        tmp_path: Path, broker: tuple[str, int], names: dict[str, str]) -> None:
    base = names["base"]
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        cfg = mqtt_config(tmp_path, [str(m.path) for m in fake.modems], broker, names, commands=True)
        async with gateway(cfg, tmp_path), recorder(*broker, f"{base}/#") as rec:
            await wait_ready(rec, base)
            await rec.publish(f"{base}/ussd", json.dumps({"id": "u1", "sim": "sim1", "code": "*100#"}))
            reply = await rec.wait_topic(f"{base}/ussd/response", lambda j: j["id"] == "u1")
            assert reply["ok"] is True and reply["text"], reply
            ev = await rec.wait_topic(f"{base}/events/ussd/reply")
            assert ev["type"] == "ussd:reply" and ev["data"]["reply"] == reply["text"]
            assert ev["data"]["sim"] == "sim1" and ev["data"]["code"] == "*100#"


async def test_notify_entity_text_goes_to_the_admins_numbers(
        tmp_path: Path, broker: tuple[str, int], names: dict[str, str]) -> None:
    base = names["base"]
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        cfg = mqtt_config(tmp_path, [str(m.path) for m in fake.modems], broker, names, commands=True,
                          notify_to=("+447700900123", "+447700900124"))
        async with gateway(cfg, tmp_path) as gw, recorder(*broker, f"{base}/#") as rec:
            await wait_ready(rec, base)
            # What Home Assistant's notify.send_message publishes: the message text as is.
            await rec.publish(f"{base}/notify", "Washing machine done ✓".encode())
            reply = await rec.wait_topic(f"{base}/notify/response")
            assert reply["ok"] is True and sorted(m["to"] for m in reply["messages"]) == [
                "+447700900123", "+447700900124"]
            for m in reply["messages"]:
                await rec.wait_topic(f"{base}/events/sms/delivered", lambda j, m=m: j["data"]["message_id"] == m["id"])
            rows = await gw.store.call(gw.store.messages.list_messages, limit=10)
            assert {r["text"] for r in rows} == {"Washing machine done ✓"}


async def test_mqtt_changes_wait_for_a_restart_and_no_url_starts_no_door(
        tmp_path: Path, names: dict[str, str]) -> None:
    cfg = mqtt_config(tmp_path, [], ("127.0.0.1", free_port()), names)
    gw = Gateway(cfg, host="test-host")
    await gw.start()
    try:
        door = gw.mqtt
        await gw.reload(dataclasses.replace(cfg, mqtt=dataclasses.replace(cfg.mqtt, base_topic="elsewhere")))
        assert gw.cfg.mqtt.base_topic == names["base"] and gw.mqtt is door
    finally:
        await gw.stop()
    cfg = dataclasses.replace(cfg, mqtt=dataclasses.replace(cfg.mqtt, url=""))
    gw = Gateway(cfg, host="test-host")
    await gw.start()
    try:
        assert gw.mqtt is None
    finally:
        await gw.stop()


async def test_an_inbound_rule_with_an_mqtt_action_publishes_under_rules(
        tmp_path: Path, broker: tuple[str, int], names: dict[str, str]) -> None:
    from gsmgw.config import RuleConfig

    base = names["base"]
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        cfg = mqtt_config(tmp_path, [str(m.path) for m in fake.modems], broker, names)
        cfg = dataclasses.replace(cfg, rules=(RuleConfig(name="alarm", keyword="alarm", mqtt_topic="alerts/door"),))
        async with gateway(cfg, tmp_path), recorder(*broker, f"{base}/#") as rec:
            await wait_ready(rec, base)
            fake.modems[0].modem.inject_sms("+447700900995", "hello")
            fake.modems[0].modem.inject_sms("+447700900995", "ALARM front door")
            got = await rec.wait_topic(f"{base}/rules/alerts/door")
            assert (got["from"], got["text"]) == ("+447700900995", "ALARM front door")
            await rec.wait(lambda m: m.topic == f"{base}/events/sms/received", count=2)
            assert len(rec.on(f"{base}/rules/alerts/door")) == 1
