"""Per-key rate limits and daily quotas (guards against SMS pumping), /metrics, TLS."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest

from gsmgw.config import ApiConfig
from tests.helpers import make_config, running_gateway

BODY = {"to": "+15551234567", "text": "hi"}


async def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    async with running_gateway(make_config(tmp_path)) as (gw, c):
        _, key = await gw.store.call(gw.store.keys.create_api_key, "slow", ["send", "read"], rate_per_s=2)
        statuses = []
        for _ in range(5):
            status, body = await c.request("GET", "/api/v1/status", key=key)
            statuses.append(status)
        assert statuses[:2] == [200, 200] and 429 in statuses
        status, body = await c.request("GET", "/api/v1/status", key=key)
        assert status == 429 and body["error"]["code"] == "rate_limited"
        async with c.session.get(c.base + "/api/v1/status", headers={"Authorization": f"Bearer {key}"}) as r:
            assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
        # Other keys are not affected.
        assert (await c.request("GET", "/api/v1/status"))[0] == 200


async def test_daily_quota_counts_messages_and_survives_restart(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    async with running_gateway(cfg) as (gw, c):
        _, key = await gw.store.call(gw.store.keys.create_api_key, "capped", ["send"], daily_quota=3)
        status, _ = await c.request("POST", "/api/v1/messages", key=key,
                                    json={"to": ["+15551234567", "+15551234568"], "text": "x"})
        assert status == 202
        status, body = await c.request("POST", "/api/v1/messages", key=key,
                                       json={"to": ["+15551234567", "+15551234568"], "text": "x"})
        assert status == 429 and body["error"]["code"] == "quota_exceeded"
        assert (await c.request("POST", "/api/v1/messages", key=key, json=BODY))[0] == 202
    async with running_gateway(cfg) as (gw, c):  # a restart does not reset the day's count
        status, body = await c.request("POST", "/api/v1/messages", key=key, json=BODY)
        assert status == 429 and body["error"]["code"] == "quota_exceeded"


async def test_metrics_in_prometheus_format(tmp_path: Path) -> None:
    async with running_gateway(make_config(tmp_path)) as (_, c):
        await c.request("POST", "/api/v1/messages", json=BODY)
        async with c.session.get(c.base + "/metrics") as r:
            assert r.status == 401  # metrics need a key too
        async with c.session.get(c.base + "/metrics", headers={"Authorization": f"Bearer {c.key}"}) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
            text = await r.text()
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["gsmgw_messages_accepted"].samples[0].value == 1.0
    assert families["gsmgw_queue_depth"].samples[0].value == 1.0
    assert any(s.labels.get("route") == "/api/v1/messages" for s in families["gsmgw_http_requests"].samples)


@pytest.mark.skipif(subprocess.run(["which", "openssl"], capture_output=True).returncode != 0,
                    reason="openssl not installed")
async def test_tls_from_config(tmp_path: Path) -> None:
    cert, keyf = tmp_path / "cert.pem", tmp_path / "key.pem"
    await asyncio.to_thread(
        subprocess.run,
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(keyf), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    base = make_config(tmp_path)
    cfg = dataclasses.replace(base, api=ApiConfig(listen="127.0.0.1:0", tls_cert_file=str(cert),
                                                  tls_key_file=str(keyf)))
    async with running_gateway(cfg) as (gw, c):
        assert gw.base_url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as s, s.get(gw.base_url + "/healthz", ssl=ctx) as r:
            assert r.status == 200
        with pytest.raises(aiohttp.ClientError):
            async with aiohttp.ClientSession() as s, s.get(gw.base_url.replace("https", "http") + "/healthz"):
                pass


async def test_revoked_key_stops_working_within_the_cache_ttl(tmp_path: Path) -> None:
    async with running_gateway(make_config(tmp_path)) as (gw, c):
        assert gw.api is not None
        gw.intake.key_cache.ttl_s = 0.3
        key_id, key = await gw.store.call(gw.store.keys.create_api_key, "temp", ["read"])
        assert (await c.request("GET", "/api/v1/status", key=key))[0] == 200
        await gw.store.call(gw.store.keys.revoke_api_key, key_id)
        await asyncio.sleep(0.35)
        status, body = await c.request("GET", "/api/v1/status", key=key)
        assert status == 401 and body["error"]["code"] == "unauthorized"
