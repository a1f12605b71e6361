"""Raw rows as the gateway writes them (messages, parts, inbound, events), and an
independent count of what a report over them must say.

The count here reads the raw rows and tallies them with its own rules (written
from the issue and gsmgw.pool.retry's code table, not from gsmgw.store.rollup), so
a report that agrees with it agrees with the rows.
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import math
import secrets
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from gsmgw.store import tables as t
from gsmgw.store.rollup import LATENCY_BOUNDS_S

BASE = dt.datetime(2026, 10, 1, 12, 0, tzinfo=dt.UTC)

# CMS codes used by the traffic, and their class per 3GPP as gsmgw.pool.retry files them.
CMS_CLASS = {1: "permanent", 27: "transient", 300: "modem", 140: "permanent", 600: "transient"}
OUTCOMES = ("delivered", "sent", "failed_report", "failed_cms", "expired", "unknown", "cancelled")


@dataclass
class Spec:
    sim: str | None
    key: str | None
    campaign: str | None
    day: int  # days after BASE
    parts: int
    outcome: str
    cms: int
    latency_s: int
    cost: int | None
    two_phase: bool = False
    number: str = "+15550001111"


def new_id() -> str:
    return secrets.token_hex(16)


def _msg_values(s: Spec, state: str) -> dict[str, Any]:
    created = BASE + dt.timedelta(days=s.day, seconds=s.latency_s % 3600)
    sent_at = created + dt.timedelta(seconds=10)
    v: dict[str, Any] = {
        "state": state, "updated_at": created, "sent_at": None, "delivered_at": None, "error_code": None,
        "cost_micros": None,
    }
    if state in ("sent", "delivered", "failed") and s.outcome != "failed_cms":
        v["sent_at"] = sent_at
        v["cost_micros"] = s.cost
    if state == "delivered":
        v["delivered_at"] = sent_at + dt.timedelta(seconds=s.latency_s)
    if state == "failed":
        v["error_code"] = f"cms:{s.cms}" if s.outcome == "failed_cms" else "report:0x41"
    if state == "expired":
        v["error_code"] = "expired"
    if state == "unknown":
        v["error_code"] = "unknown"
    return v


def _parts(s: Spec, state: str) -> list[dict[str, Any]]:
    sent_at = BASE + dt.timedelta(days=s.day, seconds=s.latency_s % 3600 + 10)
    out = []
    for seq in range(1, s.parts + 1):
        p: dict[str, Any] = {"seq": seq, "recipient": s.number, "modem_id": s.sim, "sent_at": None,
                             "delivered_at": None, "error_code": None}
        if state == "sent":
            p.update(state="sent", sent_at=sent_at)
        elif state == "delivered":
            p.update(state="delivered", sent_at=sent_at, delivered_at=sent_at)
        elif state == "failed" and s.outcome == "failed_report":
            last = seq == s.parts
            p.update(state="failed" if last else "delivered", sent_at=sent_at,
                     error_code="report:0x41" if last else None)
        elif state == "failed":
            p.update(state="failed", error_code=f"cms:{s.cms}")
        else:  # expired, unknown, cancelled
            p.update(state=state)
        out.append(p)
    return out


def final_state(s: Spec) -> str:
    return {"delivered": "delivered", "sent": "sent", "failed_report": "failed", "failed_cms": "failed",
            "expired": "expired", "unknown": "unknown", "cancelled": "cancelled"}[s.outcome]


def event(conn: Any, type_: str, at: dt.datetime, *, message_id: str | None = None,
          payload: dict[str, Any] | None = None) -> None:
    conn.execute(insert(t.events).values(type=type_, message_id=message_id, payload=json.dumps(payload or {}),
                                         created_at=at))


def insert_message(conn: Any, s: Spec, state: str, *, mid: str | None = None) -> str:
    mid = mid or new_id()
    created = BASE + dt.timedelta(days=s.day, seconds=s.latency_s % 3600)
    conn.execute(insert(t.messages).values(
        id=mid, batch_id=mid[:24], api_key_id=s.key, to_number=s.number, text="hello", encoding="gsm7",
        parts_total=s.parts, priority=0, modem_id=s.sim, created_at=created, send_at=created,
        valid_until=created + dt.timedelta(days=2), campaign_id=s.campaign, **_msg_values(s, state)))
    conn.execute(insert(t.message_parts), [{"message_id": mid, **p} for p in _parts(s, state)])
    event(conn, f"sms:{state}", created, message_id=mid)
    return mid


def move_message(conn: Any, mid: str, s: Spec, state: str) -> None:
    conn.execute(update(t.messages).where(t.messages.c.id == mid).values(**_msg_values(s, state)))
    for p in _parts(s, state):
        seq = p.pop("seq")
        conn.execute(update(t.message_parts).where(t.message_parts.c.message_id == mid,
                                                   t.message_parts.c.seq == seq).values(**p))
    event(conn, f"sms:{state}", BASE + dt.timedelta(days=s.day), message_id=mid)


def insert_reply(conn: Any, reply_to: str | None, sim: str, at: dt.datetime, *, optout: bool = False,
                 sender: str = "+15550002222") -> str:
    iid = new_id()
    conn.execute(insert(t.inbound_messages).values(
        id=iid, modem_id=sim, sender=sender, text="STOP" if optout else "thanks", encoding="gsm7",
        parts_total=1, parts_received=1, complete=True, dedup_key=new_id() + new_id(), in_reply_to=reply_to,
        received_at=at))
    event(conn, "sms:received", at, payload={"id": iid, "from": sender, "sim": sim, "text": "x",
                                             "in_reply_to": reply_to, "received_at": at.isoformat()})
    if optout:
        event(conn, "optout:added", at, payload={"number": sender, "source": "keyword", "keyword": "STOP",
                                                 "inbound_id": iid})
    return iid


# --- the independent count ------------------------------------------------------------------


def _bucket_bound(seconds: float) -> int | None:
    i = bisect.bisect_left(LATENCY_BOUNDS_S, seconds)
    return LATENCY_BOUNDS_S[i] if i < len(LATENCY_BOUNDS_S) else None


def _nearest_rank(values: list[float], p: float) -> int | None:
    if not values:
        return None
    v = sorted(values)[max(1, math.ceil(p * len(values))) - 1]
    return _bucket_bound(v)


def expected(conn: Any, group_by: str, period: str) -> dict[tuple[str, str], dict[str, Any]]:
    """The report computed from the raw rows: (period, group) -> figures."""
    m, p, i = t.messages, t.message_parts, t.inbound_messages
    col = {"sim": "modem_id", "key": "api_key_id", "campaign": "campaign_id"}[group_by]
    per = (lambda d: d.isoformat()[:10]) if period == "day" else (lambda d: d.isoformat()[:7])
    msgs = {r.id: r for r in conn.execute(select(m)).all()}
    out: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    lat: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in msgs.values():
        k = (per(r.created_at), getattr(r, col) or "")
        o = out[k]
        o["messages"] += 1
        o["messages_delivered"] += r.state == "delivered"
        o["messages_failed"] += r.state == "failed"
        o["cost_micros"] += r.cost_micros or 0
        if r.state == "delivered":
            lat[k].append((r.delivered_at - r.sent_at).total_seconds())
    for q in conn.execute(select(p)).all():
        r = msgs[q.message_id]
        o = out[(per(r.created_at), getattr(r, col) or "")]
        o["parts_sent"] += q.sent_at is not None
        o["parts_delivered"] += q.state == "delivered"
        if q.state in ("failed", "expired", "unknown"):
            code = q.error_code or r.error_code or ""
            if q.state != "failed":
                klass = q.state
            elif code.startswith("cms:"):
                klass = CMS_CLASS[int(code[4:])]
            elif code.startswith("report:"):
                klass = "report"
            else:
                klass = "other"
            o[f"failed_{klass}"] += 1
    inbound = {r.id: r for r in conn.execute(select(i)).all()}
    for r in inbound.values():
        orig = msgs.get(r.in_reply_to) if r.in_reply_to else None
        g = {"sim": r.modem_id, "key": orig.api_key_id if orig else None,
             "campaign": orig.campaign_id if orig else None}[group_by] or ""
        if r.in_reply_to:
            out[(per(r.received_at), g)]["replies"] += 1
        if r.text == "STOP":
            out[(per(r.received_at), g)]["optouts"] += 1
    result = {}
    for k, o in out.items():
        o = dict(o)
        o["ttd_p50_s"] = _nearest_rank(lat[k], 0.5)
        o["ttd_p95_s"] = _nearest_rank(lat[k], 0.95)
        o["delivery_rate"] = round(o["parts_delivered"] / o["parts_sent"], 4) if o.get("parts_sent") else None
        result[k] = o
    return result


def as_expected(row: dict[str, Any], group_by: str) -> tuple[tuple[str, str], dict[str, Any]]:
    """A report row in the shape of ``expected``'s (zeros dropped)."""
    figures = {k: v for k, v in row.items() if k not in ("period", group_by, "failed_by_class", "parts_failed",
                                                          "ttd_samples")}
    figures.update({f"failed_{c}": n for c, n in row["failed_by_class"].items()})
    return (row["period"], row[group_by]), figures


def same(report: list[dict[str, Any]], exp: dict[tuple[str, str], dict[str, Any]], group_by: str) -> None:
    got = dict(as_expected(r, group_by) for r in report)
    assert set(got) == set(exp), (sorted(set(got) ^ set(exp)))
    for k, figures in got.items():
        want = exp[k]
        for name, value in figures.items():
            w = want.get(name, 0 if name not in ("delivery_rate", "ttd_p50_s", "ttd_p95_s") else None)
            assert value == w, f"{k} {name}: report {value}, rows {w}"
