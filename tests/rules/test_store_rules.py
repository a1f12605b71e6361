"""store.rules on SQLite and PostgreSQL: a rule's work on a message happens once; the
auto-reply window counts per (rule, sender) and moves with time."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from gsmgw.domain import EventType
from gsmgw.store import InboundPart


def _inbound(store: Any, sender: str = "+15550001111", text: str = "hello") -> str:
    part = InboundPart(modem_id="sim1", dedup_key=f"k-{sender}-{text}", sender=sender,
                       scts=dt.datetime(2026, 11, 28, tzinfo=dt.UTC), encoding="gsm7", text=text,
                       user_data="", pdu="00", concat_ref=None, concat_bits=None, concat_total=1, concat_seq=1)
    res = store.inbound.ingest_inbound_part(part, join=lambda ps: "".join(p.text for p in ps),
                                            classify=lambda _t: None)
    return str(res.message.id)


def test_apply_rule_once_with_tags_and_events(store: Any) -> None:
    mid = _inbound(store)
    ev = [(EventType.RULE_MQTT, {"topic": "a/b", "message": {"id": mid}})]
    assert store.rules.apply_rule(mid, "r1", tags=["x", "y"], events=ev, modem_id="sim1")
    assert not store.rules.apply_rule(mid, "r1", tags=["x", "y"], events=ev, modem_id="sim1")  # replayed
    assert store.rules.apply_rule(mid, "r2", tags=["y", "z"])
    assert store.inbound.get_inbound(mid)["tags"] == "x,y,z"
    [row] = store.events.list_events(type_="rule.mqtt")
    assert json.loads(row["payload"])["topic"] == "a/b" and row["modem_id"] == "sim1"


def test_reply_window_per_rule_and_sender(store: Any) -> None:
    t0 = dt.datetime(2026, 11, 28, 12, tzinfo=dt.UTC)
    take = store.rules.take_reply
    assert take("r", "+1555", "m1", limit=2, window_s=60, now=t0)
    assert take("r", "+1555", "m1", limit=2, window_s=60, now=t0)  # the same message again: still yes, not counted
    assert take("r", "+1555", "m2", limit=2, window_s=60, now=t0 + dt.timedelta(seconds=1))
    assert not take("r", "+1555", "m3", limit=2, window_s=60, now=t0 + dt.timedelta(seconds=2))
    assert take("other", "+1555", "m3", limit=2, window_s=60, now=t0)  # another rule counts apart
    assert take("r", "+1666", "m4", limit=2, window_s=60, now=t0)  # another sender too
    assert take("r", "+1555", "m5", limit=2, window_s=60, now=t0 + dt.timedelta(seconds=61))  # the window moved
    store.rules.record_run("m3", "r", "reply", "limited", "2 per 60 s")
    store.rules.record_run("m3", "r", "reply", "sent", "x")  # overwritten, one row
    assert store.rules.run_status("m3", "r", "reply") == "sent"
    assert len(store.rules.list_runs(inbound_id="m3")) == 1


def test_inbox_filter_by_tag_is_exact(store: Any) -> None:
    a, b, c = _inbound(store, text="a"), _inbound(store, text="b"), _inbound(store, text="c")
    store.rules.apply_rule(a, "r", tags=["a_b", "vip"])
    store.rules.apply_rule(b, "r", tags=["axb"])
    store.rules.apply_rule(c, "r", tags=["vip2"])
    assert [r["id"] for r in store.inbound.list_inbound(tag="a_b")] == [a]  # "_" is not a wildcard
    assert [r["id"] for r in store.inbound.list_inbound(tag="vip")] == [a]  # whole tags only
    assert store.inbound.list_inbound(tag="ax") == []
