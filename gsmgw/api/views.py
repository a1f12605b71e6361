"""JSON views of stored rows for the API (messages, inbound, opt-outs, deliveries, events)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from gsmgw.isotime import iso_or_value
from gsmgw.store.inbound import inbound_view as stored_inbound_view

# A datetime as ISO 8601 UTC with "Z" (naive = UTC, the store's convention); anything else as it is.
iso = iso_or_value


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, dt.datetime):
        return iso(obj)
    if hasattr(obj, "value") and isinstance(getattr(obj, "value", None), str):
        return obj.value
    return obj


def _error(code: Any, text: Any) -> dict[str, Any] | None:
    return {"code": code, "message": text} if code else None


def _waiting(row: dict[str, Any]) -> dict[str, Any] | None:
    reason, until = row.get("wait_reason"), row.get("send_at")
    if row.get("state") != "queued" or not reason or until is None or until <= dt.datetime.now(dt.UTC):
        return None
    return {"reason": reason, "until": iso(until)}


def message_view(row: dict[str, Any]) -> dict[str, Any]:
    out = {
        "id": row["id"],
        "batch_id": row["batch_id"],
        "to": row["to_number"],
        "text": row["text"],
        "state": row["state"],
        "encoding": row["encoding"],
        "parts_total": row["parts_total"],
        "priority": row["priority"],
        "sim": row["modem_id"],
        "sim_requested": row["sim_requested"],
        "flash": row["flash"],
        "delivery_report": row["delivery_report"],
        "transactional": row["transactional"],
        "attempts": row["attempts"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "send_at": iso(row["send_at"]),
        "valid_until": iso(row["valid_until"]),
        "sent_at": iso(row["sent_at"]),
        "delivered_at": iso(row["delivered_at"]),
        "error": _error(row.get("error_code"), row.get("error_text")),
        # SIM care (issue 20): why a queued message is held past its send time, and its cost.
        "waiting": _waiting(row),
        "cost_micros": row.get("cost_micros"),
    }
    if "parts" in row:
        out["parts"] = [
            {
                "seq": p["seq"],
                "state": p["state"],
                "sim": p["modem_id"],
                "tp_mr": p["tp_mr"],
                "sent_at": iso(p["sent_at"]),
                "delivered_at": iso(p["delivered_at"]),
                "report_status": p["report_status"],
                "error": _error(p["error_code"], p["error_text"]),
            }
            for p in row["parts"]
        ]
    return out


def inbound_view(row: dict[str, Any], *, with_parts: bool = False) -> dict[str, Any]:
    # The store writes the same shape into sms:received events: one definition for both.
    out = stored_inbound_view(row)
    # Tags inbound rules put on it (issue 19); not in the sms:received event, which is
    # written before the rules run.
    out["tags"] = [x for x in (row.get("tags") or "").split(",") if x]
    if with_parts:
        out["parts"] = [{"seq": p["concat_seq"], "pdu": p["pdu"], "received_at": iso(p["received_at"])}
                        for p in row["parts"]]
    return out


def optout_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "number": row["number"],
        "source": row["source"],
        "keyword": row["keyword"] or None,
        "inbound_id": row["inbound_id"],
        "note": row["note"],
        "created_at": iso(row["created_at"]),
    }


def delivery_view(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["id"], "event_id": r["event_id"], "type": r["event_type"], "url": r["url"],
        "state": r["state"], "attempts": r["attempts"], "last_status": r["last_status"],
        "last_error": r["last_error"], "next_attempt_at": iso(r["next_attempt_at"]),
        "created_at": iso(r["created_at"]), "delivered_at": iso(r["delivered_at"]),
    }


def event_view(r: dict[str, Any]) -> dict[str, Any]:
    return {"id": r["id"], "type": r["type"], "message_id": r["message_id"], "sim": r["modem_id"],
            "data": json.loads(r["payload"] or "{}"), "created_at": iso(r["created_at"])}


REMOTE_MODEM_FIELDS = ("id", "host", "port", "state", "state_reason", "enabled", "imei", "iccid", "imsi",
                       "operator", "model", "manufacturer", "own_number", "signal_csq")


def remote_modem_view(r: dict[str, Any]) -> dict[str, Any]:
    """A modem another host of a shared store last reported (no live figures)."""
    view = {k: r.get(k) for k in REMOTE_MODEM_FIELDS}
    view.update(remote=True, updated_at=iso(r["updated_at"]), busy=None, sent_parts=None,
                failed_parts=None, last_error="", resting=None, limits=None)
    return view
