"""Object-level authorisation (#15 point 5): a key reads and cancels its own messages,
admin all; the same for batches, the inbox and the Android-compatible routes. Another
key's message is "not found" (its existence is not revealed)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from gsmgw.store import tables as t
from gsmgw.store.records import new_id
from tests.helpers import make_config, running_gateway

A, B = "+15551234567", "+15557654321"
LATER = "2099-01-01T00:00:00Z"  # stays queued: cancellable


async def test_a_key_sees_and_cancels_only_its_own(tmp_path: Path) -> None:
    async with running_gateway(make_config(tmp_path)) as (gw, admin):
        _, alice = await gw.store.call(gw.store.keys.create_api_key, "alice", ["send", "read"])
        _, bob = await gw.store.call(gw.store.keys.create_api_key, "bob", ["send", "read"])
        _, mine = await admin.request("POST", "/api/v1/messages", key=alice,
                                      json={"to": [A, B], "text": "alice's", "send_at": LATER})
        ids = [m["id"] for m in mine["messages"]]
        status, _ = await admin.request("POST", "/messages", key=alice,
                                        json={"id": "alice-app-1", "phoneNumbers": [A], "message": "x",
                                              "scheduleAt": LATER})
        assert status == 202
        # Bob: nothing of Alice's is there for him, through any route.
        for path in (f"/api/v1/messages/{ids[0]}", f"/api/v1/batches/{mine['batch_id']}",
                     "/messages/alice-app-1", f"/messages/{ids[0]}"):
            status, _ = await admin.request("GET", path, key=bob)
            assert status == 404, path
        for path in (f"/api/v1/messages/{ids[0]}", f"/messages/{ids[1]}", "/messages/alice-app-1"):
            status, _ = await admin.request("DELETE", path, key=bob)
            assert status == 404, path
        status, page = await admin.request("GET", "/api/v1/messages", key=bob)
        assert status == 200 and page["items"] == []
        status, page = await admin.request("GET", f"/api/v1/messages?batch_id={mine['batch_id']}", key=bob)
        assert page["items"] == []
        assert (await gw.store.call(gw.store.messages.counts_by_state)) == {"queued": 3}
        # Alice: hers, all of them.
        status, page = await admin.request("GET", "/api/v1/messages", key=alice)
        theirs = {m["id"] for m in page["items"]}
        assert len(theirs) == 3 and set(ids) < theirs
        [app_msg] = theirs - set(ids)
        assert (await admin.request("GET", f"/api/v1/batches/{mine['batch_id']}", key=alice))[0] == 200
        assert (await admin.request("GET", "/messages/alice-app-1", key=alice))[0] == 200
        status, got = await admin.request("DELETE", f"/api/v1/messages/{ids[0]}", key=alice)
        assert status == 200 and got["state"] == "cancelled"
        # Admin: everyone's.
        assert (await admin.request("GET", f"/api/v1/messages/{ids[1]}"))[0] == 200
        status, page = await admin.request("GET", "/api/v1/messages")
        assert len(page["items"]) == 3
        # (An app id names a message per key: admin addresses Alice's by its gsmgw id.)
        assert (await admin.request("DELETE", f"/messages/{app_msg}"))[0] == 204


async def test_the_inbox_shows_a_key_the_replies_to_its_messages(tmp_path: Path) -> None:
    async with running_gateway(make_config(tmp_path)) as (gw, admin):
        _, alice = await gw.store.call(gw.store.keys.create_api_key, "alice", ["send", "read"])
        _, bob = await gw.store.call(gw.store.keys.create_api_key, "bob", ["send", "read"])
        _, sent = await admin.request("POST", "/api/v1/messages", key=alice, json={"to": A, "text": "Y/N?"})
        now = dt.datetime.now(dt.UTC)
        reply_id, stray_id = new_id(), new_id()
        with gw.store.engine.begin() as conn:  # two inbound messages, as the pool stores them
            for iid, text, reply_to in ((reply_id, "Y", sent["id"]), (stray_id, "hello?", None)):
                conn.execute(t.inbound_messages.insert().values(
                    id=iid, modem_id="sim1", sender=A, text=text, encoding="gsm7", parts_total=1,
                    parts_received=1, complete=True, dedup_key=iid, in_reply_to=reply_to, received_at=now))
        listed = {k: [m["id"] for m in (await admin.request("GET", "/api/v1/inbox", key=k))[1]["items"]]
                  for k in (alice, bob)}
        assert listed == {alice: [reply_id], bob: []}
        assert (await admin.request("GET", f"/api/v1/inbox/{reply_id}", key=alice))[0] == 200
        assert (await admin.request("GET", f"/api/v1/inbox/{reply_id}", key=bob))[0] == 404
        assert (await admin.request("GET", f"/api/v1/inbox/{stray_id}", key=alice))[0] == 404
        _, everything = await admin.request("GET", "/api/v1/inbox")
        assert {m["id"] for m in everything["items"]} == {reply_id, stray_id}
