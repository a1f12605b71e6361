"""DELETE /api/v1/numbers/{number}: no trace of the number in any table afterwards,
found by scanning every text column of every table of the schema (JSON payloads,
PDUs, national and international renderings), on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from sqlalchemy import String, Text, insert, select

from gsmgw.store import tables as t
from gsmgw.store.erasure import REGISTRY, NumberMatcher, number_hash, unregistered
from tests.helpers import make_config, running_gateway
from tests.reports.traffic import BASE, Spec, insert_message, insert_reply, new_id

NUMBER = "+33612345678"
OTHER = "+33698765432"
RENDERINGS = ("+33612345678", "33612345678", "0033612345678", "0612345678", "612345678",
              "06 12 34 56 78", "+33 6 12 34 56 78", "3316325476F8")  # the last: semi-octets in a PDU
_SEPARATORS = re.compile(r"[\s.\-()/]")


def traces(conn: Any) -> list[str]:
    """Every (table, column, row) whose text holds the number in any rendering."""
    found = []
    for table in t.metadata.sorted_tables:
        cols = [c for c in table.columns if isinstance(c.type, String | Text)
                or isinstance(getattr(c.type, "impl", None), String | Text)]
        if not cols:
            continue
        for row in conn.execute(select(*cols)).all():
            for c, v in zip(cols, row, strict=True):
                if not isinstance(v, str):
                    continue
                flat = _SEPARATORS.sub("", v)
                if any(r in v for r in RENDERINGS) or "612345678" in flat or "3316325476F8" in v.upper():
                    found.append(f"{table.name}.{c.name}: {v[:120]!r}")
    return found


def test_every_table_declares_its_personal_data() -> None:
    assert unregistered() == [], "register these tables in gsmgw.store.erasure.REGISTRY"
    for name, personal in REGISTRY.items():
        if name in t.metadata.tables:
            table = t.metadata.tables[name]
            for col in (*personal.numbers, *personal.texts, *personal.derived):
                assert col in table.c, f"{name}.{col} is registered but does not exist"


def test_the_matcher_finds_renderings_and_leaves_other_digits() -> None:
    m = NumberMatcher(NUMBER, "FR")
    for r in RENDERINGS[:-1]:
        assert m.found(f"call {r} now"), r
        assert "612345678" not in _SEPARATORS.sub("", m.redact(f"x{r}y, {r}"))
    assert m.found('{"to": "+33612345678"}') and m.found("(0)6.12.34.56.78") and m.found("+33 (0)6 12 34 56 78")
    for other in ("+336123456789", "16123456780", "+33698765432", "order 4612345678"):
        assert not m.found(other), other


async def _populate(gw: Any, c: Any) -> dict[str, str]:
    store = gw.store
    ids = {}
    # Through the API: a queued message to the number, one to someone else that mentions it,
    # an opt-out (kept as a tombstone).
    status, body = await c.request("POST", "/api/v1/messages", json={"to": NUMBER, "text": "your code 1234",
                                                                     "callback_url": None})
    assert status == 202, body
    ids["queued"] = body["id"]
    status, body = await c.request("POST", "/api/v1/messages",
                                   json={"to": OTHER, "text": "Call Ann on 06 12 34 56 78 or +33 6 12 34 56 78"})
    assert status == 202
    ids["mention"] = body["id"]
    assert (await c.request("POST", "/api/v1/optouts", json={"number": NUMBER}))[0] in (200, 201)

    def direct() -> None:
        with store.engine.begin() as conn:
            ids["delivered"] = insert_message(conn, Spec("sim1", None, None, 0, 2, "delivered", 1, 30, 10,
                                                         number=NUMBER), "delivered")
            ids["inbound"] = insert_reply(conn, ids["delivered"], "sim1", BASE, sender="0612345678")
            conn.execute(insert(t.inbound_parts).values(
                dedup_key=new_id() * 2, modem_id="sim1", sender="+33612345678", concat_total=1, concat_seq=1,
                encoding="gsm7", text="thanks", user_data="F4F29C0E", received_at=BASE,
                pdu="07913366003000F0040B913316325476F80000", message_id=ids["inbound"]))
            conn.execute(insert(t.status_reports).values(
                modem_id="sim1", tp_mr=7, recipient="33612345678", status=0, category="delivered",
                received_at=BASE, message_id=ids["delivered"], seq=1))
            conn.execute(insert(t.webhook_deliveries).values(
                event_id=1, event_type="sms:received", url="http://127.0.0.1:9/hook", state="pending",
                body=json.dumps({"type": "sms:received", "data": {"from": "0612345678", "text": "hi"}}),
                next_attempt_at=BASE, created_at=BASE))
            conn.execute(insert(t.smpp_parts).values(
                system_id="esme", group_key=new_id() * 2, seq=1, total=2, part_id=new_id(),
                user_data="C8329BFD06", request=json.dumps({"destination_addr": "33612345678"}), created_at=BASE))
            conn.execute(insert(t.contacts).values(
                id=new_id(), number=NUMBER, name="Ann", fields=json.dumps({"mobile": "06 12 34 56 78"}),
                created_at=BASE, updated_at=BASE))
            conn.execute(insert(t.sim_contacts).values(modem_id="sim1", number=NUMBER, day="2026-10-01"))
            conn.execute(insert(t.rule_replies).values(rule="thanks", sender="0612345678",
                                                       inbound_id=ids["inbound"], created_at=BASE))
            conn.execute(insert(t.rule_runs).values(inbound_id=ids["inbound"], rule="fwd", action="command",
                                                    status="exit:0", detail="forwarded +33 6 12 34 56 78",
                                                    created_at=BASE))
            conn.execute(insert(t.smpp_deliveries).values(
                system_id="esme", event_id=1, kind="mo", ref=new_id(), state="pending", next_attempt_at=BASE,
                pdu=json.dumps({"source_addr": "+33612345678", "short_message": "hello"}), created_at=BASE))

    await store.call(direct)
    return ids


async def _erase_everywhere(tmp_path: Path, store_url: str) -> None:
    cfg = make_config(tmp_path, store_url=store_url)
    cfg = dataclasses.replace(cfg, api=dataclasses.replace(cfg.api, default_region="FR"))
    async with running_gateway(cfg) as (gw, c):
        ids = await _populate(gw, c)

        def scan() -> list[str]:
            with gw.store.engine.connect() as conn:
                return traces(conn)

        before = await gw.store.call(scan)
        tables_before = {x.split(".")[0] for x in before}
        assert {"messages", "message_parts", "inbound_messages", "inbound_parts", "status_reports", "events",
                "optouts", "webhook_deliveries", "smpp_parts", "smpp_deliveries", "sim_contacts", "rule_replies",
                "rule_runs", "contacts"} <= tables_before, tables_before
        status, body = await c.request("DELETE", "/api/v1/numbers/0612345678")
        assert status == 200, body
        assert body["tombstone"] is True and body["number_hash"] == number_hash(NUMBER)
        assert await gw.store.call(scan) == []
        # The queued message will not go out; the opt-out still refuses the number.
        msg = await gw.store.call(gw.store.messages.get_message, ids["queued"])
        assert msg["state"] == "cancelled" and msg["to_number"] == "[erased]" and msg["text"] == ""
        mention = await gw.store.call(gw.store.messages.get_message, ids["mention"])
        assert mention["to_number"] == OTHER and mention["text"] == "Call Ann on [erased] or [erased]"
        assert await gw.store.call(gw.store.optouts.opted_out, [NUMBER, "06 12 34 56 78"]) == {
            NUMBER, "06 12 34 56 78"}
        status, body = await c.request("POST", "/api/v1/messages", json={"to": NUMBER, "text": "again"})
        assert status != 202 or body["messages"][0]["state"] != "queued"
        # The audit log says who erased what, by hash.
        status, audit = await c.request("GET", "/api/v1/audit?action=number.*")
        assert status == 200 and audit["items"][0]["target"] == number_hash(NUMBER)
        assert audit["items"][0]["actor"].startswith("key:")
        # Idempotent; and a second run finds nothing left to change.
        status, again = await c.request("DELETE", "/api/v1/numbers/+33612345678")
        assert status == 200 and again["rows"] == {}
        # Bad input: a clear 4xx, never a 500; a key without admin may not.
        status, bad = await c.request("DELETE", "/api/v1/numbers/not-a-number")
        assert status == 422 and bad["error"]["code"] == "invalid_number"
        _, weak = await gw.store.call(gw.store.keys.create_api_key, "weak", ["send", "read"])
        assert (await c.request("DELETE", f"/api/v1/numbers/{OTHER}", key=weak))[0] == 403


async def test_erasure_leaves_no_trace_in_any_table(tmp_path: Path, store_url: str) -> None:
    await _erase_everywhere(tmp_path, store_url)
