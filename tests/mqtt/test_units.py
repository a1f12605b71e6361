"""The MQTT door's pure parts: topics, command payloads, state values, discovery shapes."""

from __future__ import annotations

import json
import re

import pytest

from gsmgw.intake import Recipient
from gsmgw.mqtt import commands as cmd
from gsmgw.mqtt.discovery import all_entities, removals
from gsmgw.mqtt.door import consumer_name
from gsmgw.mqtt.state import csq_dbm, csq_percent
from gsmgw.mqtt.topics import Topics, safe_subtopic, slug
from tests.mqtt.ha_schema import validate


@pytest.mark.parametrize(("topic", "ok"), [
    ("alerts", True), ("alerts/door", True), ("a.b/c-d_e", True), ("front door/bell ✓", True), ("a//b", True),
    ("", False), ("/alerts", False), ("a/+/b", False), ("a/#", False), ("+", False), ("nul\x00", False),
    ("\ud800", False), (None, False), (5, False), ("x" * 201, False),
])
def test_rule_subtopics_are_relative_and_safe(topic: object, ok: bool) -> None:
    assert (safe_subtopic(topic) is not None) is ok


def test_topics() -> None:
    tp = Topics("home/gsm", "homeassistant")
    assert tp.event("sms:delivered") == "home/gsm/events/sms/delivered"
    assert tp.event("sim:storage-full") == "home/gsm/events/sim/storage-full"
    assert tp.event("rule.mqtt") == "home/gsm/events/rule_mqtt/event"
    assert tp.command_of("home/gsm/send") == "send" and tp.command_of("home/gsm/send/response") is None
    assert tp.command_of("other/send") is None and tp.command_of("home/gsm/sendx") is None
    assert tp.response_allowed("home/gsm/replies/1")
    for bad in ("elsewhere/x", "home/gsm/send", "home/gsm/+", "home/gsmx/a", "home/gsm/#"):
        assert not tp.response_allowed(bad), bad
    assert slug("home/gsm.1") == "home_gsm_1" and slug("///") == "x"


@pytest.mark.parametrize("payload", [b"", b"\x00", b"nul\x00l", b"{", b"[]", b"1", b"null", b'"x"',
                                     b"[" * 50_000, b"{" * 50_000, b"\xed\xa0\x80", b" " * (300 * 1024)])
def test_garbage_payloads_are_command_errors(payload: bytes) -> None:
    with pytest.raises(cmd.CommandError) as e:
        cmd.decode(payload)
    assert e.value.code in ("invalid_json", "payload_too_large")


def test_send_request_maps_the_api_fields() -> None:
    req = cmd.send_request({"id": 1, "to": [{"to": "+447700900123", "variables": {"n": "Ann"}}, "+447700900124"],
                            "template": "Hi {n}", "variables": {"n": "you"}, "ttl": 60, "priority": "high",
                            "idempotency_key": "k1"})
    assert req.door == "mqtt" and req.ttl_s == 60 and req.priority == "high" and req.idempotency_key == "k1"
    assert req.to == [Recipient("+447700900123", {"n": "Ann"}), "+447700900124"]
    with pytest.raises(cmd.CommandError, match="unknown field 'door'"):
        cmd.send_request({"to": "+447700900123", "text": "x", "door": "api"})  # a door's own field


def test_request_ids() -> None:
    assert cmd.request_id({"id": "a"}) == "a" and cmd.request_id({"id": 7}) == 7
    for bad in (True, 1.5, None, [1], "x" * 201, "a\nb"):
        assert cmd.request_id({"id": bad}) is None


def test_notify_text_and_json() -> None:
    rid, req = cmd.notify_request("Hello ✓".encode(), ("+447700900123",))
    assert rid is None and req.to == ["+447700900123"] and req.text == "Hello ✓"
    rid, req = cmd.notify_request(b'{"id": "j", "to": "+447700900124", "text": "x"}', ())
    assert rid == "j" and req.to == "+447700900124"
    with pytest.raises(cmd.CommandError, match="notify_to"):
        cmd.notify_request(b"no one to send to", ())


def test_ussd_codes_are_digits_star_hash_only() -> None:
    assert cmd.ussd_target({"sim": "s", "code": "*100#"}, {"s"}) == ("s", "*100#")
    for code in ("AT+CUSD=1", "*100#\r", "", "1" * 33, 100):
        with pytest.raises(cmd.CommandError):
            cmd.ussd_target({"sim": "s", "code": code}, {"s"})


def test_consumer_names_fit_the_cursor_column() -> None:
    assert consumer_name("gsmgw") == "mqtt" and consumer_name("home/gsm") == "mqtt:home/gsm"
    long = consumer_name("x" * 300)
    assert len(long) <= 40 and long != consumer_name("x" * 299)


def test_csq() -> None:
    assert (csq_dbm(0), csq_dbm(31), csq_dbm(99), csq_dbm(None), csq_dbm(True)) == (-113, -51, None, None, None)
    assert (csq_percent(31), csq_percent(0), csq_percent(99)) == (100, 0, None)


def test_discovery_shapes_and_removals() -> None:
    tp = Topics("Home/GSM-1", "homeassistant")
    sims = [{"id": "sim.1", "imei": "123"}, {"id": "sim-2"}]
    ents = all_entities(tp, sims, host="h", version="0", notify=True)
    docs = validate({t: json.dumps(p).encode() for t, p in ents}, "homeassistant", "Home/GSM-1")
    assert len(docs) == 6 + 10
    # Entity ids are lower case whatever the base topic.
    assert all(p["default_entity_id"] == p["default_entity_id"].lower() for p in docs.values())
    no_balance = all_entities(tp, sims, host="h", version="0", notify=True, balance=False)
    assert len(no_balance) == 6 + 8 and not any("balance" in t for t, _p in no_balance)
    fewer = all_entities(tp, sims[:1], host="h", version="0", notify=False)
    gone = removals({t for t, _p in ents}, fewer)
    assert len(gone) == 5 + 1 and all("sim-2" in t or "/notify/" in t for t in gone)


@pytest.mark.parametrize(("mqtt", "error"), [
    ({"url": "http://broker"}, "mqtt.url"),
    ({"url": "mqtt://broker/path"}, "mqtt.url"),
    ({"base_topic": "gsmgw/#"}, "mqtt.base_topic"),
    ({"base_topic": "/gsmgw"}, "mqtt.base_topic"),
    ({"base_topic": "a/+/b"}, "mqtt.base_topic"),
    ({"discovery_prefix": ""}, "mqtt.discovery_prefix"),
    ({"url": "mqtt://b", "commands": True}, "mqtt.api_key_file"),
    ({"url": "mqtt://b", "tls_ca_file": "/ca.pem"}, "mqtt.tls_ca_file"),
    ({"notify_to": ["07700900123"]}, "mqtt.notify_to[0]"),
    ({"keepalive_s": 1}, "mqtt.keepalive_s"),
    ({"state_interval_s": 0}, "mqtt.state_interval_s"),
    ({"client_id": "é" * 3}, "mqtt.client_id"),
    ({"qos": 2}, "mqtt.qos"),
])
def test_config_errors_name_the_key(mqtt: dict[str, object], error: str) -> None:
    from gsmgw.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match=re.escape(error)):
        from_dict({"mqtt": mqtt})


def test_config_defaults_are_off_and_safe() -> None:
    from gsmgw.config import from_dict

    c = from_dict({"mqtt": {"url": "mqtts://broker.lan:8883", "tls_ca_file": "/etc/gsmgw/ca.pem"}}).mqtt
    assert (c.commands, c.discovery, c.base_topic, c.discovery_prefix) == (False, True, "gsmgw", "homeassistant")
