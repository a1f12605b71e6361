"""The MQTT door against a real Mosquitto and a gateway on emulated modems (real ptys)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gsmgw.config import Config
from gsmgw.daemon import Gateway
from gsmgw.emulator import FakeModemPool
from tests.mqtt.conftest import mqtt_config
from tests.mqtt.ha_schema import validate
from tests.mqtt.helpers import Recorder, recorder

pytestmark = pytest.mark.mqtt


@asynccontextmanager
async def gateway(cfg: Config, tmp_path: Path, scopes: tuple[str, ...] = ("send", "read", "admin"),
                  ) -> AsyncIterator[Gateway]:
    gw = Gateway(cfg, host="test-host")
    await gw.start()
    try:
        if not (tmp_path / "mqtt.key").exists():
            _, key = await gw.store.call(gw.store.keys.create_api_key, "mqtt", list(scopes))
            (tmp_path / "mqtt.key").write_text(key + "\n")
        yield gw
    finally:
        await gw.stop()


def configs(rec: Recorder, prefix: str) -> dict[str, bytes]:
    """The latest discovery config per topic."""
    out: dict[str, bytes] = {}
    for m in rec.messages:
        if m.topic.startswith(prefix + "/") and m.topic.endswith("/config"):
            out[m.topic] = m.payload
    return out


async def wait_ready(rec: Recorder, base: str, sim: str = "sim1") -> dict[str, Any]:
    return await rec.wait_topic(f"{base}/sim/{sim}/state", lambda j: j["state"] == "ready")


async def test_retained_state_and_discovery_valid_for_home_assistant(
        tmp_path: Path, broker: tuple[str, int], names: dict[str, str]) -> None:
    base, prefix = names["base"], names["prefix"]
    async with FakeModemPool(count=2, directory=tmp_path / "ports") as fake:
        cfg = mqtt_config(tmp_path, [str(m.path) for m in fake.modems], broker, names, commands=True,
                          notify_to=("+447700900123",))
        cfg = dataclasses.replace(cfg, inbound=dataclasses.replace(cfg.inbound, balance_ussd="*100#"))
        async with gateway(cfg, tmp_path) as gw, recorder(*broker, f"{base}/#") as live:
            await wait_ready(live, base, "sim1")
            await wait_ready(live, base, "sim2")
            # The balance check's answer reaches the SIM's state (and its Balance sensor).
            await live.wait_topic(f"{base}/sim/sim1/state", lambda j: j["balance"] is not None)
            assert gw.mqtt.status()["connected"] is True
            # A client that connects now gets the retained state at once.
            async with recorder(*broker, f"{base}/#", f"{prefix}/#") as late:
                await late.wait(lambda m: m.topic.endswith("/config"), count=16)
                await late.wait_topic(f"{base}/gateway/state")
                (avail,) = {m.payload for m in late.on(f"{base}/status") if m.retain}
                assert avail == b"online"
                sim1 = next(m for m in late.on(f"{base}/sim/sim1/state") if m.retain).json()
                assert sim1["state"] == "ready" and sim1["operator"] and sim1["signal_dbm"] is not None
                assert isinstance(sim1["balance"], float) and sim1["balance_text"]
                assert -113 <= sim1["signal_dbm"] <= -51
                assert {"registration", "sent_today", "failed_today", "balance", "sent_parts"} <= set(sim1)
                gws = next(m for m in late.on(f"{base}/gateway/state") if m.retain).json()
                assert gws["sims_total"] == 2 and gws["host"] == "test-host" and gws["commands"] is True
                assert gws["queue_depth"] == 0
                docs = validate(configs(late, prefix), prefix, base)
                comps = sorted(t.split("/")[1] for t in docs)
                # Per SIM: signal, operator, state, sent today, balance; the gateway: status, queue,
                # SIMs ready, last SMS (sensor) + SMS received (event), Send SMS (notify).
                assert comps.count("sensor") == 2 * 5 + 4 and comps.count("event") == 1
                assert comps.count("notify") == 1
                by_uid = {p["unique_id"]: p for p in docs.values()}
                node = base.replace("/", "_")
                sig = by_uid[f"{node}_sim_sim1_signal"]
                assert sig["state_topic"] == f"{base}/sim/sim1/state"
                assert sig["device_class"] == "signal_strength" and sig["unit_of_measurement"] == "dBm"
                assert sig["availability"] == [{"topic": f"{base}/status", "payload_available": "online",
                                                "payload_not_available": "offline"}]
                assert sig["device"]["identifiers"] == [f"{node}_sim_sim1"]
                assert sig["device"]["via_device"] == f"{node}_gateway"
                bal = by_uid[f"{node}_sim_sim2_balance"]
                assert bal["value_template"] == "{{ value_json.balance }}"
                notify = by_uid[f"{node}_send_sms"]
                assert notify["command_topic"] == f"{base}/notify"
                assert notify["default_entity_id"] == f"notify.{node}_send_sms"
        # A clean stop says offline (retained).
        async with recorder(*broker, f"{base}/status") as after:
            await after.wait(lambda m: m.retain and m.payload == b"offline")


async def test_send_command_reaches_delivered_with_response_topic_and_correlation(
        tmp_path: Path, broker: tuple[str, int], names: dict[str, str], store_url: str) -> None:
    base = names["base"]
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        cfg = mqtt_config(tmp_path, [str(m.path) for m in fake.modems], broker, names, store_url, commands=True)
        async with gateway(cfg, tmp_path) as gw, recorder(*broker, f"{base}/#") as rec:
            await wait_ready(rec, base)
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = f"{base}/replies/me"
            props.CorrelationData = b"corr-42"
            await rec.publish(f"{base}/send", json.dumps({"to": "+447700900123", "text": "Hello over MQTT"}),
                              properties=props)
            (reply_msg,) = await rec.wait(lambda m: m.topic == f"{base}/replies/me")
            reply = reply_msg.json()
            assert reply["ok"] is True and reply["state"] == "queued", reply
            assert reply_msg.properties.CorrelationData == b"corr-42"
            mid = reply["message_id"]
            delivered = await rec.wait_topic(f"{base}/events/sms/delivered", lambda j: j["data"]["message_id"] == mid)
            sent = await rec.wait_topic(f"{base}/events/sms/sent", lambda j: j["data"]["message_id"] == mid)
            assert delivered["type"] == "sms:delivered" and delivered["data"]["to"] == "+447700900123"
            # The same stable ids as the outbox (webhooks send these).
            events = await gw.store.call(gw.store.events.list_events, limit=50)
            ids = {e["type"]: e["id"] for e in events if e["message_id"] == mid}
            assert (sent["event_id"], delivered["event_id"]) == (ids["sms:sent"], ids["sms:delivered"])
            row = await gw.store.call(gw.store.messages.get_message, mid)
            assert row["state"] == "delivered" and row["door"] == "mqtt"
            # Without MQTT 5 properties: the reply on {base}/send/response with the client's id.
            await rec.publish(f"{base}/send", json.dumps({"id": "abc", "to": "+447700900124", "text": "two"}))
            reply2 = await rec.wait_topic(f"{base}/send/response", lambda j: j["id"] == "abc")
            assert reply2["ok"] is True and reply2["messages"][0]["to"] == "+447700900124"
            # A response topic outside the base topic is not honoured.
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = f"{names['prefix']}/elsewhere"
            await rec.publish(f"{base}/send", json.dumps({"id": 3, "to": "+447700900125", "text": "x"}),
                              properties=props)
            reply3 = await rec.wait_topic(f"{base}/send/response", lambda j: j["id"] == 3)
            assert reply3["ok"] is True
            # Cancel through MQTT: a delivered message cannot be cancelled any more.
            await rec.publish(f"{base}/cancel", json.dumps({"id": "c1", "message_id": mid}))
            cancel = await rec.wait_topic(f"{base}/cancel/response", lambda j: j["id"] == "c1")
            assert cancel["ok"] is True and cancel["cancelled"] is False and cancel["state"] == "delivered"


BAD_COMMANDS: list[tuple[str, bytes, str]] = [
    ("send", b"\xff\xfe not utf-8", "invalid_json"),
    ("send", b"{not json", "invalid_json"),
    ("send", b"[1, 2]", "invalid_json"),
    ("send", b'"just a string"', "invalid_json"),
    ("send", b"[" * 100_000, "invalid_json"),
    ("send", json.dumps({"id": "u", "to": "+447700900123", "text": "x", "bogus": 1}).encode(), "invalid_field"),
    ("send", json.dumps({"id": "n", "text": "no recipient"}).encode(), "invalid_number"),
    ("send", json.dumps({"id": "b", "to": "not a number", "text": "x"}).encode(), "invalid_number"),
    ("send", json.dumps({"id": "t", "to": "+447700900123"}).encode(), "invalid_text"),
    ("send", json.dumps({"id": "e", "to": "+447700900123", "text": ""}).encode(), "invalid_text"),
    ("send", json.dumps({"id": "p", "to": "+447700900123", "text": "x", "priority": 99}).encode(),
     "invalid_field"),
    ("send", json.dumps({"id": "s", "to": "+447700900123", "text": "x", "send_at": "tomorrow"}).encode(),
     "invalid_time"),
    ("send", json.dumps({"id": "f", "to": "+447700900123", "text": "x", "flash": "yes"}).encode(),
     "invalid_field"),
    ("send", json.dumps({"id": "m", "to": "+447700900123", "text": "x", "sim": "nope"}).encode(), "unknown_sim"),
    ("send", json.dumps({"id": "c", "to": "+447700900123", "text": "x",
                         "callback_url": "http://evil.example/"}).encode(), "callback_not_allowed"),
    ("send", json.dumps({"id": "l", "to": "+447700900123", "text": "x" * 20_000}).encode(), "text_too_long"),
    ("cancel", b"{}", "invalid_field"),
    ("cancel", json.dumps({"message_id": "no-such"}).encode(), "not_found"),
    ("ussd", json.dumps({"sim": "nope", "code": "*100#"}).encode(), "unknown_sim"),
    ("ussd", json.dumps({"sim": "sim1", "code": "AT+CFUN=0"}).encode(), "invalid_field"),
    ("notify", b"\xff", "invalid_text"),
]


async def test_malformed_commands_get_error_replies_and_queue_nothing(
        tmp_path: Path, broker: tuple[str, int], names: dict[str, str]) -> None:
    base = names["base"]
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        cfg = mqtt_config(tmp_path, [str(m.path) for m in fake.modems], broker, names, commands=True)
        async with gateway(cfg, tmp_path) as gw, recorder(*broker, f"{base}/#") as rec:
            await wait_ready(rec, base)
            for i, (name, payload, _code) in enumerate(BAD_COMMANDS):
                props = Properties(PacketTypes.PUBLISH)
                props.ResponseTopic = f"{base}/replies/{i}"
                await rec.publish(f"{base}/{name}", payload, properties=props)
            for i, (name, payload, code) in enumerate(BAD_COMMANDS):
                (got,) = await rec.wait(lambda m, i=i: m.topic == f"{base}/replies/{i}")
                body = got.json()
                assert body["ok"] is False and body["error"]["code"] == code, (name, payload[:60], body)
                assert body["error"]["message"]
            assert await gw.store.call(gw.store.messages.list_messages, limit=10) == []
            # The door is still up: a good command works after all that.
            await rec.publish(f"{base}/send", json.dumps({"id": "ok", "to": "+447700900123", "text": "fine"}))
            good = await rec.wait_topic(f"{base}/send/response", lambda j: j["id"] == "ok")
            assert good["ok"] is True and gw.mqtt.status()["connected"]


async def test_commands_need_a_valid_key_with_the_scope(
        tmp_path: Path, broker: tuple[str, int], names: dict[str, str]) -> None:
    base = names["base"]
    cfg = mqtt_config(tmp_path, [], broker, names, commands=True)
    async with gateway(cfg, tmp_path, scopes=("read",)) as gw, recorder(*broker, f"{base}/#") as rec:
        await rec.wait_topic(f"{base}/gateway/state")
        await rec.publish(f"{base}/send", json.dumps({"id": 1, "to": "+447700900123", "text": "x"}))
        r = await rec.wait_topic(f"{base}/send/response", lambda j: j["id"] == 1)
        assert r["error"]["code"] == "forbidden"
        (tmp_path / "mqtt.key").write_text("gsk_not_a_key\n")
        await rec.publish(f"{base}/send", json.dumps({"id": 2, "to": "+447700900123", "text": "x"}))
        r = await rec.wait_topic(f"{base}/send/response", lambda j: j["id"] == 2)
        assert r["error"]["code"] == "unauthorized"
        assert await gw.store.call(gw.store.messages.list_messages, limit=10) == []


async def test_commands_off_the_send_topic_is_ignored_and_no_notify_entity(
        tmp_path: Path, broker: tuple[str, int], names: dict[str, str]) -> None:
    base, prefix = names["base"], names["prefix"]
    cfg = mqtt_config(tmp_path, [], broker, names, commands=False, notify_to=("+447700900123",))
    async with gateway(cfg, tmp_path) as gw, recorder(*broker, f"{base}/#", f"{prefix}/#") as rec:
        await rec.wait_topic(f"{base}/gateway/state")
        await rec.wait(lambda m: m.topic.endswith("/config"), count=5)
        await rec.publish(f"{base}/send", json.dumps({"id": "x", "to": "+447700900123", "text": "no"}))
        await rec.publish(f"{base}/notify", b"no either")
        # Give the door the time it needs to answer an accepted command (well under 1 s here).
        await asyncio.sleep(1.5)
        assert not [m for m in rec.messages if m.topic.endswith("/response")]
        assert await gw.store.call(gw.store.messages.list_messages, limit=10) == []
        docs = configs(rec, prefix)
        assert not any(p and json.loads(p).get("command_topic") for p in docs.values())
        assert all(t.split("/")[1] != "notify" or p == b"" for t, p in docs.items())


async def test_home_assistant_birth_message_republishes_discovery_and_state(
        tmp_path: Path, broker: tuple[str, int], names: dict[str, str]) -> None:
    base, prefix = names["base"], names["prefix"]
    cfg = mqtt_config(tmp_path, [], broker, names, state_interval_s=60.0)
    async with gateway(cfg, tmp_path) as gw, recorder(*broker, f"{base}/#", f"{prefix}/#") as rec:
        # The 5 gateway entities (the notify entity's config is cleared: commands are off).
        await rec.wait(lambda m: m.topic.endswith("/config") and m.payload != b"", count=5)
        await rec.wait_topic(f"{base}/gateway/state")
        for _ in range(100):  # the first round is over
            if gw.mqtt.republished:
                break
            await asyncio.sleep(0.02)
        before = gw.mqtt.republished
        rec.messages.clear()
        await rec.publish(f"{prefix}/status", b"offline")  # HA's last will: nothing to do
        await asyncio.sleep(0.5)
        assert not [m for m in rec.messages if m.topic.endswith("/config")]
        await rec.publish(f"{prefix}/status", b"online")  # HA's birth message
        again = await rec.wait(lambda m: m.topic.endswith("/config") and not m.retain, count=5)
        validate({m.topic: m.payload for m in again}, prefix, base)
        await rec.wait(lambda m: m.topic == f"{base}/gateway/state" and not m.retain)
        for _ in range(100):
            if gw.mqtt.republished > before:
                break
            await asyncio.sleep(0.02)
        assert gw.mqtt.republished == before + 1


async def test_a_removed_sim_leaves_home_assistant_and_its_retained_state_goes(
        tmp_path: Path, broker: tuple[str, int], names: dict[str, str]) -> None:
    base, prefix = names["base"], names["prefix"]
    async with FakeModemPool(count=2, directory=tmp_path / "ports") as fake:
        cfg = mqtt_config(tmp_path, [str(m.path) for m in fake.modems], broker, names)
        cfg = dataclasses.replace(cfg, inbound=dataclasses.replace(cfg.inbound, balance_ussd="*100#"))
        async with gateway(cfg, tmp_path) as gw, recorder(*broker, f"{base}/#", f"{prefix}/#") as rec:
            await wait_ready(rec, base, "sim2")
            await rec.wait(lambda m: "sim_sim2" in m.topic and m.topic.endswith("/config"), count=5)
            await gw.reload(dataclasses.replace(cfg, modem=cfg.modem[:1]))  # sim2 taken out of the config
            await rec.wait(lambda m: m.topic == f"{base}/sim/sim2/state" and m.payload == b"" and m.retain is False)
            gone = await rec.wait(lambda m: "sim_sim2" in m.topic and m.topic.endswith("/config")
                                  and m.payload == b"", count=5)
            assert len({m.topic for m in gone}) == 5
        # Nothing of sim2 is retained any more; sim1 still is.
        async with recorder(*broker, f"{base}/sim/#") as late:
            await late.wait(lambda m: m.topic == f"{base}/sim/sim1/state")
            await asyncio.sleep(0.3)
            assert not late.on(f"{base}/sim/sim2/state")
