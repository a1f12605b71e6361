"""Upgrades: a database from gsmgw 0.1.0 opens with this code, migrates, and keeps its queue."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from pathlib import Path

import gammu

from gsmgw.emulator import Behaviour, FakeModemPool
from gsmgw.store import Store
from gsmgw.store.migrate import current_revision, head_revision
from tests.helpers import make_config, running_gateway
from tests.service.make_fixture_db import API_KEY, FIXTURE, MULTIPART_TEXT, RELEASE_REVISION

INFO = json.loads(FIXTURE.with_suffix(".json").read_text())


def _copy(tmp_path: Path) -> Path:
    db = tmp_path / "gsmgw.db"
    shutil.copyfile(FIXTURE, db)
    return db


def test_fixture_is_at_the_old_revision(tmp_path: Path) -> None:
    db = _copy(tmp_path)
    store = Store(f"sqlite:///{db}")
    try:
        assert current_revision(store.engine) == RELEASE_REVISION == INFO["revision"]
    finally:
        store.close()
    # Read with plain SQL: today's Store expects today's columns, which the old schema lacks.
    with contextlib.closing(sqlite3.connect(db)) as conn:
        states = dict(conn.execute("SELECT id, state FROM messages").fetchall())
    assert [states[i] for i in INFO["queued"]] == ["queued", "queued"]
    assert states[INFO["crashed_sending"]] == "sending"


async def test_old_database_migrates_keeps_its_queue_and_sends_it(tmp_path: Path) -> None:
    db = _copy(tmp_path)
    async with FakeModemPool(count=1, directory=tmp_path / "ports",
                             behaviours=Behaviour(send_latency_s=0.01)) as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems], store_url=f"sqlite:///{db}")
        async with running_gateway(cfg) as (gw, c):
            assert current_revision(gw.store.engine) == head_revision()
            # The old messages belong to no key: the gateway's admin key reads them.
            for mid in INFO["queued"]:
                msg = await c.wait_state(mid, {"sent", "delivered", "failed", "unknown"}, timeout_s=20)
                assert msg["state"] in ("sent", "delivered"), (msg.get("error"), msg["parts"])
            status, sent = await c.request("GET", f"/api/v1/messages/{INFO['sent']}")
            assert status == 200 and sent["state"] in ("sent", "delivered")
            assert sent["parts"][0]["tp_mr"] == 7
            _, failed = await c.request("GET", f"/api/v1/messages/{INFO['failed']}")
            assert failed["state"] == "failed" and failed["error"]["code"] == "cms:21"
            # In flight when the old run died: unknown, never blindly resent.
            _, crashed = await c.request("GET", f"/api/v1/messages/{INFO['crashed_sending']}")
            assert crashed["state"] == "unknown"
            # New messages queue behind the old ones in the migrated schema; the key made
            # by the old release still works, and reads its own message.
            c.key = API_KEY
            status, body = await c.request("POST", "/api/v1/messages", json={"to": "+15557654321", "text": "new"})
            assert status == 202, body
            await c.wait_state(body["id"], {"sent", "delivered"})
        sent_pdus = [gammu.DecodePDU(bytes.fromhex(r.pdu), SMSC=True) for r in fake.modems[0].modem.sent]
    # 3 parts + 1 UCS-2 + the new one; nothing for the sent, failed or crashed messages.
    assert len(sent_pdus) == 5
    multipart = sorted((d["UDH"]["PartNumber"], d["Text"]) for d in sent_pdus if d["UDH"]["AllParts"] == 3)
    assert "".join(t for _, t in multipart) == MULTIPART_TEXT
    assert "Grüße ünïcödé" in [d["Text"] for d in sent_pdus]


async def test_upgrade_reopens_cleanly_a_second_time(tmp_path: Path) -> None:
    db = _copy(tmp_path)
    for _ in range(2):  # the second start finds the schema at head and migrates nothing
        cfg = make_config(tmp_path, [], store_url=f"sqlite:///{db}")
        async with running_gateway(cfg) as (gw, _c):
            assert current_revision(gw.store.engine) == head_revision()
            depth = await gw.store.call(gw.store.messages.queue_depth)
            assert depth == 2
