"""Kannel's /cgi-bin/sendsms, driven with curl (as the scripts and monitoring tools
that speak it do) against a real gateway on 127.0.0.1, with emulated modems on
real pseudo-terminals for the end-to-end case and its dlr-url callbacks."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web

from gsmgw.api.compat_kannel import expand
from gsmgw.api.event_follower import FOLLOWER
from gsmgw.config import Config, WebhooksConfig
from gsmgw.emulator import FakeModemPool
from tests.helpers import make_config, running_gateway

CURL = shutil.which("curl")
pytestmark = pytest.mark.skipif(CURL is None, reason="curl is not installed")


async def curl(*args: str | bytes) -> tuple[int, str]:
    assert CURL is not None
    proc = await asyncio.create_subprocess_exec(
        CURL, "-sS", "--max-time", "10", "-w", "\n%{http_code}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    body, _, code = out.decode().rpartition("\n")
    return int(code), body


@dataclasses.dataclass
class DlrReceiver:
    url: str
    hits: list[dict[str, str]]


@pytest.fixture
async def dlr() -> AsyncIterator[DlrReceiver]:
    hits: list[dict[str, str]] = []

    async def hook(request: web.Request) -> web.Response:
        hits.append(dict(request.query))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/dlr", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield DlrReceiver(f"http://127.0.0.1:{runner.addresses[0][1]}/dlr", hits)
    finally:
        await runner.cleanup()


def _config(tmp_path: Path, ports: list[str]) -> Config:
    return dataclasses.replace(make_config(tmp_path, ports), webhooks=WebhooksConfig(allowed_hosts=("127.0.0.1",)))


def _url(base: str, **params: str) -> str:
    return base + "/cgi-bin/sendsms?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


async def _until(pred: Any, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_curl_get_sends_end_to_end_and_calls_the_dlr_url(tmp_path: Path, dlr: DlrReceiver) -> None:
    async with FakeModemPool(count=2, directory=tmp_path / "ports", report_delay_s=0.01) as fake:
        sim2 = fake.modems[1].modem.number
        async with running_gateway(_config(tmp_path, [str(m.path) for m in fake.modems])) as (gw, c):
            for sid in ("sim1", "sim2"):
                await gw.pool.slots[sid].driver.wait_ready(10)
            template = dlr.url + "?type=%d&to=%p&id=%I&reply=%A&user=%n&pct=%%"
            status, body = await curl(_url(c.base, username="monitor", password=c.key, to=f"{sim2} bogus",
                                           text="disk full on db1", **{"dlr-mask": "9", "dlr-url": template}))
            assert status == 202 and body == "0: Accepted for delivery Denied receivers are: bogus", body
            [row] = (await c.request("GET", "/api/v1/messages"))[1]["items"]
            assert row["to"] == sim2 and row["text"] == "disk full on db1"
            # A second message asks for the final report only (mask 1: no "8" for it).
            status, _ = await curl(_url(c.base, username="monitor", password=c.key, to=sim2, text="second",
                                        **{"dlr-mask": "1", "dlr-url": dlr.url + "?type=%d&tag=final-only"}))
            assert status == 202
            await c.wait_state(row["id"], {"delivered"})
            await _until(lambda: {h["type"] for h in dlr.hits if "tag" not in h} == {"8", "1"}, "DLR callbacks")
            await _until(lambda: [h for h in dlr.hits if "tag" in h], "the second message's DLR")
            # The follower handles events in order and starts each callback as it goes:
            # once it is past every event so far with no callback in flight, a report
            # outside the mask would be among the hits.
            follower = gw.api.app[FOLLOWER]
            last_id = max(e["id"] for e in await gw.store.call(gw.store.events.list_events, limit=1000))
            await _until(lambda: follower.cursor >= last_id and follower.in_flight == 0, "the follower to catch up")
            assert [h["type"] for h in dlr.hits if "tag" in h] == ["1"]
            by_type = {h["type"]: h for h in dlr.hits if "tag" not in h}
            assert by_type["8"] == {"type": "8", "to": sim2, "id": row["id"], "reply": "ACK/", "user": "monitor",
                                    "pct": "%"}
            assert by_type["1"]["reply"] == "Delivered"
            # The text arrived on the other SIM, through the gateway's own inbound path.
            await _until(lambda: fake.modems[1].modem.storages["SM"].used == 0, "inbound drained")


@pytest.fixture
async def gw(tmp_path: Path):
    async with running_gateway(_config(tmp_path, [])) as pair:
        yield pair


async def test_curl_errors_are_kannels(gw) -> None:
    _, c = gw
    ok = {"username": "u", "password": c.key, "to": "+447700900123", "text": "x"}
    assert await curl(_url(c.base, **{**ok, "password": "gsk_deadbeef_wrongwrongwrong"})) == (
        403, "Authorization failed for sendsms")
    assert await curl(_url(c.base, **{k: v for k, v in ok.items() if k != "username"})) == (
        403, "Authorization failed for sendsms")
    assert await curl(_url(c.base, **{k: v for k, v in ok.items() if k != "to"})) == (
        400, "Missing receiver number, rejected")
    assert await curl(_url(c.base, **{**ok, "to": ""})) == (400, "Empty receiver number not allowed, rejected")
    assert await curl(_url(c.base, **{**ok, "to": "12\r\n34 nope"})) == (
        400, "Number(s) has/have been denied by white- and/or black-lists.")
    assert await curl(_url(c.base, **{**ok, "coding": "7"})) == (400, "Coding field misformed, rejected")
    assert (await curl(_url(c.base, **{**ok, "coding": "1"})))[0] == 400
    assert await curl(_url(c.base, **{**ok, "dlr-mask": "64"})) == (400, "DLR-Mask field misformed, rejected")
    status, body = await curl(_url(c.base, **{**ok, "dlr-mask": "1", "dlr-url": "http://203.0.113.5/x?s=%d"}))
    assert status == 400 and "allowed_hosts" in body
    assert await curl(_url(c.base, **{**ok, "charset": "no-such-charset"})) == (
        400, "Charset or body misformed, rejected")
    long_form = ["--data-urlencode", "text=" + "x" * 20000, c.base + "/cgi-bin/sendsms?user=u&to=1&pass=" + c.key]
    assert await curl(*long_form) == (400, "text is longer than 10000 characters, rejected")
    # Nothing above was queued.
    assert (await c.request("GET", "/api/v1/messages"))[1]["items"] == []


async def test_curl_encodings_post_forms_and_deferred(gw) -> None:
    g, c = gw
    # coding=2: the text is UTF-16BE bytes (Kannel's default charset for UCS-2).
    status, body = await curl(c.base + "/cgi-bin/sendsms?user=u&pass=" + quote(c.key)
                              + "&to=%2B447700900123&coding=2&text=%00G%00r%00%FC%00%DF%00e")
    # No modem is ready in this gateway, so Kannel's "queued" answer.
    assert (status, body) == (202, "3: Queued for later delivery")
    # Kannel's POST: the text is the body, the rest X-Kannel-* headers.
    status, body = await curl("-X", "POST", "-H", "Content-Type: text/plain; charset=ISO-8859-1",
                              "-H", "X-Kannel-Username: u", "-H", f"X-Kannel-Password: {c.key}",
                              "-H", "X-Kannel-To: +447700900124", "--data-binary", "caf\xe9".encode("latin-1"),
                              c.base + "/cgi-bin/sendsms")
    assert status == 202, body
    # A form POST with two recipients, deferred by 60 minutes, as a flash SMS.
    status, body = await curl("--data-urlencode", "username=u", "--data-urlencode", f"password={c.key}",
                              "--data-urlencode", "to=+447700900125 +447700900126", "--data-urlencode",
                              "text=Grüße", "-d", "deferred=60", "-d", "mclass=0", "-d", "priority=3",
                              c.base + "/cgi-bin/sendsms")
    assert (status, body) == (202, "3: Queued for later delivery")
    items = (await c.request("GET", "/api/v1/messages"))[1]["items"]
    got = {m["to"]: m for m in items}
    assert got["+447700900123"]["text"] == "Grüße"
    assert got["+447700900124"]["text"] == "café"
    for n in ("+447700900125", "+447700900126"):
        assert got[n]["text"] == "Grüße" and got[n]["flash"] is True and got[n]["priority"] == 9
        assert got[n]["send_at"] > got[n]["created_at"]


async def test_curl_with_a_key_lacking_send_scope_and_opted_out_numbers(gw) -> None:
    g, c = gw
    _, read_only = await g.store.call(g.store.keys.create_api_key, "reader", ["read"])
    assert await curl(_url(c.base, username="r", password=read_only, to="+447700900123", text="x")) == (
        403, "Authorization failed for sendsms")
    await g.store.call(g.store.optouts.add_optout, "+447700900123", source="api")
    status, body = await curl(_url(c.base, username="u", password=c.key, to="+447700900123 +447700900999",
                                   text="promo"))
    assert status == 202 and body.endswith("Denied receivers are: +447700900123")
    assert [m["to"] for m in (await c.request("GET", "/api/v1/messages"))[1]["items"]] == ["+447700900999"]


def test_dlr_url_escapes_are_url_encoded() -> None:
    values = {"d": "1", "p": "+44 7700", "A": "NACK/a&b=c"}
    assert expand("http://h/x?s=%d&to=%p&r=%A&u=%u&p=%%", values) == (
        "http://h/x?s=1&to=%2B44%207700&r=NACK%2Fa%26b%3Dc&u=&p=%25")


async def test_no_input_makes_a_server_error(gw) -> None:
    """Every parameter with odd values (bad numbers, raw bytes, bad escapes): a
    Kannel 202/400/403, never a 5xx."""
    _, c = gw
    values = ["", "-1", "0", "3", "99999999999999999999", "%ZZ", "%00", "%FF%FE", "%C3%A9", "1e3", "+", "%2B1",
              "http://127.0.0.1/x?%d", "rot13", "base64", "utf-16", "punycode", "undefined"]
    names = ["username", "password", "to", "text", "charset", "coding", "mclass", "validity", "deferred",
             "priority", "dlr-mask", "dlr-url", "account", "from"]
    ok = {"username": "u", "password": c.key, "to": "%2B447700900123", "text": "x"}
    codes = set()
    for name in names:
        for value in values:
            params = {**ok, name: value}
            query = "&".join(f"{k}={v}" for k, v in params.items())  # raw: the escapes above stay as written
            status, body = await curl(c.base + "/cgi-bin/sendsms?" + query)
            assert status in (202, 400, 403), (name, value, status, body)
            codes.add(status)
    assert codes == {202, 400, 403}
    # Kannel-style POST with an unknown content type or a body in a charset it is not in.
    assert (await curl("-H", "Content-Type: application/xml", "--data-binary", "<x/>",
                       c.base + "/cgi-bin/sendsms"))[0] == 400
    status, _ = await curl("-H", "Content-Type: text/plain; charset=utf-8", "-H", "X-Kannel-Username: u",
                           "-H", f"X-Kannel-Password: {c.key}", "-H", "X-Kannel-To: +447700900123",
                           "--data-binary", b"\xff\xfe\xfa", c.base + "/cgi-bin/sendsms")
    assert status == 400
