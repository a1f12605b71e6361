"""The MQTT door (issue 19): retained state, outbox events, commands, Home Assistant discovery.

- :mod:`gsmgw.mqtt.topics`: the topic names under ``[mqtt] base_topic`` (pure).
- :mod:`gsmgw.mqtt.state`: what the retained state topics say (pure).
- :mod:`gsmgw.mqtt.discovery`: Home Assistant MQTT discovery payloads (pure).
- :mod:`gsmgw.mqtt.commands`: send / cancel / USSD command payloads -> plain values (pure).
- :mod:`gsmgw.mqtt.door`: the client: connection with a last will and reconnects,
  the outbox consumer, the state publisher and the command handler.
"""

from gsmgw.mqtt.door import MqttDeps, MqttDoor

__all__ = ["MqttDeps", "MqttDoor"]
