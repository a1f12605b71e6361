"""No 500 from input (#15 point 3): each input fuzzing and a walk-through found is a 4xx
with a stable error code, and nothing is stored; a client that disconnects is not
logged as an internal error."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import make_config, running_gateway

N = "+15551234567"
NINES = "9" * 40


def _lone(body: dict[str, str]) -> str:
    """JSON text with a lone UTF-16 surrogate (\\ud800) where SURROGATE stands."""
    return json.dumps(body).replace("SURROGATE", "\\ud800")

# (method, path, body as raw JSON text or None, status, error code); the body is sent
# as application/json exactly as written here.
CASES: list[tuple[str, str, str | None, int, str]] = [
    ("GET", f"/api/v1/events?after={NINES}", None, 422, "invalid_query"),
    ("GET", f"/api/v1/webhooks/deliveries?cursor={NINES}", None, 422, "invalid_query"),
    ("POST", "/api/v1/messages", "[" * 100_000, 422, "invalid_json"),
    ("POST", "/api/v1/messages", _lone({"to": N, "text": "x", "callback_url": "http://crm.lan/SURROGATE"}),
     422, "invalid_json"),
    ("POST", "/api/v1/optouts", _lone({"number": N, "note": "xSURROGATE"}), 422, "invalid_json"),
    ("POST", "/api/v1/messages", _lone({"to": N, "text": "SURROGATE"}), 422, "invalid_json"),
    ("POST", "/api/v1/messages", json.dumps({"to": N, "text": "x", "send_at": "9999-12-31T23:59:59-23:59"}),
     422, "invalid_time"),
    ("POST", "/api/v1/messages", json.dumps({"to": N, "text": "x", "valid_until": "0001-01-01T00:00:00+14:00"}),
     422, "invalid_time"),
    ("POST", "/api/v1/messages", json.dumps({"to": N, "text": "x", "ttl": 0}).replace("0}", "9" * 5000 + "}"),
     422, "invalid_json"),
    ("POST", "/api/v1/messages", json.dumps({"to": N, "text": "x", "ttl": 5e-324}), 422, "invalid_field"),
    ("POST", "/messages", json.dumps({"phoneNumbers": [N], "message": "x", "scheduleAt": "9999-12-31T23:59:59Z"}),
     400, "invalid_time"),
    ("POST", "/api/v1/modems/sim1/ussd", json.dumps({"code": "*100#", "timeout_s": 5e-324}), 422, "invalid_field"),
    ("POST", "/api/v1/modems/sim1/ussd", json.dumps({"code": "*１００#"}), 422, "invalid_ussd"),
    ("POST", "/api/v1/modems/sim1/ussd", json.dumps({"code": "*²#"}), 422, "invalid_ussd"),
    ("GET", "/api/v1/messages?stat=queued", None, 422, "unknown_parameter"),
    ("GET", "/api/v1/status?verbose=1", None, 422, "unknown_parameter"),
]


def _code(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    err = body.get("error")
    if isinstance(err, dict):
        return err.get("code")
    data = body.get("data")  # SMS Gateway for Android's error shape
    return data.get("error") if isinstance(data, dict) else None


async def test_each_hostile_input_is_a_4xx_with_a_stable_code_and_stores_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = make_config(tmp_path)
    async with running_gateway(cfg) as (gw, c):
        for method, path, raw, status, code in CASES:
            headers = {"Authorization": f"Bearer {c.key}"}
            if raw is not None:
                headers["Content-Type"] = "application/json"
            async with c.session.request(method, c.base + path, data=raw, headers=headers) as r:
                body = await r.json(content_type=None)
                assert (r.status, _code(body)) == (status, code), (method, path[:80], r.status, body)
        assert await gw.store.call(gw.store.messages.counts_by_state) == {}
        assert await gw.store.call(gw.store.optouts.list_optouts) == []
    internal = [r for r in caplog.records if r.levelno >= logging.ERROR or "internal error" in r.getMessage()]
    assert not internal, [r.getMessage() for r in internal]


async def test_a_client_that_disconnects_is_no_internal_error(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gsmgw.api")
    async with running_gateway(make_config(tmp_path)) as (gw, c):
        port = int(c.base.rsplit(":", 1)[1])
        _r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(f"POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {c.key}\r\n"
                "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"to\": ".encode())
        await w.drain()
        await asyncio.sleep(0.2)  # the handler is reading the body now
        w.close()
        await w.wait_closed()
        # The gateway still answers, and logged no error for it.
        for _ in range(100):
            if any("disconnected during POST" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.02)
        status, _ = await c.request("GET", "/api/v1/status")
        assert status == 200
        assert await gw.store.call(gw.store.messages.counts_by_state) == {}
    assert any("disconnected during POST /api/v1/messages" in r.getMessage() for r in caplog.records)
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not bad, [(r.name, r.getMessage()) for r in bad]
