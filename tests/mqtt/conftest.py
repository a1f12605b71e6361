"""Fixtures: a real MQTT broker (the shared Mosquitto on 127.0.0.1:1883, else one of our
own), unique topics per test, and a gateway on emulated modems with [mqtt] set."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gsmgw.config import Config, MqttConfig
from tests.helpers import make_config
from tests.mqtt.helpers import SHARED_BROKER, Mosquitto, broker_up


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[tuple[str, int]]:
    if broker_up(*SHARED_BROKER):
        yield SHARED_BROKER
        return
    if not Mosquitto.available():
        pytest.skip("no MQTT broker: nothing listens on 127.0.0.1:1883 and there is no mosquitto binary "
                    "(apt-get install mosquitto; .ci/run starts it)")
    m = Mosquitto(tmp_path)
    await m.start()
    try:
        yield ("127.0.0.1", m.port)
    finally:
        await m.kill()


@pytest.fixture
def own_broker(tmp_path: Path) -> Mosquitto:
    if not Mosquitto.available():
        pytest.skip("no mosquitto binary: the broker-restart test starts and kills its own broker "
                    "(apt-get install mosquitto)")
    return Mosquitto(tmp_path)


@pytest.fixture
def names() -> dict[str, str]:
    """Topics of this test only (the shared broker serves every agent and test)."""
    tag = secrets.token_hex(4)
    return {"base": f"gsmgwtest/{tag}", "prefix": f"hatest_{tag}", "client": f"gsmgw-test-{tag}"}


def mqtt_config(tmp_path: Path, ports: list[str], host_port: tuple[str, int], names: dict[str, str],
                store_url: str | None = None, **mqtt: Any) -> Config:
    cfg = make_config(tmp_path, ports, store_url=store_url)
    key_file = tmp_path / "mqtt.key"
    fields: dict[str, Any] = {
        "url": f"mqtt://{host_port[0]}:{host_port[1]}", "base_topic": names["base"],
        "discovery_prefix": names["prefix"], "client_id": names["client"], "api_key_file": str(key_file),
        "state_interval_s": 0.5, "reconnect_initial_s": 0.1, "reconnect_max_s": 0.5, "publish_timeout_s": 5.0,
        **mqtt,
    }
    return dataclasses.replace(cfg, mqtt=MqttConfig(**fields))
