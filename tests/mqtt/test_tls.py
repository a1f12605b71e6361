"""mqtts:// with the CA in [mqtt] tls_ca_file and a username + password_file, against a
Mosquitto of our own with a TLS listener and a password file."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import aiomqtt
import pytest

from gsmgw.daemon import Gateway
from tests.mqtt.conftest import mqtt_config
from tests.mqtt.helpers import Mosquitto

pytestmark = [
    pytest.mark.mqtt,
    pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("mosquitto_passwd") and Mosquitto.available()),
                       reason="needs openssl, mosquitto and mosquitto_passwd (apt-get install openssl mosquitto)"),
]


async def _tls_broker(tmp_path: Path) -> Mosquitto:
    cert, key, pw = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "passwd"
    await asyncio.to_thread(
        subprocess.run,
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    await asyncio.to_thread(subprocess.run, ["mosquitto_passwd", "-b", "-c", str(pw), "gw", "s3cret pass"],
                            check=True, capture_output=True, timeout=30)
    pw.chmod(0o600)
    return Mosquitto(tmp_path, anonymous=False,
                     extra=f"certfile {cert}\nkeyfile {key}\npassword_file {pw}\n")


async def test_mqtts_with_ca_file_and_password_file(tmp_path: Path, names: dict[str, str]) -> None:
    broker = await _tls_broker(tmp_path)
    await broker.start()
    try:
        (tmp_path / "mqtt.password").write_text("s3cret pass\n")
        cfg = mqtt_config(tmp_path, [], ("127.0.0.1", broker.port), names, username="gw",
                          url=f"mqtts://127.0.0.1:{broker.port}", password_file=str(tmp_path / "mqtt.password"),
                          tls_ca_file=str(tmp_path / "cert.pem"))
        gw = Gateway(cfg, host="test-host")
        await gw.start()
        try:
            deadline = time.monotonic() + 15
            while not gw.mqtt.status()["connected"]:
                assert time.monotonic() < deadline, gw.mqtt.status()
                await asyncio.sleep(0.05)
            # What it published is there, read back over TLS with the same account.
            ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
            async with aiomqtt.Client("127.0.0.1", broker.port, username="gw", password="s3cret pass",
                                      tls_context=ctx) as c:
                await c.subscribe(f"{names['base']}/status")
                async with asyncio.timeout(10):
                    async for m in c.messages:
                        assert m.payload == b"online" and m.retain
                        break
        finally:
            await gw.stop()
        # A wrong password: never connected, and readiness says why.
        (tmp_path / "mqtt.password").write_text("wrong\n")
        gw = Gateway(cfg, host="test-host")
        await gw.start()
        try:
            deadline = time.monotonic() + 15
            while gw.mqtt.status()["last_error"] is None:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert gw.mqtt.status()["connected"] is False and gw.mqtt.status()["connects"] == 0
            assert any(r.startswith("mqtt: not connected to mqtts://127.0.0.1") for r in gw.readiness_now().reasons)
        finally:
            await gw.stop()
    finally:
        await broker.kill()
