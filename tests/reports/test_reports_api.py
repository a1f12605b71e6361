"""GET /api/v1/reports (JSON and CSV), GET /api/v1/audit and the CLI, on a real server
on 127.0.0.1; bad input is a clear 4xx."""

from __future__ import annotations

import csv
import io
import json
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select, update

from gsmgw.cli import main
from gsmgw.housekeeping import roll_up
from gsmgw.store import tables as t
from tests.helpers import make_config, running_gateway
from tests.reports.traffic import BASE, Spec, insert_message, insert_reply

DAY = BASE.date().isoformat()


def _seed(store: Any, key_a: str, key_b: str) -> None:
    with store.engine.begin() as conn:
        m1 = insert_message(conn, Spec("sim1", key_a, "camp1", 0, 2, "delivered", 1, 12, 1500), "delivered")
        insert_message(conn, Spec("sim2", key_a, None, 0, 1, "failed_cms", 300, 5, None), "failed")
        insert_message(conn, Spec("sim1", key_b, None, 0, 1, "failed_report", 1, 5, 700), "failed")
        insert_reply(conn, m1, "sim1", BASE, optout=True)


@pytest.fixture
async def gw(tmp_path: Path):
    async with running_gateway(make_config(tmp_path)) as pair:
        yield pair


async def test_reports_as_json_and_csv(gw: Any) -> None:
    g, c = gw
    _, weak = await g.store.call(g.store.keys.create_api_key, "reader", ["read"])
    weak_id = weak.split("_")[1]
    admin_id = c.key.split("_")[1]
    await g.store.call(_seed, g.store, admin_id, weak_id)
    await roll_up(g.store)
    status, body = await c.request("GET", f"/api/v1/reports?group_by=sim&period=day&from={DAY}&to={DAY}")
    assert status == 200, body
    by_sim = {r["sim"]: r for r in body["items"]}
    assert by_sim["sim1"]["parts_sent"] == 3 and by_sim["sim1"]["parts_delivered"] == 2
    assert by_sim["sim1"]["failed_by_class"]["report"] == 1 and by_sim["sim1"]["replies"] == 1
    assert by_sim["sim1"]["optouts"] == 1 and by_sim["sim1"]["cost_micros"] == 2200
    assert by_sim["sim1"]["ttd_p50_s"] == 15 and by_sim["sim1"]["delivery_rate"] == round(2 / 3, 4)
    assert by_sim["sim2"]["failed_by_class"]["modem"] == 1 and by_sim["sim2"]["delivery_rate"] is None
    status, body = await c.request("GET", f"/api/v1/reports?group_by=campaign&period=month&from={DAY}&to={DAY}")
    assert {r["campaign"]: r["messages"] for r in body["items"]} == {"camp1": 1, "": 2}
    # A key that is not admin sees its own messages only, and may not ask for another's.
    status, body = await c.request("GET", f"/api/v1/reports?group_by=key&from={DAY}&to={DAY}", key=weak)
    assert status == 200 and [r["key"] for r in body["items"]] == [weak_id]
    status, body = await c.request("GET", f"/api/v1/reports?key={admin_id}&from={DAY}&to={DAY}", key=weak)
    assert status == 403
    # CSV, by parameter or by Accept.
    for path, headers in ((f"/api/v1/reports?format=csv&from={DAY}&to={DAY}", {}),
                          (f"/api/v1/reports?from={DAY}&to={DAY}", {"Accept": "text/csv"})):
        async with c.session.get(c.base + path, headers={"Authorization": f"Bearer {c.key}", **headers}) as r:
            assert r.status == 200 and r.content_type == "text/csv"
            rows = list(csv.DictReader(io.StringIO(await r.text())))
        assert {row["sim"]: int(row["parts_sent"]) for row in rows} == {"sim1": 3, "sim2": 0}
        assert rows[0]["failed_report"] == "1"


@pytest.mark.parametrize("query", [
    "group_by=modem", "period=week", "from=2026-13-01", "from=2026-02-30", "from=yesterday", "to=1",
    "from=2026-02-01&to=2026-01-01", "from=1900-01-01&to=2026-01-01", "format=xml", "colour=red",
    "key=" + "x" * 40,
])
async def test_bad_report_queries_are_refused_clearly(gw: Any, query: str) -> None:
    _, c = gw
    status, body = await c.request("GET", f"/api/v1/reports?{query}")
    assert status == 422, (query, body)
    assert body["error"]["code"] in ("invalid_query", "unknown_parameter")


async def test_audit_lists_admin_actions(gw: Any) -> None:
    g, c = gw
    status, _ = await c.request("PATCH", "/api/v1/modems/nope", json={"enabled": False})
    assert status == 404  # nothing done, nothing audited
    await g.store.call(g.store.keys.revoke_api_key, "deadbeef", actor="cli:test")  # no such key: no entry
    key_id, _ = await g.store.call(g.store.keys.create_api_key, "k", ["read"], actor="cli:test")
    assert await g.store.call(g.store.keys.revoke_api_key, key_id, actor="cli:test")
    status, body = await c.request("GET", "/api/v1/audit?action=key.*&limit=10")
    assert status == 200
    assert [(e["action"], e["target"], e["actor"]) for e in body["items"][:2]] == [
        ("key.revoke", key_id, "cli:test"), ("key.create", key_id, "cli:test")]
    status, page = await c.request("GET", "/api/v1/audit?limit=1")
    assert status == 200 and len(page["items"]) == 1 and page["next_cursor"]
    status, older = await c.request("GET", f"/api/v1/audit?limit=1&cursor={page['next_cursor']}")
    assert older["items"][0]["id"] < page["items"][0]["id"]
    assert (await c.request("GET", "/api/v1/audit?cursor=abc"))[0] == 422
    _, weak = await g.store.call(g.store.keys.create_api_key, "reader", ["read"])
    assert (await c.request("GET", "/api/v1/audit", key=weak))[0] == 403


async def test_modem_patch_and_config_reload_are_audited(tmp_path: Path) -> None:
    from gsmgw.emulator import FakeModemPool

    async with FakeModemPool(count=1, directory=tmp_path / "ports") as fake:
        cfg = make_config(tmp_path, [str(m.path) for m in fake.modems])
        async with running_gateway(cfg) as (g, c):
            status, _ = await c.request("PATCH", "/api/v1/modems/sim1", json={"enabled": False})
            assert status == 200
            path = tmp_path / "gsmgw.toml"
            path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "gsmgw.db"}"\n[api]\nlisten = "127.0.0.1:0"\n')
            assert await g.reload_from(path)
            _, body = await c.request("GET", "/api/v1/audit")
            actions = [(e["action"], e["target"]) for e in body["items"]]
            assert ("modem.patch", "sim1") in actions and ("config.reload", str(path)) in actions


def test_cli_report_audit_and_prune(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "gsmgw.db"
    conf = tmp_path / "gsmgw.toml"
    conf.write_text(f'[store]\nurl = "sqlite:///{db}"\n[retention]\nmessages_days = 30\nevents_days = 30\n')
    tomllib.loads(conf.read_text())
    assert main(["store", "init", "--config", str(conf)]) == 0
    assert main(["keys", "create", "ops", "--scope", "admin", "--config", str(conf)]) == 0
    from gsmgw.store import Store

    s = Store(f"sqlite:///{db}")
    try:
        _seed(s, "k1", "k2")
        with s.engine.begin() as conn:  # what a running gateway's webhook sender does: read them all
            conn.execute(update(t.webhook_cursor).values(
                last_event_id=select(func.max(t.events.c.id)).scalar_subquery()))
    finally:
        s.close()
    capsys.readouterr()
    assert main(["report", "--config", str(conf), "--from", DAY, "--to", DAY, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sum(r["messages"] for r in rows) == 3
    assert main(["report", "--config", str(conf), "--from", DAY, "--to", DAY, "--csv", "--group-by", "key"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("period,key,messages")
    assert main(["store", "prune", "--dry-run", "--config", str(conf)]) == 0
    out = capsys.readouterr().out
    assert "messages\twould delete 3" in out
    assert main(["store", "prune", "--config", str(conf)]) == 0
    assert "messages\tdeleted 3" in capsys.readouterr().out
    assert main(["report", "--config", str(conf), "--from", DAY, "--to", DAY, "--json"]) == 0
    assert sum(r["messages"] for r in json.loads(capsys.readouterr().out)) == 3  # kept after the rows went
    assert main(["audit", "--config", str(conf)]) == 0
    out = capsys.readouterr().out
    assert "store.prune" in out and "key.create" in out and "cli:" in out


async def test_openapi_describes_the_new_routes(gw: Any) -> None:
    _, c = gw
    async with aiohttp.ClientSession() as s, s.get(c.base + "/api/v1/openapi.json") as r:
        doc = await r.json()
    assert {"/api/v1/reports", "/api/v1/numbers/{number}", "/api/v1/audit"} <= set(doc["paths"])
