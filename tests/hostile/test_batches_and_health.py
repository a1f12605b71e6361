"""Bulk is visible (#15 point 10) and health is honest in the API (point 2): a batch's
progress, ?batch_id=; /readyz, /health and /api/v1/status say why; a removed store
turns intake away with 503; a message pinned to a SIM that is not ready is accepted
with a warning; `gsmgw status` prints the reasons."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from gsmgw.emulator import Behaviour, FakeModemPool
from tests.helpers import make_config, running_gateway

NUMBERS = [f"+1555000{i:04d}" for i in range(12)]


async def test_a_bulk_batch_shows_its_progress(tmp_path: Path) -> None:
    async with FakeModemPool(count=1, directory=tmp_path / "ports",
                             behaviours=Behaviour(send_latency_s=0.01)) as fake:
        cfg = make_config(tmp_path, [str(fake.modems[0].path)])
        async with running_gateway(cfg) as (gw, c):
            await gw.pool.slots["sim1"].driver.wait_ready(10)
            status, bulk = await c.request("POST", "/api/v1/messages", json={"to": NUMBERS, "text": "bulk"})
            assert status == 202
            batch_id = bulk["batch_id"]
            status, batch = await c.request("GET", f"/api/v1/batches/{batch_id}")
            assert status == 200 and batch["batch_id"] == batch_id and batch["total"] == 12
            assert sum(batch["by_state"].values()) == 12 and batch["done"] + batch["pending"] == 12
            for m in bulk["messages"]:
                await c.wait_state(m["id"], {"sent", "delivered"})
            _, batch = await c.request("GET", f"/api/v1/batches/{batch_id}")
            assert batch["pending"] == 0 and batch["progress"] == 1.0
            assert set(batch["by_state"]) <= {"sent", "delivered"}
            # Another request's messages are not in this batch's list.
            await c.request("POST", "/api/v1/messages", json={"to": NUMBERS[0], "text": "other"})
            status, page = await c.request("GET", f"/api/v1/messages?batch_id={batch_id}&limit=500")
            assert status == 200 and {m["id"] for m in page["items"]} == {m["id"] for m in bulk["messages"]}
            assert (await c.request("GET", f"/api/v1/batches/{'0' * 24}"))[0] == 404
            status, err = await c.request("GET", f"/api/v1/messages?batchid={batch_id}")
            assert status == 422 and err["error"]["code"] == "unknown_parameter"


async def test_a_removed_store_is_not_ready_and_intake_answers_503(tmp_path: Path) -> None:
    async with running_gateway(make_config(tmp_path)) as (gw, c):
        status, body = await c.request("POST", "/api/v1/messages", json={"to": NUMBERS[0], "text": "before"})
        assert status == 202
        (tmp_path / "gsmgw.db").unlink()
        await gw.check_health()
        status, body = await c.request("GET", "/readyz", key=None)
        assert status == 503 and body["error"]["code"] == "not_ready" and body["error"]["readiness"] == "fail"
        assert any("was removed while the gateway was running" in r for r in body["error"]["reasons"])
        status, body = await c.request("POST", "/api/v1/messages", json={"to": NUMBERS[1], "text": "after"})
        assert status == 503 and body["error"]["code"] == "store_unavailable", body
        async with c.session.post(c.base + "/messages", json={"phoneNumbers": [NUMBERS[1]], "message": "x"},
                                  headers={"Authorization": f"Bearer {c.key}"}) as r:
            assert r.status == 503
        async with c.session.get(c.base + f"/cgi-bin/sendsms?username=u&password={c.key}&to=%2B15550000001"
                                 "&text=x") as r:
            assert r.status == 503
        _, health = await c.request("GET", "/health", key=None)
        assert health["status"] == "fail" and health["checks"]["gateway:ready"]["status"] == "fail"
        _, st = await c.request("GET", "/api/v1/status")
        assert st["readiness"]["status"] == "fail"


async def test_pinned_to_a_sim_that_is_not_ready_is_accepted_with_a_warning(tmp_path: Path) -> None:
    # The port does not exist: the modem stays disconnected with the real cause.
    cfg = make_config(tmp_path, [str(tmp_path / "ttyNOPE")])
    async with running_gateway(cfg) as (gw, c):
        for _ in range(200):
            if gw.pool.snapshot()[0]["state_reason"]:
                break
            await asyncio.sleep(0.02)
        status, body = await c.request("POST", "/api/v1/messages", json={"to": NUMBERS[0], "text": "x",
                                                                         "sim": "sim1"})
        assert status == 202, body
        [warning] = body["warnings"]
        assert warning.startswith("sim sim1 is disconnected (port: ") and "is missing" in warning
        status, plain = await c.request("POST", "/api/v1/messages", json={"to": NUMBERS[0], "text": "x"})
        assert status == 202 and "warnings" not in plain
        status, body = await c.request("GET", "/readyz", key=None)
        assert status == 503 and body["error"]["code"] == "no_modem_ready"
        assert any("is missing" in r for r in body["error"]["reasons"])
        _, st = await c.request("GET", "/api/v1/status")
        assert st["readiness"]["status"] == "degraded"  # within the grace period
        assert "is missing" in st["modems"][0]["state_reason"]
        # gsmgw status prints the readiness and the modem's cause.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gsmgw", "status", "--url", c.base, "--api-key", c.key,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if k != "GSMGW_CONFIG"})
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        text = out.decode()
        assert proc.returncode == 0, err.decode()
        assert "status degraded" in text and "! no modem ready yet" in text
        assert "why: port: " in text and "is missing" in text
