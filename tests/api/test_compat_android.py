"""The SMS Gateway for Android local-server API, driven by that app's own Python
client package (``android-sms-gateway`` from PyPI) against a real gateway on
127.0.0.1 with emulated modems on real pseudo-terminals."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gsmgw.config import Config, WebhooksConfig
from gsmgw.emulator import FakeModemPool
from tests.helpers import make_config, running_gateway

android_sms_gateway = pytest.importorskip("android_sms_gateway")
from android_sms_gateway import client as asg_client  # noqa: E402
from android_sms_gateway import domain, errors  # noqa: E402
from android_sms_gateway.ahttp import AiohttpAsyncHttpClient  # noqa: E402
from android_sms_gateway.enums import ProcessState, WebhookEvent  # noqa: E402


@dataclasses.dataclass
class Receiver:
    url: str
    hits: list[dict[str, Any]]

    def of(self, event: str) -> list[dict[str, Any]]:
        return [h for h in self.hits if h.get("event") == event]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hits: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        hits.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Receiver(f"http://127.0.0.1:{port}/hook", hits)
    finally:
        await runner.cleanup()


def _config(tmp_path: Path, ports: list[str]) -> Config:
    cfg = make_config(tmp_path, ports)
    return dataclasses.replace(cfg, webhooks=WebhooksConfig(allowed_hosts=("127.0.0.1",)))


async def _until(pred: Any, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _client(base: str, key: str, session: aiohttp.ClientSession) -> Any:
    # Basic auth, as the app's local server uses it: any username, the API key as password.
    return asg_client.AsyncAPIClient("any-user", key, base_url=base,
                                     http_client=AiohttpAsyncHttpClient(session))


async def test_send_state_webhooks_and_health_with_the_apps_own_client(tmp_path: Path, receiver: Receiver) -> None:
    async with FakeModemPool(count=2, directory=tmp_path / "ports", report_delay_s=0.01) as fake:
        sim2_number = fake.modems[1].modem.number
        async with running_gateway(_config(tmp_path, [str(m.path) for m in fake.modems])) as (gw, c):
            for sid in ("sim1", "sim2"):
                await gw.pool.slots[sid].driver.wait_ready(10)
            async with aiohttp.ClientSession() as session:
                api = _client(c.base, c.key, session)
                health = await api.health_check()
                assert health.status.value == "pass" and health.checks["modems:ready"].observed_value == 2

                hooks = {}
                for ev in (WebhookEvent.SMS_SENT, WebhookEvent.SMS_DELIVERED, WebhookEvent.SMS_RECEIVED):
                    hooks[ev] = await api.create_webhook(domain.Webhook(id=None, url=receiver.url, event=ev))
                listed = await api.get_webhooks()
                assert {w.id for w in listed} == {w.id for w in hooks.values()}

                msg = domain.Message(phone_numbers=[sim2_number], text_message=domain.TextMessage("hello from asg"),
                                     with_delivery_report=True, sim_number=1, id="order-4711")
                state = await api.send(msg)
                assert state.id == "order-4711" and state.state == ProcessState.Pending
                assert [r.phone_number for r in state.recipients] == [sim2_number]

                async def delivered() -> Any:
                    deadline = time.monotonic() + 10
                    while time.monotonic() < deadline:
                        s = await api.get_state("order-4711")
                        if s.state in (ProcessState.Delivered, ProcessState.Failed):
                            return s
                        await asyncio.sleep(0.05)
                    raise AssertionError("not delivered")

                final = await delivered()
                assert final.state == ProcessState.Delivered, final
                assert final.recipients[0].state == ProcessState.Delivered
                assert final.states and "Delivered" in final.states
                # The very same message went through the native store.
                [row] = (await c.request("GET", "/api/v1/messages"))[1]["items"]
                assert row["to"] == sim2_number and row["sim"] == "sim1" and row["state"] == "delivered"

                # A retry with the same id is the same message: nothing is sent twice.
                again = await api.send(msg)
                assert again.id == "order-4711"
                assert len((await c.request("GET", "/api/v1/messages"))[1]["items"]) == 1

                await _until(lambda: receiver.of("sms:delivered") and receiver.of("sms:received")
                             and receiver.of("sms:sent"), "webhooks")
                [sent_hook] = receiver.of("sms:sent")
                assert sent_hook["payload"]["messageId"] == "order-4711"
                assert sent_hook["payload"]["phoneNumber"] == sim2_number
                assert sent_hook["webhookId"] == hooks[WebhookEvent.SMS_SENT].id
                assert sent_hook["payload"]["simNumber"] == 1
                [received] = receiver.of("sms:received")
                assert received["payload"]["message"] == "hello from asg"
                assert received["payload"]["phoneNumber"] == fake.modems[0].modem.number
                assert received["payload"]["simNumber"] == 2

                await api.delete_webhook(hooks[WebhookEvent.SMS_SENT].id)
                assert len(await api.get_webhooks()) == 2


@pytest.fixture
async def gw(tmp_path: Path):
    async with running_gateway(_config(tmp_path, [])) as pair:
        yield pair


async def test_sync_client_with_requests_sends_and_reads_state(gw) -> None:
    pytest.importorskip("requests")
    _, c = gw

    def run() -> tuple[Any, Any]:
        with asg_client.APIClient("u", c.key, base_url=c.base) as api:
            sent = api.send(domain.Message(phone_numbers=["+447700900123", "+447700900124"],
                                           text_message=domain.TextMessage("two recipients")))
            return sent, api.get_state(sent.id)

    sent, state = await asyncio.to_thread(run)
    assert state.id == sent.id and state.state == ProcessState.Pending
    # The send reply keeps the request's order; a later read has no order to keep.
    assert [r.phone_number for r in sent.recipients] == ["+447700900123", "+447700900124"]
    assert sorted(r.phone_number for r in state.recipients) == ["+447700900123", "+447700900124"]


async def test_bad_input_and_auth_failures_are_the_apps_4xx(gw) -> None:
    _, c = gw
    async with aiohttp.ClientSession() as session:
        api = _client(c.base, c.key, session)
        with pytest.raises(errors.BadRequestError) as bad:
            await api.send(domain.Message(phone_numbers=["not a number"], text_message=domain.TextMessage("x")))
        assert bad.value.response["data"]["field"] == "phoneNumbers"
        with pytest.raises(errors.BadRequestError):
            await api.send(domain.Message(phone_numbers=["+447700900123"], text_message=domain.TextMessage("")))
        with pytest.raises(errors.BadRequestError):  # a control character in a number
            await api.send(domain.Message(phone_numbers=["+44770090\r0123"], text_message=domain.TextMessage("x")))
        with pytest.raises(errors.BadRequestError):  # only hosts in webhooks.allowed_hosts
            await api.create_webhook(domain.Webhook(id=None, url="http://203.0.113.9/hook",
                                                    event=WebhookEvent.SMS_RECEIVED))
        with pytest.raises(errors.NotFoundError):
            await api.get_state("no-such-id")
        wrong = _client(c.base, "gsk_deadbeef_wrongwrongwrong", session)
        with pytest.raises(errors.UnauthorizedError):
            await wrong.send(domain.Message(phone_numbers=["+447700900123"], text_message=domain.TextMessage("x")))
        async with session.get(c.base + "/messages/x") as r:  # a challenge for clients that wait for one
            assert r.status == 401 and "Basic" in r.headers["WWW-Authenticate"]
        # Health needs no key (as on the phone).
        async with session.get(c.base + "/health") as r:
            assert r.status == 200 and (await r.json())["status"] in ("pass", "warn")
    # Nothing of the above was queued.
    assert (await c.request("GET", "/api/v1/messages"))[1]["items"] == []


async def test_legacy_message_field_and_cancel(gw) -> None:
    _, c = gw
    auth = "Basic " + base64.b64encode(f"x:{c.key}".encode()).decode()
    status, body = await c.request("POST", "/message", key=None, headers={"Authorization": auth},
                                   json={"message": "legacy shape", "phoneNumbers": ["+447700900123"],
                                         "ttl": 3600, "priority": 100})
    assert status == 202 and body["state"] == "Pending", body
    row = (await c.request("GET", "/api/v1/messages"))[1]["items"][0]
    assert row["text"] == "legacy shape" and row["priority"] == 9
    async with aiohttp.ClientSession() as session:
        api = _client(c.base, c.key, session)
        await api.cancel_message(body["id"])
        assert (await api.get_state(body["id"])).state == ProcessState.Cancelled
    status, _ = await c.request("POST", "/message", key=None, headers={"Authorization": auth},
                                json={"dataMessage": {"data": "AAAA", "port": 53739},
                                      "phoneNumbers": ["+447700900123"]})
    assert status == 400


NASTY = [None, True, 0, -1, 1.5, 10**30, "", "x", "\x00\r\n", "2000-01-01T00:00:00", [], [1], ["+447700900123"],
         {}, {"text": 1}, {"text": "ok"}]
FIELDS = ["message", "textMessage", "phoneNumbers", "simNumber", "withDeliveryReport", "ttl", "validUntil",
          "scheduleAt", "priority", "id", "isEncrypted", "dataMessage", "mmsMessage"]


async def test_no_input_makes_a_server_error(gw) -> None:
    """Every field with every wrong type: a 4xx (or 202 when it happens to be valid), never a 5xx."""
    _, c = gw
    base = {"textMessage": {"text": "hi"}, "phoneNumbers": ["+447700900123"]}
    seen = set()
    for field in FIELDS:
        for value in NASTY:
            status, body = await c.request("POST", "/messages", json={**base, field: value})
            assert status in (202, 400), (field, value, status, body)
            seen.add(status)
    for value in NASTY:
        status, body = await c.request("POST", "/webhooks", json={"url": value, "event": value, "id": value})
        assert status == 400, (value, status, body)
    for raw in (b"", b"{", b"[]", b"\xff\xfe", b'"text"', b"null"):
        status, _ = await c.request("POST", "/messages", data=raw, headers={"Content-Type": "application/json"})
        assert status == 400
    for path in ("/messages/%00", "/messages/" + "x" * 5000, "/webhooks/%2F"):
        assert (await c.request("GET", path))[0] in (404, 405)
    assert seen == {202, 400}
