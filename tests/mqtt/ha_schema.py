"""A validator of Home Assistant MQTT discovery messages, written from Home Assistant's
documentation (MQTT integration, "Discovery messages"; sensor, event and notify pages):

- topic ``<discovery_prefix>/<component>/[<node_id>/]<object_id>/config``; node_id and
  object_id of ``[a-zA-Z0-9_-]``;
- the payload a JSON object (an empty payload deletes the entity);
- an entity with a ``device`` needs a ``unique_id``; a device needs ``identifiers``
  (a list) or ``connections``; ``via_device`` names another device's identifier;
- ``availability``: a list of objects with a ``topic``, or ``availability_topic``;
- ``default_entity_id`` is ``<domain>.<object_id>`` (entity ids: lower case, digits, _);
  ``object_id`` is the deprecated option it replaced (removed in 2026.4);
- sensor: ``state_topic``; event: ``state_topic`` and ``event_types`` (a non-empty
  list); notify: ``command_topic``;
- topics to publish to or subscribe to carry no wildcard;
- ``unique_id`` is unique among all entities.
"""

from __future__ import annotations

import json
import re
from typing import Any

COMPONENTS = {"sensor", "binary_sensor", "event", "notify", "button", "switch", "text", "number", "select"}
REQUIRED = {"sensor": ("state_topic",), "event": ("state_topic", "event_types"), "notify": ("command_topic",),
            "binary_sensor": ("state_topic",)}
DEVICE_KEYS = {"identifiers", "connections", "name", "manufacturer", "model", "model_id", "sw_version",
               "hw_version", "serial_number", "suggested_area", "via_device", "configuration_url"}
SENSOR_STATE_CLASSES = {"measurement", "total", "total_increasing", "measurement_angle"}
ENTITY_CATEGORIES = {"config", "diagnostic"}
ID = r"[a-zA-Z0-9_-]+"


def topic_parts(topic: str, prefix: str) -> tuple[str, str | None, str]:
    m = re.fullmatch(rf"{re.escape(prefix)}/({ID})/(?:({ID})/)?({ID})/config", topic)
    if m is None:
        raise AssertionError(f"{topic}: not <prefix>/<component>/[<node_id>/]<object_id>/config")
    return m.group(1), m.group(2), m.group(3)


def _topic_ok(value: Any, key: str, where: str) -> None:
    assert isinstance(value, str) and value and "+" not in value and "#" not in value, \
        f"{where}: {key} must be a topic without wildcards, got {value!r}"


def validate(messages: dict[str, bytes], prefix: str, base: str) -> dict[str, dict[str, Any]]:
    """topic -> payload for every non-empty config; AssertionError naming the first problem."""
    out: dict[str, dict[str, Any]] = {}
    unique: dict[str, str] = {}
    devices: dict[str, dict[str, Any]] = {}
    for topic, raw in messages.items():
        component, _node, _obj = topic_parts(topic, prefix)
        assert component in COMPONENTS, f"{topic}: unknown component {component}"
        if not raw:
            continue  # a removal
        p = json.loads(raw)
        assert isinstance(p, dict), f"{topic}: payload must be a JSON object"
        for key in REQUIRED.get(component, ()):
            assert key in p, f"{topic}: {component} needs {key}"
        assert "object_id" not in p, f"{topic}: object_id is deprecated; use default_entity_id"
        uid = p.get("unique_id")
        assert isinstance(uid, str) and uid, f"{topic}: unique_id is required with a device"
        assert uid not in unique, f"{topic}: unique_id {uid} also used by {unique[uid]}"
        unique[uid] = topic
        dei = p.get("default_entity_id")
        assert isinstance(dei, str) and re.fullmatch(rf"{component}\.[a-z0-9_]+", dei), \
            f"{topic}: default_entity_id must be {component}.<lower-case object id>, got {dei!r}"
        dev = p.get("device")
        assert isinstance(dev, dict), f"{topic}: device must be an object"
        assert set(dev) <= DEVICE_KEYS, f"{topic}: unknown device keys {set(dev) - DEVICE_KEYS}"
        ids = dev.get("identifiers")
        assert (isinstance(ids, list) and ids and all(isinstance(i, str) and i for i in ids)) or dev.get(
            "connections"), f"{topic}: device needs identifiers (a list) or connections"
        assert isinstance(dev.get("name"), str) and dev["name"], f"{topic}: a device has a name"
        for i in ids:
            if i in devices:
                assert devices[i] == dev, f"{topic}: device {i} described differently by two entities"
            devices[i] = dev
        av = p.get("availability")
        if av is not None:
            assert isinstance(av, list) and av, f"{topic}: availability must be a non-empty list"
            for a in av:
                assert isinstance(a, dict), f"{topic}: availability entries are objects"
                _topic_ok(a.get("topic"), "availability.topic", topic)
        else:
            _topic_ok(p.get("availability_topic"), "availability_topic", topic)
        for key in ("state_topic", "command_topic", "json_attributes_topic"):
            if key in p:
                _topic_ok(p[key], key, topic)
                assert p[key].startswith(base + "/"), f"{topic}: {key} {p[key]} is not under {base}/"
        if component == "event":
            et = p["event_types"]
            assert isinstance(et, list) and et and all(isinstance(e, str) for e in et), \
                f"{topic}: event_types must be a non-empty list of strings"
        if "state_class" in p:
            assert p["state_class"] in SENSOR_STATE_CLASSES, f"{topic}: state_class {p['state_class']}"
        if "entity_category" in p:
            assert p["entity_category"] in ENTITY_CATEGORIES, f"{topic}: entity_category"
        if "origin" in p:
            assert isinstance(p["origin"], dict) and p["origin"].get("name"), f"{topic}: origin needs a name"
        out[topic] = p
    for d in devices.values():
        via = d.get("via_device")
        if via is not None:
            assert via in devices, f"via_device {via} is no discovered device"
    return out
