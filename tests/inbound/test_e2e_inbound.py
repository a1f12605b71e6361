"""Inbound end to end over the emulator on real pseudo-terminals: SIM → SIM through
the gateway's own API, reassembly, one signed webhook, outbox durability, crash
between commit and delete, opt-out."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

from gsmgw.daemon import Gateway
from gsmgw.emulator import FakeModemPool
from gsmgw.modem import Modem
from gsmgw.pool import default_driver_factory
from tests.helpers import Client, running_gateway
from tests.inbound.conftest import Receiver
from tests.inbound.helpers import inbound_config, wait_until

LONG = "Zurück aus dem Urlaub! " * 14 + "Ende."  # GSM 7-bit with ü: 3 parts


async def _inbox(c: Client, **params: str) -> list[dict[str, Any]]:
    q = "&".join(f"{k}={v}" for k, v in params.items())
    status, body = await c.request("GET", "/api/v1/inbox" + (f"?{q}" if q else ""))
    assert status == 200, body
    return list(body["items"])


async def test_multipart_sim_to_sim_arrives_once_and_fires_one_signed_webhook(
        tmp_path: Path, receiver: Receiver) -> None:
    async with FakeModemPool(count=2, directory=tmp_path / "ports", report_delay_s=0.01) as fake:
        sim2_number = fake.modems[1].modem.number
        cfg = inbound_config(tmp_path, [str(m.path) for m in fake.modems], hook_url=receiver.url)
        async with running_gateway(cfg) as (gw, c):
            for sid in ("sim1", "sim2"):
                await gw.pool.slots[sid].driver.wait_ready(10)
            status, sent = await c.request("POST", "/api/v1/messages",
                                           json={"to": sim2_number, "text": LONG, "sim": "sim1"})
            assert status == 202 and sent["parts"] == 3, sent
            await c.wait_state(sent["id"], {"delivered"})
            await wait_until(lambda: receiver.of_type("sms:received") and receiver.of_type("sms:delivered"),
                             what="webhooks")
            items = await _inbox(c)
            assert len(items) == 1, items
            [msg] = items
            assert msg["text"] == LONG and msg["complete"] and msg["parts_received"] == 3
            assert msg["from"] == fake.modems[0].modem.number and msg["sim"] == "sim2"
            # The SIM storage is drained after the commit.
            await wait_until(lambda: fake.modems[1].modem.storages["SM"].used == 0, what="drained")

            # A duplicate would be a second sms:received event in the outbox: wait until
            # every event written so far has reached the receiver, then count.
            async def outbox_delivered() -> bool:
                events = await gw.store.call(gw.store.events.list_events, limit=1000)
                return {e["id"] for e in events} <= {h.json["event_id"] for h in receiver.hits}

            await wait_until(outbox_delivered, what="every event at the receiver")
            assert len(await gw.store.call(gw.store.events.list_events, type_="sms:received", limit=10)) == 1
            received = receiver.of_type("sms:received")
            assert len(received) == 1
            hit = received[0]
            assert hit.signature_ok()
            assert not hit.signature_ok("another secret")
            assert hit.headers["X-Gsmgw-Event-Id"] == str(hit.json["event_id"])
            assert hit.json["data"]["id"] == msg["id"] and hit.json["data"]["text"] == LONG
            # One delivered / sent event per message, never per part.
            delivered = [h for h in receiver.of_type("sms:delivered") if h.json["data"]["message_id"] == sent["id"]]
            sent_hits = [h for h in receiver.of_type("sms:sent") if h.json["data"]["message_id"] == sent["id"]]
            assert len(delivered) == 1 and len(sent_hits) == 1
            assert delivered[0].json["data"]["parts_total"] == 3
            assert all(h.signature_ok() for h in receiver.hits)
            assert len({h.headers["X-Gsmgw-Event-Id"] for h in receiver.hits}) == len(receiver.hits)
            # The sender's modem came online: that is an event too.
            assert {h.json["data"]["sim"] for h in receiver.of_type("modem:online")} == {"sim1", "sim2"}


async def test_receiver_and_gateway_down_for_a_while_still_get_every_event(
        tmp_path: Path, receiver: Receiver) -> None:
    await receiver.down()
    senders = ["+447700900101", "+447700900102", "+447700900103"]
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        cfg = inbound_config(tmp_path, [str(m.path) for m in fake.modems], hook_url=receiver.url,
                             events=("sms:received",))
        async with running_gateway(cfg) as (gw, c):
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            for i, s in enumerate(senders[:2]):
                fake.modems[0].modem.inject_sms(s, f"message {i}")
            await wait_until(lambda: gw.store.call(gw.store.inbound.list_inbound), what="inbox")
            await wait_until(lambda: len(gw.store.inbound.list_inbound()) == 2, what="two inbound")

            async def failed_attempts() -> bool:
                rows = await gw.store.call(gw.store.webhooks.list_webhook_deliveries)
                return len(rows) == 2 and any(r["attempts"] >= 1 and r["state"] == "pending" for r in rows)

            await wait_until(failed_attempts, what="failed attempts while the receiver is down")
        # The gateway is down too; an SMS arrives meanwhile (held on the SIM).
        fake.modems[0].modem.inject_sms(senders[2], "message 2")
        await asyncio.sleep(0.05)
        await receiver.up()
        async with running_gateway(cfg) as (gw, c):
            await wait_until(lambda: len(receiver.of_type("sms:received")) >= 3, what="all three webhooks")
            inbox = await _inbox(c)
            assert {m["from"] for m in inbox} == set(senders)
            got = receiver.of_type("sms:received")
            assert {h.json["data"]["id"] for h in got} == {m["id"] for m in inbox}
            assert all(h.signature_ok() for h in got)
            await wait_until(lambda: gw.store.webhooks.webhook_counts() == {"delivered": 3}, what="all delivered")
            status, deliveries = await c.request("GET", "/api/v1/webhooks/deliveries?state=delivered")
            assert status == 200 and len(deliveries["items"]) == 3
            assert max(d["attempts"] for d in deliveries["items"]) >= 2


def _frozen_before_delete(frozen: asyncio.Event) -> Any:
    """A driver factory whose modem 'dies' right after the commit, before AT+CMGD: the
    process is stopped there, as a crash or kill -9 would leave it."""

    def factory(mcfg: Any) -> Modem:
        driver = default_driver_factory(mcfg)
        assert isinstance(driver, Modem)

        async def delete_sms(index: int, storage: str | None = None) -> None:
            frozen.set()
            await asyncio.Event().wait()

        driver.delete_sms = delete_sms  # type: ignore[method-assign]
        return driver

    return factory


async def test_crash_between_commit_and_delete_does_not_duplicate(tmp_path: Path) -> None:
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        sim = fake.modems[0].modem
        cfg = inbound_config(tmp_path, [str(m.path) for m in fake.modems])
        frozen = asyncio.Event()
        gw = Gateway(cfg, host="test-host", driver_factory=_frozen_before_delete(frozen))
        await gw.start()
        try:
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            sim.inject_sms("+447700900200", LONG)  # three parts
            await asyncio.wait_for(frozen.wait(), 10)
            # The first part is committed, nothing is deleted, the message waits for its rest.
            assert await gw.store.call(gw.store.inbound.pending_inbound_parts) == 1
            assert sim.storages["SM"].used == 3
        finally:
            await gw.stop()
        async with running_gateway(cfg) as (gw2, c):
            await wait_until(lambda: sim.storages["SM"].used == 0, what="storage drained after restart")
            inbox = await _inbox(c)
            assert len(inbox) == 1 and inbox[0]["text"] == LONG and inbox[0]["complete"]
            assert gw2.pool.inbound.duplicates_total == 1  # the part committed before the crash
            events = await gw2.store.call(gw2.store.events.list_events, type_="sms:received")
            assert len(events) == 1
        # A third start finds nothing new.
        async with running_gateway(cfg) as (gw3, c):
            await gw3.pool.slots["sim1"].driver.wait_ready(10)
            await wait_until(lambda: gw3.pool.inbound.sweeps_total >= 1, what="sweep")
            assert len(await _inbox(c)) == 1


async def test_stop_keyword_blocks_sending_until_start(tmp_path: Path) -> None:
    number = "+447700900300"
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        sim = fake.modems[0].modem
        cfg = inbound_config(tmp_path, [str(m.path) for m in fake.modems],
                             stop_reply="You will get no more messages. Reply START to undo.")
        async with running_gateway(cfg) as (gw, c):
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            sim.inject_sms(number, "  Stop! ")

            async def listed() -> bool:
                return bool(await gw.store.call(gw.store.optouts.opted_out, [number]))

            await wait_until(listed, what="opt-out recorded")
            status, body = await c.request("POST", "/api/v1/messages", json={"to": number, "text": "Sale!"})
            assert status == 422 and body["error"]["code"] == "opted_out", body
            assert number in body["error"]["message"]
            # Several recipients: the whole request is refused, nothing is queued.
            status, body = await c.request("POST", "/api/v1/messages",
                                           json={"to": ["+447700900399", number], "text": "Sale!"})
            assert status == 422 and body["error"]["code"] == "opted_out"
            status, body = await c.request("POST", "/api/v1/messages",
                                           json={"to": number, "text": "Your code is 1234", "transactional": True})
            assert status == 202, body
            # The confirmation went back on the SIM the STOP came in on.
            await wait_until(lambda: any(r.destination.endswith(number[1:]) and "START" in r.submit.text
                                         for r in sim.sent), what="confirmation sent")
            status, msgs = await c.request("GET", f"/api/v1/messages?to={number.replace('+', '%2B')}")
            texts = {m["text"]: m for m in msgs["items"]}
            assert texts[cfg.inbound.stop_reply]["sim"] == "sim1" and texts[cfg.inbound.stop_reply]["transactional"]
            status, lst = await c.request("GET", "/api/v1/optouts")
            assert [o["number"] for o in lst["items"]] == [number] and lst["items"][0]["keyword"] == "stop"
            # Accents and case do not matter; a keyword inside a sentence is not an opt-out.
            sim.inject_sms("+447700900301", "ARRÊT")
            sim.inject_sms("+447700900302", "please don't stop writing")
            await wait_until(lambda: len(gw.store.inbound.list_inbound()) == 3, what="three inbound")
            assert await gw.store.call(gw.store.optouts.opted_out, ["+447700900301", "+447700900302"]) == {"+447700900301"}
            sim.inject_sms(number, "start")

            async def lifted() -> bool:
                return not await gw.store.call(gw.store.optouts.opted_out, [number])

            await wait_until(lifted, what="opt-out lifted")
            status, body = await c.request("POST", "/api/v1/messages", json={"to": number, "text": "Welcome back"})
            assert status == 202, body
            added = await gw.store.call(gw.store.events.list_events, type_="optout:added")
            removed = await gw.store.call(gw.store.events.list_events, type_="optout:removed")
            assert len(added) == 2 and len(removed) == 1


async def test_modem_offline_and_online_events_reach_the_receiver(tmp_path: Path, receiver: Receiver) -> None:
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        cfg = inbound_config(tmp_path, [str(m.path) for m in fake.modems], hook_url=receiver.url,
                             events=("modem:*",))
        async with running_gateway(cfg) as (gw, c):
            await wait_until(lambda: len(receiver.of_type("modem:online")) == 1, what="online")
            await fake.modems[0].unplug()
            await wait_until(lambda: len(receiver.of_type("modem:offline")) == 1, what="offline")
            await fake.modems[0].replug()
            await wait_until(lambda: len(receiver.of_type("modem:online")) == 2, timeout_s=20, what="online again")
            assert [h.type for h in receiver.hits] == ["modem:online", "modem:offline", "modem:online"]
            assert receiver.hits[1].json["data"]["sim"] == "sim1"


async def test_sms_routed_directly_with_cmt_is_stored_once(tmp_path: Path) -> None:
    """+CNMI mt=2: the PDU comes with the URC (+CMT) and nothing is left in storage."""
    def factory(mcfg: Any) -> Modem:
        return Modem(dataclasses.replace(mcfg, command_timeout_s=2.0, registration_timeout_s=5.0, ack_cmt=True))

    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        sim = fake.modems[0].modem
        cfg = inbound_config(tmp_path, [str(m.path) for m in fake.modems])
        gw = Gateway(cfg, host="test-host", driver_factory=factory)
        await gw.start()
        try:
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            assert sim.cnmi[1] == 2
            sim.inject_sms("+447700900800", LONG)
            await wait_until(lambda: gw.store.inbound.list_inbound(), what="inbound via +CMT")
            [row] = gw.store.inbound.list_inbound()
            assert row["text"] == LONG and row["complete"]
            assert sim.storages["SM"].used == 0
        finally:
            await gw.stop()


async def test_modem_restarted_by_a_reload_is_swept_again(tmp_path: Path) -> None:
    import dataclasses

    from gsmgw.emulator import StoredSms
    from gsmgw.sms import encode_deliver

    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        sim = fake.modems[0].modem
        cfg = inbound_config(tmp_path, [str(m.path) for m in fake.modems], sweep_interval_s=3600.0)
        async with running_gateway(cfg) as (gw, c):
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            await wait_until(lambda: gw.pool.inbound.sweeps_total >= 1, what="first sweep")
            # Stored without a +CMTI (the indication was lost): only a sweep can find it.
            [pdu] = encode_deliver("+447700900900", "found by the sweep", scts=dt_now())
            sim.storages["SM"].store(StoredSms(0, pdu))
            slower = dataclasses.replace(cfg.modem[0], command_timeout_s=2.5)  # restarts the driver
            changes = await gw.reload(dataclasses.replace(cfg, modem=(slower,)))
            assert changes["restarted"] == ["sim1"]
            await wait_until(lambda: gw.store.inbound.list_inbound(), what="swept after the restart")
            await wait_until(lambda: sim.storages["SM"].used == 0, what="deleted after the commit")


def dt_now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


async def test_per_message_callback_url_gets_that_messages_events_only(tmp_path: Path, receiver: Receiver) -> None:
    async with FakeModemPool(count=1, directory=tmp_path / "ports", report_delay_s=0.01) as fake:
        cfg = inbound_config(tmp_path, [str(m.path) for m in fake.modems],
                             webhooks={"allowed_hosts": ("127.0.0.1",)})
        async with running_gateway(cfg) as (gw, c):
            status, with_cb = await c.request("POST", "/api/v1/messages", json={
                "to": "+447700900950", "text": "tell me", "callback_url": receiver.url})
            assert status == 202, with_cb
            _, without = await c.request("POST", "/api/v1/messages", json={"to": "+447700900951", "text": "quiet"})
            await c.wait_state(with_cb["id"], {"delivered"})
            await c.wait_state(without["id"], {"delivered"})
            await wait_until(lambda: receiver.of_type("sms:delivered"), what="callback")
            await asyncio.sleep(0.1)
            assert [h.type for h in receiver.hits] == ["sms:sent", "sms:delivered"]
            assert {h.json["data"]["message_id"] for h in receiver.hits} == {with_cb["id"]}
            assert all(h.signature_ok() for h in receiver.hits)


async def test_sweep_keeps_undecodable_pdus_as_events_and_matches_lost_status_reports(tmp_path: Path) -> None:
    import datetime as dt

    from gsmgw.emulator import StoredSms
    from gsmgw.sms import encode_status_report

    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        sim = fake.modems[0].modem
        cfg = inbound_config(tmp_path, [str(m.path) for m in fake.modems], sweep_interval_s=3600.0)
        async with running_gateway(cfg) as (gw, c):
            slot = gw.pool.slots["sim1"]
            await slot.driver.wait_ready(10)
            _, sent = await c.request("POST", "/api/v1/messages", json={"to": "+447700900960", "text": "x",
                                                                         "delivery_report": False})
            msg = await c.wait_state(sent["id"], {"sent"})
            now = dt.datetime.now(dt.UTC)
            report = encode_status_report(tp_mr=msg["parts"][0]["tp_mr"], recipient="+447700900960", scts=now,
                                          discharge_time=now, status=0, smsc="+15550009999")
            garbage = "07911326040000F0040B911346610089F60000208062917314080CC8F71D1496"  # UD cut short
            sim.storages["SM"].store(StoredSms(0, report, is_status_report=True))
            sim.storages["SM"].store(StoredSms(0, garbage))
            assert await gw.pool.inbound.sweep(slot) == 2
            assert sim.storages["SM"].used == 0
            [bad] = await gw.store.call(gw.store.events.list_events, type_="sms:undecodable")
            payload = json.loads(bad["payload"])
            assert payload["pdu"] == garbage and "truncated" in payload["error"]
            delivered = await c.wait_state(sent["id"], {"delivered"})
            assert delivered["parts"][0]["report_status"] == 0
            assert gw.store.inbound.list_inbound() == []


async def test_transient_321_on_the_first_read_is_retried_not_left_for_the_sweep(tmp_path: Path) -> None:
    """Issue 16: a module announces +CMTI/+CDSI before the write completes and answers the
    first AT+CMGR with +CMS ERROR: 321. The SMS and the status report arrive within a
    second, not after the next sweep (an hour here)."""
    from gsmgw.emulator import Behaviour

    async with FakeModemPool(count=1, directory=tmp_path / "ports", report_delay_s=0.01,
                             behaviours=Behaviour(transient_read_error=321)) as fake:
        sim = fake.modems[0].modem
        cfg = inbound_config(tmp_path, [str(m.path) for m in fake.modems], sweep_interval_s=3600.0)
        async with running_gateway(cfg) as (gw, c):
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            await wait_until(lambda: gw.pool.inbound.sweeps_total >= 1, what="first sweep")
            sim.inject_sms("+447700900970", "announced too early")
            await wait_until(lambda: gw.store.inbound.list_inbound(), timeout_s=2.0, what="inbox row within 2 s")
            assert gw.pool.inbound.read_retries_total >= 1
            assert gw.pool.inbound.sweeps_total == 1  # no sweep was needed
            # A status report stored with +CDSI gets the same first-read error.
            _, sent = await c.request("POST", "/api/v1/messages", json={"to": sim.number, "text": "to myself"})
            await c.wait_state(sent["id"], {"delivered"}, timeout_s=3.0)
            assert gw.pool.inbound.read_retries_total >= 2
            await wait_until(lambda: sim.storages["SM"].used == 0, what="storage drained")


async def test_a_stored_status_report_leaves_the_sim_only_once_its_record_is_on_disk(tmp_path: Path) -> None:
    """A +CDSI report is recorded with a commit that does not wait for the disk (issue 17):
    AT+CMGD of the SIM's copy is sent only once that record is durable, carried by a later
    commit or by the writer thread's own sync of the WAL, never before."""
    async with FakeModemPool(count=1, directory=tmp_path / "ports", report_delay_s=0.01) as fake:
        sim = fake.modems[0].modem
        cfg = inbound_config(tmp_path, [str(m.path) for m in fake.modems], sweep_interval_s=3600.0)
        async with running_gateway(cfg) as (gw, c):
            driver = gw.pool.slots["sim1"].driver
            await driver.wait_ready(10)
            db = gw.store.db
            on_disk_at_delete: list[bool] = []
            real_delete = driver.delete_sms

            async def delete_sms(index: int, storage: str | None = None) -> None:
                on_disk_at_delete.append(db._synced_seq >= db._lax_seq)
                await real_delete(index, storage)

            driver.delete_sms = delete_sms  # type: ignore[method-assign]
            ids = []
            for i in range(3):
                # (not to the SIM itself: its SMS would be deleted too, after their own durable commits)
                _, sent = await c.request("POST", "/api/v1/messages", json={"to": f"+4477009003{i:02d}",
                                                                            "text": f"r{i}"})
                ids.append(sent["id"])
            for mid in ids:
                await c.wait_state(mid, {"delivered"}, timeout_s=5.0)
            await wait_until(lambda: sim.storages["SM"].used == 0, what="storage drained")
            assert on_disk_at_delete and all(on_disk_at_delete), on_disk_at_delete


async def test_a_status_report_not_yet_on_disk_stays_on_the_sim(tmp_path: Path) -> None:
    """When the record cannot be made durable (the WAL sync fails), the SIM keeps its copy
    of the report, for the sweep after a restart; the message's state is still recorded."""
    async with FakeModemPool(count=1, directory=tmp_path / "ports", report_delay_s=0.01) as fake:
        sim = fake.modems[0].modem
        cfg = inbound_config(tmp_path, [str(m.path) for m in fake.modems], sweep_interval_s=3600.0)
        async with running_gateway(cfg) as (gw, c):
            await gw.pool.slots["sim1"].driver.wait_ready(10)

            async def not_synced() -> None:
                raise OSError(5, "Input/output error")

            gw.store.synced = not_synced  # type: ignore[method-assign]
            _, sent = await c.request("POST", "/api/v1/messages", json={"to": "+447700900301", "text": "x"})
            await c.wait_state(sent["id"], {"delivered"}, timeout_s=5.0)
            await asyncio.sleep(0.3)
            assert sim.storages["SM"].used == 1  # not deleted
