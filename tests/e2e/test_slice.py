"""The first vertical slice, end to end: HTTP → SQLite → dispatcher → driver →
AT+CMGS over a real pseudo-terminal → emulated modem → back to `sent`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import gammu
import pytest

from gsmgw.emulator import Behaviour, FakeModemPool
from tests.helpers import make_config, running_gateway


def _decode_with_gammu(pdu_hex: str) -> dict:
    # python-gammu is an independent codec: it, not ours, says what went on the air.
    return gammu.DecodePDU(bytes.fromhex(pdu_hex), SMSC=True)


async def test_post_message_reaches_sent_through_an_emulated_modem(tmp_path: Path) -> None:
    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
        async with running_gateway(cfg) as (gw, c):
            status, body = await c.request("POST", "/api/v1/messages", json={"to": "+15551234567", "text": "hi"})
            assert status == 202, body
            msg = await c.wait_state(body["id"], {"sent", "delivered", "failed", "unknown"})
            assert msg["state"] in ("sent", "delivered"), msg
            assert msg["sim"] == "sim1"
            assert msg["parts"][0]["tp_mr"] is not None
            [record] = fake.modems[0].modem.sent
            decoded = _decode_with_gammu(record.pdu)
            assert decoded["Number"] == "+15551234567"
            assert decoded["Text"] == "hi"
            assert record.tp_mr == msg["parts"][0]["tp_mr"]
            status, modems = await c.request("GET", "/api/v1/modems")
            assert modems["items"][0]["state"] == "ready" and modems["items"][0]["imei"]


async def test_multipart_unicode_message_goes_out_in_order_on_one_sim(tmp_path: Path) -> None:
    text = "Grüße aus Zürich — ünïcödé 😀 " * 4  # UCS-2, several parts
    async with FakeModemPool(count=2, directory=tmp_path / "ports") as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
        async with running_gateway(cfg) as (gw, c):
            status, body = await c.request("POST", "/api/v1/messages", json={"to": "+447700900123", "text": text})
            assert status == 202 and body["encoding"] == "ucs2" and body["parts"] >= 2
            msg = await c.wait_state(body["id"], {"sent", "delivered", "failed", "unknown"})
            assert msg["state"] in ("sent", "delivered"), msg
            sims = {p["sim"] for p in msg["parts"]}
            assert len(sims) == 1
            records = [r for m in fake.modems for r in m.modem.sent]
            assert len(records) == body["parts"]
            decoded = [_decode_with_gammu(r.pdu) for r in records]
            # Reassemble with gammu's own view of the UDH.
            pieces = sorted(
                (d["UDH"]["PartNumber"], d["Text"]) for d in decoded
            )
            assert "".join(t for _, t in pieces) == text
            assert {d["UDH"]["AllParts"] for d in decoded} == {body["parts"]}


async def test_several_modems_share_a_batch(tmp_path: Path) -> None:
    async with FakeModemPool(count=3, directory=tmp_path / "ports",
                             behaviours=Behaviour(send_latency_s=0.05)) as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
        async with running_gateway(cfg) as (gw, c):
            for m in fake.modems:  # all three ready before the batch
                await gw.pool.slots[f"sim{fake.modems.index(m) + 1}"].driver.wait_ready(10)
            ids = []
            for i in range(12):
                status, body = await c.request("POST", "/api/v1/messages",
                                               json={"to": f"+1555123{i:04d}", "text": f"batch {i}"})
                assert status == 202
                ids.append(body["id"])
            for mid in ids:
                msg = await c.wait_state(mid, {"sent", "delivered"})
                assert msg["state"] in ("sent", "delivered")
            per_modem = [len(m.modem.sent) for m in fake.modems]
            assert sum(per_modem) == 12
            assert all(n >= 2 for n in per_modem), per_modem  # balanced, not one modem doing it all


@pytest.mark.parametrize("code", [500])
async def test_transient_cms_error_retries_on_another_sim(tmp_path: Path, code: int) -> None:
    bad = Behaviour(cms_error_on_submit=code)
    async with FakeModemPool(count=2, directory=tmp_path / "ports", behaviours=[bad, Behaviour()]) as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems], retry_backoff_initial_s=1.0)
        async with running_gateway(cfg) as (gw, c):
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            await gw.pool.slots["sim2"].driver.wait_ready(10)
            gw.pool.set_enabled("sim2", False)
            status, body = await c.request("POST", "/api/v1/messages", json={"to": "+15551234567", "text": "retry"})
            # sim1 refuses with a transient code: the message stays queued for a retry.
            for _ in range(100):
                row = await gw.store.call(gw.store.messages.get_message, body["id"])
                if row["attempts"] >= 1 and row["state"] == "queued":
                    break
                await asyncio.sleep(0.02)
            assert row["state"] == "queued" and row["error_code"] == f"cms:{code}"
            gw.pool.set_enabled("sim2", True)
            msg = await c.wait_state(body["id"], {"sent", "delivered"})
            assert msg["sim"] == "sim2"


async def test_permanent_cms_error_fails_at_once_with_meaning(tmp_path: Path) -> None:
    async with FakeModemPool(count=1, directory=tmp_path / "ports",
                             behaviours=Behaviour(cms_error_on_submit=1)) as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
        async with running_gateway(cfg) as (gw, c):
            status, body = await c.request("POST", "/api/v1/messages", json={"to": "+15551234567", "text": "x"})
            msg = await c.wait_state(body["id"], {"failed", "sent", "unknown"})
            assert msg["state"] == "failed"
            assert msg["error"]["code"] == "cms:1"
            assert "unassigned" in msg["error"]["message"]
            assert msg["attempts"] == 1


async def test_hang_on_submit_is_unknown_not_resent(tmp_path: Path) -> None:
    async with FakeModemPool(count=1, directory=tmp_path / "ports",
                             behaviours=Behaviour(hang_on_submit=True)) as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
        async with running_gateway(cfg) as (gw, c):
            status, body = await c.request("POST", "/api/v1/messages", json={"to": "+15551234567", "text": "x"})
            msg = await c.wait_state(body["id"], {"failed", "sent", "unknown"}, timeout_s=20)
            assert msg["state"] == "unknown"
            assert msg["parts"][0]["state"] == "unknown"
            assert msg["attempts"] == 1


async def test_status_reports_make_messages_delivered_or_failed(tmp_path: Path) -> None:
    from gsmgw.emulator import DeliveryRule

    rules = [DeliveryRule(r"\+1555999.*", 0x41)]  # incompatible destination: permanent failure
    async with FakeModemPool(count=1, directory=tmp_path / "ports", report_delay_s=0.05,
                             delivery_rule=rules) as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
        async with running_gateway(cfg) as (gw, c):
            _, ok = await c.request("POST", "/api/v1/messages", json={"to": "+15551234567", "text": "a " * 100})
            _, bad = await c.request("POST", "/api/v1/messages", json={"to": "+15559990000", "text": "b"})
            good = await c.wait_state(ok["id"], {"delivered", "failed"})
            assert good["state"] == "delivered" and good["delivered_at"]
            assert all(p["state"] == "delivered" and p["report_status"] == 0 for p in good["parts"])
            failed = await c.wait_state(bad["id"], {"delivered", "failed"})
            assert failed["state"] == "failed"
            assert failed["error"]["code"] == "report:0x41"
            assert failed["parts"][0]["report_status"] == 0x41
            reports = await gw.store.call(gw.store.reports.list_status_reports)
            assert len(reports) == good["parts_total"] + 1
            assert all(r["message_id"] for r in reports)
