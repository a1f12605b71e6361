"""Idempotency means the same request (#15 point 4): the same body with a used key
replays the first reply exactly; a different body is 409 ``idempotency_conflict``
and queues nothing. For every door: the service keeps the fingerprint."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gsmgw.intake import SendRequest
from gsmgw.intake.types import Caller
from tests.helpers import make_config, running_gateway

A, B, C = "+15551234567", "+15557654321", "+15550001111"


async def test_same_body_replays_the_first_reply_and_another_body_conflicts(tmp_path: Path) -> None:
    async with running_gateway(make_config(tmp_path)) as (gw, c):
        body = {"to": [A, B], "text": "hello", "priority": "high"}
        key = {"Idempotency-Key": "order-42"}
        s1, first = await c.request("POST", "/api/v1/messages", json=body, headers=key)
        assert s1 == 202 and len(first["messages"]) == 2
        # The same request, written differently (key order, a national number in the
        # default region US): the same request, so the first reply, exactly.
        again = {"priority": "high", "text": "hello", "to": ["(555) 123-4567", B]}
        async with c.session.post(c.base + "/api/v1/messages", json=again,
                                  headers={**key, "Authorization": f"Bearer {c.key}"}) as r:
            assert r.status == 202 and r.headers["Idempotent-Replayed"] == "true"
            assert await r.json() == first
        # A different body with the used key: a conflict, nothing queued, the first untouched.
        for other in ({"to": [A, C], "text": "hello", "priority": "high"},
                      {"to": [A, B], "text": "hello!", "priority": "high"},
                      {"to": [A, B], "text": "hello"},
                      {"to": [A, B], "text": "hello", "priority": "high", "flash": True}):
            status, reply = await c.request("POST", "/api/v1/messages", json=other, headers=key)
            assert status == 409 and reply["error"]["code"] == "idempotency_conflict", (other, reply)
        assert (await gw.store.call(gw.store.messages.counts_by_state)) == {"queued": 2}
        # Another key may use the same Idempotency-Key for its own request.
        _, other_key = await gw.store.call(gw.store.keys.create_api_key, "other", ["send", "read"])
        status, reply = await c.request("POST", "/api/v1/messages", key=other_key,
                                        json={"to": C, "text": "x"}, headers=key)
        assert status == 202 and reply["id"] not in {m["id"] for m in first["messages"]}


async def test_parallel_identical_requests_queue_once(tmp_path: Path) -> None:
    async with running_gateway(make_config(tmp_path)) as (gw, c):
        body = {"to": A, "text": "once"}
        replies = await asyncio.gather(*(c.request("POST", "/api/v1/messages", json=body,
                                                   headers={"Idempotency-Key": "k1"}) for _ in range(20)))
        assert {s for s, _ in replies} == {202}
        assert len({r["id"] for _, r in replies}) == 1
        assert (await gw.store.call(gw.store.messages.counts_by_state)) == {"queued": 1}
        # ... and a concurrent different body still gets its conflict.
        results = await asyncio.gather(*(c.request("POST", "/api/v1/messages", json={"to": B, "text": "no"},
                                                   headers={"Idempotency-Key": "k1"}) for _ in range(5)))
        assert {s for s, _ in results} == {409}


async def test_android_door_id_reused_for_another_message_is_a_conflict(tmp_path: Path) -> None:
    async with running_gateway(make_config(tmp_path)) as (gw, c):
        msg = {"id": "app-1", "phoneNumbers": [A], "message": "hi"}
        s1, _ = await c.request("POST", "/messages", json=msg)
        s2, _ = await c.request("POST", "/messages", json=msg)
        assert (s1, s2) == (202, 202)
        status, body = await c.request("POST", "/messages", json={**msg, "message": "something else"})
        assert status == 409 and body["data"]["error"] == "idempotency_conflict", body
        assert (await gw.store.call(gw.store.messages.counts_by_state)) == {"queued": 1}


async def test_the_service_replays_before_admission(tmp_path: Path) -> None:
    """A retry of an accepted request is answered even when the caller's quota is used up."""
    async with running_gateway(make_config(tmp_path)) as (gw, _c):
        key_id, _secret = await gw.store.call(gw.store.keys.create_api_key, "q", ["send"], daily_quota=1)
        caller = Caller(id=key_id, name="q", scopes=frozenset({"send"}), daily_quota=1)
        req = SendRequest(to=A, text="one", idempotency_key="retry-me")
        first = await gw.intake.submit(caller, req)
        again = await gw.intake.submit(caller, req)
        assert again.replayed and again.messages == first.messages and again.batch_id == first.batch_id
