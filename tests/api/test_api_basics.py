"""The HTTP API on a real server on 127.0.0.1 (no modems: messages stay queued)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_config, running_gateway


@pytest.fixture
async def gw(tmp_path: Path):
    async with running_gateway(make_config(tmp_path)) as pair:
        yield pair


async def test_health_endpoints_need_no_key(gw) -> None:
    _, c = gw
    assert (await c.request("GET", "/healthz", key=None))[0] == 200
    status, body = await c.request("GET", "/readyz", key=None)
    assert status == 200 and body["status"] == "ready"


@pytest.mark.parametrize("path", ["/api/v1/messages", "/api/v1/status", "/api/v1/modems"])
async def test_every_api_endpoint_requires_a_key(gw, path: str) -> None:
    _, c = gw
    status, body = await c.request("GET", path, key=None)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await c.request("GET", path, key="gsk_deadbeef_wrong")
    assert status == 401


async def test_x_api_key_header_is_accepted(gw) -> None:
    _, c = gw
    status, _ = await c.request("GET", "/api/v1/status", key=None, headers={"X-API-Key": c.key})
    assert status == 200


async def test_post_message_is_committed_before_the_reply(gw) -> None:
    g, c = gw
    status, body = await c.request("POST", "/api/v1/messages", json={"to": "+15551234567", "text": "hi"})
    assert status == 202, body
    assert body["encoding"] == "gsm7" and body["parts"] == 1 and body["state"] == "queued"
    row = await g.store.call(g.store.messages.get_message, body["id"])
    assert row is not None and row["to_number"] == "+15551234567"
    status, got = await c.request("GET", f"/api/v1/messages/{body['id']}")
    assert status == 200 and got["state"] == "queued" and got["parts"][0]["state"] == "queued"


async def test_numbers_are_normalised_to_e164(gw) -> None:
    _, c = gw
    status, body = await c.request("POST", "/api/v1/messages", json={"to": "(555) 123-4567", "text": "x"})
    assert status == 422 or body["messages"][0]["to"].startswith("+1")
    status, body = await c.request("POST", "/api/v1/messages", json={"to": "+44 7700 900123", "text": "x"})
    assert status == 202 and body["messages"][0]["to"] == "+447700900123"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"to": "+1555", "text": "hi"}, "invalid_number"),
        ({"to": "+15551234567\r\nAT+CMGD=1,4", "text": "hi"}, "invalid_number"),
        ({"to": "hello", "text": "hi"}, "invalid_number"),
        ({"to": 15551234567, "text": "hi"}, "invalid_number"),
        ({"to": [], "text": "hi"}, "invalid_number"),
        ({"to": "+15551234567"}, "invalid_text"),
        ({"to": "+15551234567", "text": ""}, "invalid_text"),
        ({"to": "+15551234567", "text": "x" * 5000}, "text_too_long"),
        ({"to": "+15551234567", "text": "hi", "priority": "urgent!"}, "invalid_field"),
        ({"to": "+15551234567", "text": "hi", "flash": "yes"}, "invalid_field"),
        ({"to": "+15551234567", "text": "hi", "send_at": "tomorrow"}, "invalid_time"),
        ({"to": "+15551234567", "text": "hi", "send_at": "2030-01-01T00:00:00"}, "invalid_time"),
        ({"to": "+15551234567", "text": "hi", "ttl": -5}, "invalid_field"),
        ({"to": "+15551234567", "text": "hi", "sim": "nope"}, "unknown_sim"),
        ({"to": "+15551234567", "text": "hi", "callback_url": "http://evil.example/x"}, "callback_not_allowed"),
        ({"to": "+15551234567", "text": "hi", "colour": "red"}, "unknown_field"),
    ],
)
async def test_bad_input_gets_a_clear_error_and_nothing_is_queued(gw, payload, code) -> None:
    g, c = gw
    status, body = await c.request("POST", "/api/v1/messages", json=payload)
    assert status == 422, body
    assert body["error"]["code"] == code and body["error"]["message"]
    assert await g.store.call(g.store.messages.queue_depth) == 0


async def test_malformed_json_and_oversized_body(gw) -> None:
    _, c = gw
    status, body = await c.request("POST", "/api/v1/messages", data=b"{not json",
                                   headers={"Content-Type": "application/json"})
    assert status == 422 and body["error"]["code"] == "invalid_json"
    status, body = await c.request("POST", "/api/v1/messages", data=b"[1,2]",
                                   headers={"Content-Type": "application/json"})
    assert status == 422 and body["error"]["code"] == "invalid_json"
    status, body = await c.request("POST", "/api/v1/messages", data=b"x" * (300 * 1024),
                                   headers={"Content-Type": "application/json"})
    assert status == 413 and body["error"]["code"] == "body_too_large"


async def test_idempotency_key_never_sends_twice(gw) -> None:
    g, c = gw
    h = {"Idempotency-Key": "order-42"}
    s1, b1 = await c.request("POST", "/api/v1/messages", json={"to": "+15551234567", "text": "a"}, headers=h)
    s2, b2 = await c.request("POST", "/api/v1/messages", json={"to": "+15551234567", "text": "a"}, headers=h)
    assert s1 == s2 == 202 and b1["id"] == b2["id"]
    assert await g.store.call(g.store.messages.queue_depth) == 1


async def test_several_recipients_and_unicode_preview(gw) -> None:
    _, c = gw
    status, body = await c.request(
        "POST", "/api/v1/messages", json={"to": ["+15551234567", "+15557654321"], "text": "Привет 😀"}
    )
    assert status == 202 and body["encoding"] == "ucs2" and len(body["messages"]) == 2
    status, pv = await c.request("POST", "/api/v1/messages/preview", json={"text": "a" * 161})
    assert status == 200 and pv["parts"] == 2


async def test_scopes_are_enforced(tmp_path: Path) -> None:
    async with running_gateway(make_config(tmp_path), scopes=("read",)) as (_, c):
        status, body = await c.request("POST", "/api/v1/messages", json={"to": "+15551234567", "text": "x"})
        assert status == 403 and body["error"]["code"] == "forbidden"
        status, _ = await c.request("PATCH", "/api/v1/modems/sim1", json={"enabled": False})
        assert status == 403


async def test_list_messages_cursor_paging(gw) -> None:
    _, c = gw
    for i in range(5):
        await c.request("POST", "/api/v1/messages", json={"to": "+15551234567", "text": f"m{i}"})
    status, page1 = await c.request("GET", "/api/v1/messages?limit=3")
    assert status == 200 and len(page1["items"]) == 3 and page1["next_cursor"]
    _, page2 = await c.request("GET", f"/api/v1/messages?limit=3&cursor={page1['next_cursor']}")
    assert len(page2["items"]) == 2
    texts = [m["text"] for m in page1["items"] + page2["items"]]
    assert texts == ["m4", "m3", "m2", "m1", "m0"]
    status, body = await c.request("GET", "/api/v1/messages?limit=abc")
    assert status == 422


async def test_unknown_message_is_404_json(gw) -> None:
    _, c = gw
    status, body = await c.request("GET", "/api/v1/messages/doesnotexist")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = await c.request("GET", "/api/v1/nowhere")
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_delete_cancels_a_queued_message(gw) -> None:
    _, c = gw
    _, body = await c.request("POST", "/api/v1/messages", json={"to": "+15551234567", "text": "x",
                                                               "send_at": "2099-01-01T00:00:00Z"})
    status, got = await c.request("DELETE", f"/api/v1/messages/{body['id']}")
    assert status == 200 and got["state"] == "cancelled"
    status, got = await c.request("DELETE", f"/api/v1/messages/{body['id']}")
    assert status == 409 and got["error"]["code"] == "not_cancellable"
    status, _ = await c.request("DELETE", "/api/v1/messages/nope")
    assert status == 404


async def test_template_personalises_per_recipient(gw) -> None:
    g, c = gw
    status, body = await c.request("POST", "/api/v1/messages", json={
        "template": "Hi {name}, your code is {code}. {{literal}}",
        "variables": {"code": 1234},
        "to": [{"to": "+15551234567", "variables": {"name": "Ann"}},
               {"to": "+15557654321", "variables": {"name": "Björk", "code": "9999"}},
               ],
    })
    assert status == 202, body
    texts = [(await g.store.call(g.store.messages.get_message, m["id"]))["text"] for m in body["messages"]]
    assert texts == ["Hi Ann, your code is 1234. {literal}", "Hi Björk, your code is 9999. {literal}"]
    assert [m["encoding"] for m in body["messages"]] == ["gsm7", "gsm7"]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"to": "+15551234567", "template": "Hi {name}"}, "missing_variable"),
        ({"to": "+15551234567", "template": "Hi {name}", "text": "x"}, "invalid_text"),
        ({"to": [{"to": "+15551234567", "variables": {"a": "b"}}], "text": "x"}, "invalid_number"),
        ({"to": "+15551234567", "template": "Hi {n}", "variables": {"n": {"nested": 1}}}, "invalid_variables"),
        ({"to": [{"to": "+15551234567", "colour": "red"}], "template": "x"}, "unknown_field"),
    ],
)
async def test_template_errors(gw, payload, code) -> None:
    g, c = gw
    status, body = await c.request("POST", "/api/v1/messages", json=payload)
    assert status == 422 and body["error"]["code"] == code, body
    assert await g.store.call(g.store.messages.queue_depth) == 0


async def test_template_braces_that_are_not_placeholders_stay_literal(gw) -> None:
    g, c = gw
    status, body = await c.request("POST", "/api/v1/messages",
                                   json={"to": "+15551234567", "template": "{0.__class__} {a.b}"})
    assert status == 202
    row = await g.store.call(g.store.messages.get_message, body["id"])
    assert row["text"] == "{0.__class__} {a.b}"  # no format-string evaluation, ever
