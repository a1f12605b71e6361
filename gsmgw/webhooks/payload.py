"""What a webhook says: one JSON object per event, rendered once when the event is
fanned out, so every retry sends the same bytes.

    {"event_id": 42, "type": "sms:delivered", "created_at": "2026-11-21T23:00:00Z",
     "data": {"message_id": "...", "to": "+447700900123", "sim": "sim1", ...}}

Message events are per message, never per part: the store writes one
``sms:delivered`` when the last part's report arrives.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from gsmgw.config import RuleConfig, WebhooksConfig
from gsmgw.domain import event_family
from gsmgw.isotime import iso_or_value
from gsmgw.urls import host_allowed


def event_matches(patterns: Iterable[str], event_type: str) -> bool:
    """``*`` = all events; ``sms:*`` = every event of a family; else the exact type."""
    for p in patterns:
        if p == "*" or p == event_type:
            return True
        if p.endswith(":*") and event_type.startswith(p[:-1]):
            return True
    return False


def targets(cfg: WebhooksConfig, event: Any, message: Any) -> list[str]:
    """Receiver URLs of one event: the admin's subscriptions, plus the message's own
    ``callback_url`` for its message events if its host is (still) allowed."""
    if event.type.startswith("rule."):
        return []  # hand-offs of inbound rules to doors, not for subscriptions (rule_targets)
    urls = [s.url for s in cfg.subscription if event_matches(s.events, event.type)]
    cb = getattr(message, "callback_url", None) if message is not None else None
    if cb and event_family(event.type) == "sms" and host_allowed(cb, cfg.allowed_hosts):
        urls.append(cb)
    return urls


def rule_targets(rules: Iterable[RuleConfig], event: Any) -> list[str]:
    """The receiver of a ``rule.webhook`` event (issue 19): the URL it names, if a
    ``[[rules]]`` entry still has it (targets stay the admin's)."""
    if event.type != "rule.webhook":
        return []
    try:
        url = json.loads(event.payload or "{}").get("url")
    except (ValueError, AttributeError):
        return []
    return [url] if isinstance(url, str) and url in {r.webhook for r in rules if r.webhook} else []


def render_event(event: Any, message: Any) -> str:
    try:
        payload = json.loads(event.payload or "{}")
    except ValueError:
        payload = {"raw": event.payload}
    if not isinstance(payload, dict):
        payload = {"value": payload}
    data: dict[str, Any] = {}
    if event.modem_id:
        data["sim"] = event.modem_id
    if message is not None:
        state = event.type.split(":", 1)[1] if ":" in event.type else message.state
        data.update({
            "message_id": message.id,
            "batch_id": message.batch_id,
            "to": message.to_number,
            "sim": message.modem_id,
            "state": state,
            "parts_total": message.parts_total,
            "created_at": iso_or_value(message.created_at),
            "sent_at": iso_or_value(message.sent_at),
            "delivered_at": iso_or_value(message.delivered_at) if state == "delivered" else None,
            "error": {"code": message.error_code, "message": message.error_text}
            if state in ("failed", "unknown", "expired", "cancelled") and message.error_code else None,
        })
    elif event.message_id:
        data["message_id"] = event.message_id
    data.update(payload)
    body = {"event_id": event.id, "type": event.type, "created_at": iso_or_value(event.created_at), "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)
