"""Topic names of one gateway, all under ``[mqtt] base_topic`` (pure).

    {base}/status                      online / offline (retained; offline is the last will)
    {base}/gateway/state               gateway status (retained JSON)
    {base}/sim/{sim}/state             one SIM's state (retained JSON)
    {base}/inbound/last                the last inbound SMS (retained JSON)
    {base}/inbound/event               each inbound SMS for Home Assistant's event entity
    {base}/events/{family}/{name}      outbox events (sms:delivered -> events/sms/delivered), QoS 1
    {base}/rules/{topic}               inbound rules with an MQTT action (event "rule.mqtt")
    {base}/send, /cancel, /ussd, /notify   commands (commands = true); replies on {command}/response
"""

from __future__ import annotations

import re
from dataclasses import dataclass

COMMANDS = ("send", "cancel", "ussd", "notify")
# A relative subtopic a rule may name (as [[rules]] mqtt_topic is checked in config.py).
_RULE_TOPIC = re.compile(r"[^/#+\x00][^#+\x00]{0,199}")
_SLUG = re.compile(r"[^A-Za-z0-9_-]+")


def slug(value: str) -> str:
    """``[a-zA-Z0-9_-]+`` as Home Assistant wants in a discovery topic's node and object ids."""
    return _SLUG.sub("_", value).strip("_") or "x"


def safe_subtopic(topic: object) -> str | None:
    """A rule's relative topic if it may be published under ``{base}/rules/``, else None:
    1-200 characters, not starting with ``/``, no wildcard (``+``, ``#``), no NUL, valid
    Unicode (the rule config's own check; MQTT gives ``..`` no meaning)."""
    if not isinstance(topic, str) or not _RULE_TOPIC.fullmatch(topic):
        return None
    try:
        topic.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return topic


@dataclass(frozen=True, slots=True)
class Topics:
    base: str
    discovery_prefix: str = "homeassistant"

    @property
    def availability(self) -> str:
        return f"{self.base}/status"

    @property
    def gateway_state(self) -> str:
        return f"{self.base}/gateway/state"

    def sim_state(self, sim: str) -> str:
        return f"{self.base}/sim/{sim}/state"

    @property
    def inbound_last(self) -> str:
        return f"{self.base}/inbound/last"

    @property
    def inbound_event(self) -> str:
        return f"{self.base}/inbound/event"

    def event(self, event_type: str) -> str:
        """``sms:delivered`` -> ``{base}/events/sms/delivered`` (any other character: ``_``)."""
        family, _, name = event_type.partition(":")
        return f"{self.base}/events/{slug(family)}/{slug(name or 'event')}"

    def rule(self, subtopic: str) -> str:
        return f"{self.base}/rules/{subtopic}"

    def command(self, name: str) -> str:
        return f"{self.base}/{name}"

    def response(self, name: str) -> str:
        return f"{self.base}/{name}/response"

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth and last-will topic."""
        return f"{self.discovery_prefix}/status"

    def command_of(self, topic: str) -> str | None:
        """Which command a topic is (``{base}/send`` -> ``send``), else None."""
        prefix = self.base + "/"
        if topic.startswith(prefix) and topic[len(prefix):] in COMMANDS:
            return topic[len(prefix):]
        return None

    def response_allowed(self, topic: str) -> bool:
        """A client's MQTT 5 response topic is honoured only under the base topic
        (a command must not make the gateway publish elsewhere), never a command topic."""
        return (topic.startswith(self.base + "/") and "+" not in topic and "#" not in topic
                and self.command_of(topic) is None and len(topic) <= 512)
