"""Connection hygiene (#15 point 7): header and body read timeouts, a connection cap,
a 400 for an over-long request that never echoes credentials, and webhooks.allowed_hosts
entries that pin a port."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path

import pytest

from gsmgw.config import ApiConfig, Config, WebhooksConfig
from gsmgw.urls import host_allowed, parse_entry
from tests.helpers import make_config, running_gateway

N = "+15551234567"


def _cfg(tmp_path: Path, **api: object) -> Config:
    cfg = make_config(tmp_path)
    return dataclasses.replace(cfg, api=dataclasses.replace(cfg.api, **api))


async def _connect(base: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", int(base.rsplit(":", 1)[1]))


async def _response(r: asyncio.StreamReader) -> bytes:
    """One HTTP response (status line, headers, Content-Length body), without waiting for EOF."""
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    return head + await asyncio.wait_for(r.readexactly(length), 5)


async def test_half_open_connections_are_closed_after_the_header_timeout(tmp_path: Path) -> None:
    async with running_gateway(_cfg(tmp_path, header_timeout_s=0.5)) as (_gw, c):
        conns = [await _connect(c.base) for _ in range(5)]
        t0 = time.monotonic()
        for _r, w in conns:
            w.write(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n")  # never the blank line
            await w.drain()
        for r, w in conns:
            assert await asyncio.wait_for(r.read(), 5) == b""  # closed by the gateway
            w.close()
        assert time.monotonic() - t0 < 3
        # A connection that completes its request in time is served as usual.
        assert (await c.request("GET", "/api/v1/status"))[0] == 200


async def test_a_body_that_never_comes_is_408(tmp_path: Path) -> None:
    async with running_gateway(_cfg(tmp_path, body_timeout_s=0.3, header_timeout_s=5.0)) as (gw, c):
        r, w = await _connect(c.base)
        w.write(f"POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {c.key}\r\n"
                "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"to\": ".encode())
        await w.drain()
        reply = await _response(r)
        w.close()
        assert reply.startswith(b"HTTP/1.1 408") and b"body_timeout" in reply
        assert await gw.store.call(gw.store.messages.counts_by_state) == {}


async def test_connections_over_the_cap_get_503_and_the_rest_are_served(tmp_path: Path) -> None:
    async with running_gateway(_cfg(tmp_path, max_connections=3)) as (gw, c):
        idle = [await _connect(c.base) for _ in range(3)]
        await asyncio.sleep(0.05)
        r, w = await _connect(c.base)
        reply = await asyncio.wait_for(r.read(), 5)
        w.close()
        assert reply.startswith(b"HTTP/1.1 503") and b"too_many_connections" in reply
        assert gw.api is not None and gw.api.refused_connections >= 1
        for _r, iw in idle:
            iw.close()
            await iw.wait_closed()
        for _ in range(100):  # their slots come free once the gateway sees them go
            try:
                if (await c.request("GET", "/api/v1/status"))[0] == 200:
                    break
            except Exception:  # a 503'd connection is closed under the client
                pass
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the gateway never served again after the idle connections closed")


async def test_an_over_long_kannel_request_is_400_and_never_echoes_the_password(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_gateway(make_config(tmp_path)) as (gw, c):
        r, w = await _connect(c.base)
        url = f"/cgi-bin/sendsms?username=crm&password={c.key}&to={N}&text=" + "a" * 9000
        w.write(f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await w.drain()
        reply = await asyncio.wait_for(r.read(), 5)
        w.close()
        assert reply.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400")) and b"bad_request" in reply
        assert c.key.encode() not in reply and b"password" not in reply and b"sendsms" not in reply
        assert await gw.store.call(gw.store.messages.counts_by_state) == {}
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert c.key not in logged and "password=" not in logged
    assert "refused a malformed HTTP request" in logged


def test_allowed_hosts_entries_may_pin_a_port() -> None:
    allowed = ["crm.lan:8000", "hooks.lan", "[2001:db8::1]:8443", "10.0.0.5:80"]
    assert host_allowed("http://crm.lan:8000/cb", allowed)
    assert not host_allowed("http://crm.lan:8001/cb", allowed)
    assert not host_allowed("http://crm.lan/cb", allowed)  # port 80 is not 8000
    assert host_allowed("https://hooks.lan:9999/x", allowed) and host_allowed("http://HOOKS.lan/x", allowed)
    assert host_allowed("https://[2001:db8::1]:8443/x", allowed)
    assert not host_allowed("https://[2001:db8::1]/x", allowed)
    assert host_allowed("http://10.0.0.5/x", allowed) and not host_allowed("https://10.0.0.5/x", allowed)
    assert not host_allowed("http://crm.lan:99999/x", allowed)  # not a port: refused, not a crash
    assert not host_allowed("ftp://hooks.lan/x", allowed)
    assert parse_entry("crm.lan:0") is None and parse_entry("a b") is None


async def test_callback_urls_respect_the_pinned_port(tmp_path: Path) -> None:
    cfg = dataclasses.replace(make_config(tmp_path), webhooks=WebhooksConfig(allowed_hosts=("crm.lan:8000",)))
    async with running_gateway(cfg) as (_gw, c):
        ok = await c.request("POST", "/api/v1/messages", json={"to": N, "text": "x",
                                                               "callback_url": "http://crm.lan:8000/cb"})
        bad = await c.request("POST", "/api/v1/messages", json={"to": N, "text": "x",
                                                                "callback_url": "http://crm.lan:8080/cb"})
        assert ok[0] == 202
        assert bad[0] == 422 and bad[1]["error"]["code"] == "callback_not_allowed"
        async with c.session.get(c.base + f"/cgi-bin/sendsms?username=u&password={c.key}&to=%2B15551234567"
                                 "&text=x&dlr-mask=1&dlr-url=http://crm.lan:1/x") as r:
            assert r.status == 400 and "allowed_hosts" in await r.text()


def test_the_config_refuses_a_malformed_allowed_hosts_entry() -> None:
    from gsmgw.config import from_dict
    from gsmgw.errors import ConfigError

    with pytest.raises(ConfigError, match=r"webhooks.allowed_hosts\[0\]: expected HOST or HOST:PORT"):
        from_dict({"webhooks": {"allowed_hosts": ["crm.lan:99999"]}})
    assert ApiConfig().max_connections > 0
