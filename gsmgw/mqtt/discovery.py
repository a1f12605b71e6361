"""Home Assistant MQTT discovery payloads (pure).

Follows Home Assistant's documented discovery schema: one retained config message
per entity on ``<discovery_prefix>/<component>/<node_id>/<object_id>/config``
(node and object ids of ``[a-zA-Z0-9_-]``); each payload has a ``unique_id``, a
``device`` with ``identifiers`` (entities of one device share it), ``availability``
(this gateway's ``{base}/status``, online / offline with the last will) and a
``default_entity_id`` (``<domain>.<object_id>``, which replaced ``object_id`` in
Home Assistant 2025.10). An empty retained payload on a config topic removes the
entity (``removals``).

Devices: one per SIM (signal, operator, state, sent today, and balance when
``[inbound] balance_ussd`` is set) and one for the
gateway (status, queue, SIMs ready, the last inbound SMS as a sensor and as an
event entity, and a notify entity when commands are on and ``notify_to`` is set).
"""

from __future__ import annotations

import re
from typing import Any

from gsmgw.mqtt.topics import Topics, slug

ORIGIN_URL = "https://github.com/gsmgw/gsmgw"


def entity_object_id(value: str) -> str:
    """An entity id's object part: lower case letters, digits and ``_``."""
    return re.sub(r"[^a-z0-9_]+", "_", value.lower()).strip("_") or "x"


def _node(topics: Topics) -> str:
    """The node id: the base topic made safe (one gateway = one base topic)."""
    return slug(topics.base)


def gateway_device(topics: Topics, *, host: str, version: str) -> dict[str, Any]:
    return {
        "identifiers": [f"{_node(topics)}_gateway"],
        "name": f"gsmgw {topics.base}" if topics.base != "gsmgw" else "gsmgw",
        "manufacturer": "gsmgw",
        "model": "SMS gateway",
        "sw_version": version,
        "serial_number": host,
    }


def sim_device(topics: Topics, sim: dict[str, Any], *, version: str) -> dict[str, Any]:
    dev: dict[str, Any] = {
        "identifiers": [f"{_node(topics)}_sim_{slug(str(sim['id']))}"],
        "name": f"gsmgw SIM {sim['id']}",
        "manufacturer": sim.get("manufacturer") or "unknown",
        "model": sim.get("model") or "GSM modem",
        "sw_version": version,
        "via_device": f"{_node(topics)}_gateway",
    }
    if sim.get("imei"):
        dev["serial_number"] = str(sim["imei"])
    return dev


def _entity(topics: Topics, component: str, key: str, device: dict[str, Any], *, name: str,
            version: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    node = _node(topics)
    object_id = slug(key)
    unique_id = f"{node}_{object_id}"
    payload: dict[str, Any] = {
        "name": name,
        "unique_id": unique_id,
        "default_entity_id": f"{component}.{entity_object_id(unique_id)}",
        "device": device,
        "availability": [{"topic": topics.availability, "payload_available": "online",
                          "payload_not_available": "offline"}],
        "origin": {"name": "gsmgw", "sw_version": version, "support_url": ORIGIN_URL},
        **{k: v for k, v in fields.items() if v is not None},
    }
    return f"{topics.discovery_prefix}/{component}/{node}/{object_id}/config", payload


def balance_topic(topics: Topics, sim_id: str) -> str:
    """The Balance sensor's config topic (cleared when no balance check is configured)."""
    return f"{topics.discovery_prefix}/sensor/{_node(topics)}/{slug(f'sim_{sim_id}_balance')}/config"


def sim_entities(topics: Topics, sim: dict[str, Any], *, version: str,
                 balance: bool = True) -> list[tuple[str, dict[str, Any]]]:
    sid = str(sim["id"])
    dev = sim_device(topics, sim, version=version)
    st = topics.sim_state(sid)
    key = f"sim_{sid}"
    out = [
        _entity(topics, "sensor", f"{key}_signal", dev, name="Signal", version=version, state_topic=st,
                value_template="{{ value_json.signal_dbm }}", unit_of_measurement="dBm",
                device_class="signal_strength", state_class="measurement", entity_category="diagnostic"),
        _entity(topics, "sensor", f"{key}_operator", dev, name="Operator", version=version, state_topic=st,
                value_template="{{ value_json.operator }}", icon="mdi:radio-tower"),
        _entity(topics, "sensor", f"{key}_state", dev, name="State", version=version, state_topic=st,
                value_template="{{ value_json.state }}", json_attributes_topic=st, icon="mdi:sim"),
        _entity(topics, "sensor", f"{key}_sent_today", dev, name="Sent today", version=version, state_topic=st,
                value_template="{{ value_json.sent_today }}", unit_of_measurement="SMS",
                state_class="total_increasing", icon="mdi:message-arrow-right"),
    ]
    if balance:  # only with [inbound] balance_ussd: else it would stay "unknown"
        out.append(_entity(topics, "sensor", f"{key}_balance", dev, name="Balance", version=version,
                           state_topic=st, value_template="{{ value_json.balance }}", state_class="measurement",
                           icon="mdi:cash"))
    return out


def gateway_entities(topics: Topics, *, host: str, version: str, notify: bool) -> list[tuple[str, dict[str, Any]]]:
    dev = gateway_device(topics, host=host, version=version)
    gs = topics.gateway_state
    out = [
        _entity(topics, "sensor", "gateway_status", dev, name="Status", version=version, state_topic=gs,
                value_template="{{ value_json.status }}", json_attributes_topic=gs, icon="mdi:router-wireless"),
        _entity(topics, "sensor", "gateway_queue", dev, name="Queue", version=version, state_topic=gs,
                value_template="{{ value_json.queue_depth }}", unit_of_measurement="SMS",
                state_class="measurement", icon="mdi:tray-full"),
        _entity(topics, "sensor", "gateway_sims_ready", dev, name="SIMs ready", version=version, state_topic=gs,
                value_template="{{ value_json.sims_ready }}", state_class="measurement", icon="mdi:sim"),
        _entity(topics, "sensor", "last_inbound", dev, name="Last SMS", version=version,
                state_topic=topics.inbound_last, value_template="{{ value_json.text[:255] }}",
                json_attributes_topic=topics.inbound_last, icon="mdi:message-text"),
        _entity(topics, "event", "inbound", dev, name="SMS received", version=version,
                state_topic=topics.inbound_event, event_types=["received"], icon="mdi:message-alert"),
    ]
    if notify:
        out.append(_entity(topics, "notify", "send_sms", dev, name="Send SMS", version=version,
                           command_topic=topics.command("notify"), icon="mdi:message-plus"))
    return out


def all_entities(topics: Topics, sims: list[dict[str, Any]], *, host: str, version: str,
                 notify: bool, balance: bool = True) -> list[tuple[str, dict[str, Any]]]:
    out = gateway_entities(topics, host=host, version=version, notify=notify)
    for sim in sims:
        out.extend(sim_entities(topics, sim, version=version, balance=balance))
    return out


def removals(published: set[str], current: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Config topics published before and not now (a SIM removed, commands switched off):
    an empty retained payload there removes the entity from Home Assistant."""
    return sorted(published - {t for t, _p in current})
