"""Logs of a real `gsmgw run`: state changes with ids, raw AT only at trace, nothing secret."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
from pathlib import Path

import aiohttp
import pytest

from gsmgw.emulator import Behaviour, FakeModemPool
from gsmgw.logs import TRACE, AtTraceLogger, JsonFormatter, redact
from tests.service.conftest import child_env, gsmgw_cmd, toml_config

PIN = "73915824"  # 8 digits: cannot turn up by accident in a timestamp or an id


async def _run_gateway_and_send(tmp_path: Path, log_level: str, log_format: str) -> tuple[str, str]:
    """Start `gsmgw run` on a PIN-locked emulated SIM, send one SMS through the API; return (log, key)."""
    async with FakeModemPool(count=1, directory=tmp_path / "ports", pins=PIN,
                             behaviours=Behaviour(send_latency_s=0.01, echo=True)) as fake:
        cfg = tmp_path / "gsmgw.toml"
        cfg.write_text(toml_config(tmp_path, [{"id": "sim1", "port": str(fake.modems[0].path), "pin": PIN}],
                                   log_level=log_level, log_format=log_format))
        keys = await asyncio.create_subprocess_exec(*gsmgw_cmd("keys", "create", "crm", "--config", str(cfg)),
                                                    stdout=asyncio.subprocess.PIPE, env=child_env())
        try:
            out, _ = await asyncio.wait_for(keys.communicate(), 30)
        finally:
            if keys.returncode is None:
                keys.kill()
                await keys.wait()
        assert keys.returncode == 0
        key = out.decode().strip()
        log_file = tmp_path / f"gsmgw-{log_format}.log"
        with log_file.open("w") as out:
            proc = await asyncio.create_subprocess_exec(*gsmgw_cmd("run", "--config", str(cfg)),
                                                        stdout=asyncio.subprocess.DEVNULL, stderr=out,
                                                        env=child_env())
        try:
            async with asyncio.timeout(30):
                while not (m := re.search(r"API listening on 127\.0\.0\.1:(\d+)", log_file.read_text())):
                    await asyncio.sleep(0.05)
            base = f"http://127.0.0.1:{m.group(1)}"
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as s:
                async with s.post(f"{base}/api/v1/messages", json={"to": "+15551234567", "text": "hi"}) as r:
                    assert r.status == 202, await r.text()
                    mid = (await r.json())["id"]
                async with asyncio.timeout(20):
                    while True:
                        async with s.get(f"{base}/api/v1/messages/{mid}") as r:
                            if (await r.json())["state"] in ("sent", "delivered"):
                                break
                        await asyncio.sleep(0.05)
                # A wrong key and a key in a query string must not be echoed either.
                async with s.get(f"{base}/api/v1/status?api_key={key}",
                                 headers={"Authorization": f"Bearer {key}x"}) as r:
                    assert r.status == 401
            await asyncio.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        return log_file.read_text(), key


@pytest.mark.timeout(60)
async def test_trace_logs_show_at_traffic_but_never_the_pin_or_the_api_key(tmp_path: Path) -> None:
    text, key = await _run_gateway_and_send(tmp_path, "trace", "text")
    assert "AT+CPIN=<redacted>" in text, "the PIN command itself should be traced, redacted"
    assert "AT+CMGS=" in text  # raw AT traffic is there at trace level
    assert PIN not in text
    # The secret part of gsk_<id>_<secret> (token_urlsafe: it may itself contain "_").
    assert key not in text and key.split("_", 2)[2] not in text
    assert re.search(r"message \S+ -> (sent|delivered) on sim1", text)


@pytest.mark.timeout(60)
async def test_json_logs_carry_ids_and_no_raw_at_above_trace(tmp_path: Path) -> None:
    text, key = await _run_gateway_and_send(tmp_path, "info", "json")
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all({"ts", "level", "logger", "msg"} <= r.keys() for r in records)
    changes = [r for r in records if r["logger"] == "gsmgw.messages" and "state" in r]
    assert changes and all(r["message_id"] and r["modem_id"] == "sim1" for r in changes)
    assert not [r for r in records if r["logger"] == "gsmgw.at.trace"]
    assert "AT+CMGS" not in text and PIN not in text and key not in text


def test_trace_hook_redacts_a_pin_echoed_one_byte_at_a_time(caplog: pytest.LogCaptureFixture) -> None:
    hook = AtTraceLogger("sim9", secrets=(PIN,))
    with caplog.at_level(TRACE, logger="gsmgw.at.trace"):
        for b in f'AT+CPIN="{PIN}"\r\r\nOK\r\n'.encode():
            hook(0.0, "rx", bytes([b]))
        hook(0.0, "tx", b"AT+CMGS=23\r")
        hook(0.0, "rx", b"\r\n> ")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["sim9 rx AT+CPIN=<redacted>\\r", "sim9 rx OK\\r", "sim9 tx AT+CMGS=23\\r", "sim9 rx > "]
    assert PIN not in " ".join(lines)


def test_redaction_patterns_and_json_extras() -> None:
    assert redact('AT+CPIN="1234"') == "AT+CPIN=<redacted>"
    assert redact("AT+CPIN=12345678,1234") == "AT+CPIN=<redacted>"
    assert redact("Authorization: Bearer abc.def") == "Authorization: Bearer <redacted>"
    assert "s3cr3t" not in redact("key gsk_0123abcd_s3cr3t-XYZ")
    rec = logging.LogRecord("gsmgw.messages", logging.INFO, "x", 1, "message %s -> %s", ("m1", "sent"), None)
    rec.message_id, rec.modem_id, rec.state = "m1", "sim1", "sent"
    rec.note = 'entered AT+CPIN="1234"'
    out = json.loads(JsonFormatter().format(rec))
    assert out["message_id"] == "m1" and out["modem_id"] == "sim1" and out["state"] == "sent"
    assert out["note"] == "entered AT+CPIN=<redacted>"


async def test_expiry_is_logged_once_per_message_with_its_id(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    import datetime as dt

    from gsmgw.store import NewMessage
    from tests.helpers import make_config, running_gateway

    caplog.set_level(logging.INFO, logger="gsmgw.messages")
    async with running_gateway(make_config(tmp_path, [])) as (gw, _c):
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        res = await gw.store.call(gw.store.messages.enqueue, [NewMessage(to_number="+15550001111", text="late",
                                                                encoding="gsm7", parts_total=1,
                                                                valid_until=past)])
        [mid] = res.message_ids
        async with asyncio.timeout(10):
            while (await gw.store.call(gw.store.messages.get_message, mid))["state"] != "expired":
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # another maintenance round: no second line
    lines = [r for r in caplog.records if getattr(r, "message_id", None) == mid]
    assert len(lines) == 1 and lines[0].state == "expired"  # type: ignore[attr-defined]
