"""The local-server API of SMS Gateway for Android (capcom6/android-sms-gateway).

Clients written for the app (its ``android-sms-gateway`` Python package, the PHP,
JS and Go clients, Home Assistant integrations) work unchanged with
``base_url = "http://GATEWAY:PORT"``:

* ``POST /message`` and ``POST /messages``: ``{"textMessage": {"text"}`` or the
  older ``"message"``, ``"phoneNumbers": [...]``, ``"simNumber"``,
  ``"withDeliveryReport"``, ``"ttl"`` / ``"validUntil"``, ``"scheduleAt"``,
  ``"priority"`` (-128..127), ``"id"``}`` → 202 and the message state;
* ``GET /message/{id}``, ``GET /messages/{id}``: state (``Pending``,
  ``Processed``, ``Sent``, ``Delivered``, ``Failed``, ``Cancelled``) overall
  and per recipient; ``DELETE /messages/{id}`` cancels what is still queued;
* ``GET /webhooks``, ``POST /webhooks``, ``DELETE /webhooks/{id}``: webhook
  registrations for ``sms:received``, ``sms:sent``, ``sms:delivered``,
  ``sms:failed``, ``sms:cancelled`` (POSTed in the app's shape), to hosts in
  ``webhooks.allowed_hosts`` only;
* ``GET /health``: ``{"status": "pass"|"warn"|"fail", "version", "checks"}``.

Auth is HTTP Basic with any username and a gsmgw API key as the password (or
the key as a Bearer token): the same keys, scopes, rate limits and quotas as
the native API. Every message goes through the native validation (E.164
numbers, text → parts, opt-outs, quota, queue depth) and the same single
commit; the message id is the client's ``id`` (or a generated one), kept as the
batch's idempotency key, so a retried POST with the same id never sends twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import secrets
import time
from collections import OrderedDict
from typing import Any

from aiohttp import web

from gsmgw import __version__
from gsmgw.api.auth import CALLER, require_scope
from gsmgw.api.context import INTAKE, SERVICES, Services
from gsmgw.api.errors import json_body, retry_after_header
from gsmgw.api.event_follower import follower
from gsmgw.api.views import iso
from gsmgw.domain import EventType
from gsmgw.errors import AdmissionError, ConflictError, UnavailableError, ValidationError
from gsmgw.intake import SendRequest
from gsmgw.intake.checks import parse_time
from gsmgw.urls import host_allowed, target

IDEM_PREFIX = "android:"
DOOR = "android"
# The intake service names fields as the native API does; the app names them so.
FIELDS = {"to": "phoneNumbers", "send_at": "scheduleAt", "valid_until": "validUntil", "sim": "simNumber",
          "delivery_report": "withDeliveryReport"}
MAX_PHONE_NUMBERS = 100
MAX_ID_CHARS = 36
MAX_WEBHOOKS = 100
EVENTS = tuple(e.value for e in (EventType.SMS_RECEIVED, EventType.SMS_SENT, EventType.SMS_DELIVERED,
                                  EventType.SMS_FAILED, EventType.SMS_CANCELLED))

# gsmgw state -> the app's ProcessState
STATE = {
    "queued": "Pending",
    "sending": "Processed",
    "sent": "Sent",
    "delivered": "Delivered",
    "failed": "Failed",
    "expired": "Failed",
    "unknown": "Failed",  # the PDU went to the modem, no result came back; gsmgw never resends it
    "cancelled": "Cancelled",
}
_PROGRESS = ("Pending", "Processed", "Sent", "Delivered")


def android_error(status: int, message: str, *, code: str = "bad_request", field: str | None = None) -> web.Response:
    data: dict[str, Any] = {"error": code}
    if field:
        data["field"] = field
    return web.json_response({"code": status, "message": message, "data": data}, status=status)


def _scaled_priority(raw: Any) -> int:
    """The app's -128..127 (>= 100 bypasses limits) onto gsmgw's -10..10."""
    if raw is None:
        return 0
    if isinstance(raw, bool) or not isinstance(raw, int) or not -128 <= raw <= 127:
        raise ValidationError("invalid_field", "priority must be an integer from -128 to 127", field="priority")
    if raw >= 100:
        return 9  # gsmgw's "otp": ahead of everything routine
    return max(-10, min(8, round(raw / 12.5)))


@dataclasses.dataclass
class Webhook:
    id: str
    url: str
    event: str
    owner_key_id: str


@dataclasses.dataclass
class AndroidState:
    """Registrations (in memory: clients of the app re-register on start) and the
    gsmgw message id -> app message id map that webhooks need."""

    webhooks: dict[str, Webhook] = dataclasses.field(default_factory=dict)
    app_ids: OrderedDict[str, str] = dataclasses.field(default_factory=OrderedDict)
    max_ids: int = 100_000

    def remember(self, message_ids: tuple[str, ...], app_id: str) -> None:
        for mid in message_ids:
            self.app_ids[mid] = app_id
            self.app_ids.move_to_end(mid)
        while len(self.app_ids) > self.max_ids:
            self.app_ids.popitem(last=False)


STATE_KEY = web.AppKey("compat_android", AndroidState)


# --- sending --------------------------------------------------------------------------


def _text_of(body: dict[str, Any]) -> Any:
    if body.get("dataMessage") is not None:
        raise ValidationError("unsupported", "data messages are not supported by gsmgw", field="dataMessage")
    if body.get("mmsMessage") is not None:
        raise ValidationError("unsupported", "MMS is not supported by gsmgw", field="mmsMessage")
    if body.get("isEncrypted"):
        raise ValidationError("unsupported", "end-to-end encrypted messages are not supported by gsmgw",
                              field="isEncrypted")
    tm = body.get("textMessage")
    if tm is not None:
        if not isinstance(tm, dict):
            raise ValidationError("invalid_text", "textMessage must be an object {\"text\": ...}",
                                  field="textMessage")
        return tm.get("text")
    return body.get("message")


async def _sim_for(svc: Services, raw: Any) -> str | None:
    """simNumber N (1-based) = the Nth modem of this gateway, in configuration order."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ValidationError("invalid_field", "simNumber must be a positive integer", field="simNumber")
    modems = svc.modems()
    if raw > len(modems):
        raise ValidationError("unknown_sim", f"simNumber {raw}: this gateway has {len(modems)} modem(s)",
                              field="simNumber")
    return str(modems[raw - 1]["id"])


# URL path characters that need no escaping: ids end up in /messages/{id}.
_ID_RE = re.compile(r"[A-Za-z0-9._~:@!$&'()*+,;=-]{1," + str(MAX_ID_CHARS) + "}")


def _app_id(raw: Any, field: str = "id") -> str:
    if raw is None or raw == "":
        return secrets.token_urlsafe(16)[:21]
    if not isinstance(raw, str) or not _ID_RE.fullmatch(raw):
        raise ValidationError("invalid_field", f"{field} must be 1-{MAX_ID_CHARS} letters, digits or - _ . ~ : @",
                              field=field)
    return raw


async def post_message(request: web.Request) -> web.Response:
    caller = require_scope(request, "send")
    svc = request.app[SERVICES]
    intake = request.app[INTAKE]
    try:
        body = await json_body(request)
        raw_numbers = body.get("phoneNumbers")
        if not isinstance(raw_numbers, list) or not 1 <= len(raw_numbers) <= MAX_PHONE_NUMBERS:
            raise ValidationError("invalid_number", f"phoneNumbers must be a list of 1 to {MAX_PHONE_NUMBERS} numbers",
                                  field="phoneNumbers")
        numbers = list(dict.fromkeys(intake.number(n, field="phoneNumbers") for n in raw_numbers))
        text = _text_of(body)
        app_id = _app_id(body.get("id"))
        send_at = parse_time(body["scheduleAt"], "scheduleAt") if body.get("scheduleAt") is not None else None
        if body.get("ttl") is not None and body.get("validUntil") is not None:
            raise ValidationError("invalid_field", "give ttl or validUntil, not both", field="ttl")
        valid_until = parse_time(body["validUntil"], "validUntil") if body.get("validUntil") is not None else None
        ttl = body.get("ttl")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= 30 * 86400):
            raise ValidationError("invalid_field", "ttl must be whole seconds, from 1 to 2592000", field="ttl")
        report = body.get("withDeliveryReport", svc.cfg.dispatch.delivery_reports)
        if not isinstance(report, bool):
            raise ValidationError("invalid_field", "withDeliveryReport must be true or false",
                                  field="withDeliveryReport")
        sim = await _sim_for(svc, body.get("simNumber"))
        req = SendRequest(
            to=numbers, text=text, priority=_scaled_priority(body.get("priority")), send_at=send_at,
            valid_until=valid_until, ttl_s=ttl, sim=sim, delivery_report=report,
            idempotency_key=IDEM_PREFIX + app_id, door=DOOR, door_data={"id": app_id},
        )
        result = await intake.submit(caller, req)
    except ValidationError as exc:
        return android_error(400, exc.message, code=exc.code, field=FIELDS.get(exc.field or "", exc.field))
    except ConflictError as exc:  # the id reused for another message
        return android_error(409, exc.message, code=exc.code, field="id")
    except AdmissionError as exc:
        out = android_error(503 if isinstance(exc, UnavailableError) else 429, exc.message, code=exc.code)
        out.headers["Retry-After"] = retry_after_header(exc.retry_after_s)
        return out
    request.app[STATE_KEY].remember(result.message_ids, app_id)
    if result.replayed:  # an earlier request with this id: its messages as they are now
        rows = await svc.store.call(svc.store.messages.get_messages, result.message_ids)
    else:  # as committed (a dispatcher may already be sending it: the app answers Pending too)
        now = dt.datetime.now(dt.UTC)
        rows = [{"to_number": m.to, "state": "queued", "created_at": now} for m in result.messages]
    resp = web.json_response(_message_state(app_id, rows, svc.host), status=202)
    resp.headers["Location"] = f"/messages/{app_id}"
    return resp


# --- state ------------------------------------------------------------------------------


def _recipient(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"phoneNumber": row["to_number"], "state": STATE.get(row["state"], "Pending")}
    if out["state"] == "Failed":
        reason = row.get("error_text") or row.get("error_code") or row["state"]
        out["error"] = f"{row['state']}: {reason}" if row["state"] != "failed" else str(reason)
    return out


def _overall(states: list[str]) -> str:
    live = [s for s in states if s not in ("Failed", "Cancelled")]
    if live:
        return min(live, key=_PROGRESS.index)
    return "Cancelled" if all(s == "Cancelled" for s in states) else "Failed"


def _message_state(app_id: str, rows: list[dict[str, Any]], device_id: str) -> dict[str, Any]:
    recipients = [_recipient(r) for r in rows]
    created = min((r["created_at"] for r in rows), default=None)
    history: dict[str, str] = {}
    if created is not None:
        history["Pending"] = iso(created)
    sent = [r["sent_at"] for r in rows if r.get("sent_at")]
    if sent:
        history["Sent"] = iso(max(sent))
    delivered = [r["delivered_at"] for r in rows if r.get("delivered_at")]
    if delivered and all(r["state"] == "delivered" for r in rows):
        history["Delivered"] = iso(max(delivered))
    out: dict[str, Any] = {
        "id": app_id,
        "deviceId": device_id,
        "state": _overall([r["state"] for r in recipients]),
        "recipients": recipients,
        "isHashed": False,
        "isEncrypted": False,
        "states": history,
    }
    if created is not None:
        out["createdAt"] = iso(created)
    return out


async def _rows_for(request: web.Request, app_id: str) -> list[dict[str, Any]]:
    """The messages of an app id: this key's batch with that id; failing that, a
    gsmgw message id (so ids from the native API work here too)."""
    svc = request.app[SERVICES]
    key = request[CALLER]
    found = await svc.store.call(svc.store.messages.find_by_idempotency_key, key.id, IDEM_PREFIX + app_id)
    ids: tuple[str, ...] = found.message_ids if found is not None else (app_id,)
    # Another key's messages are not there for this one (admin sees all).
    present = [r for r in await svc.store.call(svc.store.messages.get_messages, ids)
               if request.app[INTAKE].sees(key, r)]
    if found is not None:
        request.app[STATE_KEY].remember(tuple(r["id"] for r in present), app_id)
    return present


async def get_message(request: web.Request) -> web.Response:
    require_scope(request, "read")
    app_id = request.match_info["id"]
    rows = await _rows_for(request, app_id)
    if not rows:
        return android_error(404, "message not found", code="not_found")
    return web.json_response(_message_state(app_id, rows, request.app[SERVICES].host))


async def delete_message(request: web.Request) -> web.Response:
    caller = require_scope(request, "send")
    intake = request.app[INTAKE]
    rows = await _rows_for(request, request.match_info["id"])
    if not rows:
        return android_error(404, "message not found", code="not_found")
    results = [await intake.cancel(caller, r["id"]) for r in rows]
    if not any(results):
        return android_error(409, "nothing to cancel: no recipient is still pending", code="not_cancellable")
    return web.Response(status=204)


# --- webhooks ---------------------------------------------------------------------------


def _webhook_view(w: Webhook, device_id: str) -> dict[str, Any]:
    return {"id": w.id, "url": w.url, "event": w.event, "deviceId": device_id}


def _visible(request: web.Request) -> list[Webhook]:
    key = request[CALLER]
    hooks = request.app[STATE_KEY].webhooks.values()
    return [w for w in hooks if "admin" in key.scopes or w.owner_key_id == key.id]


async def list_webhooks(request: web.Request) -> web.Response:
    require_scope(request, "read")
    host = request.app[SERVICES].host
    return web.json_response([_webhook_view(w, host) for w in _visible(request)])


async def post_webhook(request: web.Request) -> web.Response:
    key = require_scope(request, "read")  # a webhook pushes what GET /api/v1/inbox would show
    svc = request.app[SERVICES]
    state = request.app[STATE_KEY]
    try:
        body = await json_body(request)
        url, event = body.get("url"), body.get("event")
        if event not in EVENTS:
            raise ValidationError("invalid_event", f"event must be one of {', '.join(EVENTS)}", field="event")
        if not isinstance(url, str) or len(url) > 2048 or not url.isprintable():
            raise ValidationError("invalid_url", "url must be an http(s) URL", field="url")
        where = target(url)
        if where is None:
            raise ValidationError("invalid_url", "url must be an http(s) URL", field="url")
        if not host_allowed(url, svc.cfg.webhooks.allowed_hosts):
            raise ValidationError("url_not_allowed", f"{where[0]}:{where[1]} is not in webhooks.allowed_hosts",
                                  field="url")
        hook_id = _app_id(body.get("id"))
    except ValidationError as exc:
        return android_error(400, exc.message, code=exc.code, field=exc.field)
    old = state.webhooks.get(hook_id)
    if old is not None and old.owner_key_id != key.id and "admin" not in key.scopes:
        return android_error(409, "a webhook with this id belongs to another key", code="conflict")
    if old is None and len(state.webhooks) >= MAX_WEBHOOKS:
        return android_error(400, f"at most {MAX_WEBHOOKS} webhooks", code="too_many_webhooks")
    hook = Webhook(id=hook_id, url=url, event=event, owner_key_id=key.id)
    state.webhooks[hook_id] = hook  # the same id again replaces, as in the app
    return web.json_response(_webhook_view(hook, svc.host), status=201)


async def delete_webhook(request: web.Request) -> web.Response:
    require_scope(request, "read")
    hook_id = request.match_info["id"]
    if hook_id not in {w.id for w in _visible(request)}:
        return android_error(404, "webhook not found", code="not_found")
    del request.app[STATE_KEY].webhooks[hook_id]
    return web.Response(status=204)


def _sim_number(svc: Services, modem_id: str | None) -> int | None:
    for i, m in enumerate(svc.modems(), start=1):
        if m["id"] == modem_id:
            return i
    return None


def _door_id(row: dict[str, Any]) -> str | None:
    """The app's message id, as this door stored it with the message."""
    if row.get("door") == DOOR and row.get("door_data"):
        try:
            app_id = json.loads(row["door_data"]).get("id")
        except (ValueError, AttributeError):
            return None
        return app_id if isinstance(app_id, str) else None
    key = row.get("idempotency_key") or ""  # rows from before migration 0004
    return key[len(IDEM_PREFIX):] if key.startswith(IDEM_PREFIX) else None


def _event_handler(app: web.Application) -> Any:
    async def on_event(event: dict[str, Any]) -> None:
        state = app[STATE_KEY]
        kind = event["type"]
        hooks = [w for w in state.webhooks.values() if w.event == kind]
        if not hooks:
            return
        svc = app[SERVICES]
        at = iso(event["created_at"])
        payload: dict[str, Any]
        if kind == EventType.SMS_RECEIVED:
            data = json.loads(event["payload"] or "{}")
            payload = {"messageId": data.get("id"), "message": data.get("text"), "phoneNumber": data.get("from"),
                       "sender": data.get("from"), "recipient": None,
                       "simNumber": _sim_number(svc, data.get("sim")), "receivedAt": data.get("received_at") or at}
        else:
            row = await svc.store.call(svc.store.messages.get_message, event["message_id"]) if event["message_id"] else None
            if row is None:
                return
            app_id = _door_id(row) or state.app_ids.get(row["id"]) or row["batch_id"]
            payload = {"messageId": app_id, "phoneNumber": row["to_number"], "recipient": row["to_number"],
                       "simNumber": _sim_number(svc, row.get("modem_id"))}
            stamp = {EventType.SMS_SENT: "sentAt", EventType.SMS_DELIVERED: "deliveredAt",
                     EventType.SMS_FAILED: "failedAt", EventType.SMS_CANCELLED: "cancelledAt"}[EventType(kind)]
            payload[stamp] = at
            if kind == EventType.SMS_FAILED:
                payload["reason"] = row.get("error_text") or row.get("error_code") or "failed"
        f = follower(app)
        for w in hooks:
            body = {"deviceId": svc.host, "event": kind, "id": f"{event['id']}", "webhookId": w.id,
                    "payload": payload}
            f.post("POST", w.url, json_body=body, what="android-webhook")

    return on_event


# --- health ----------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    checks: dict[str, dict[str, Any]] = {}
    t0 = time.monotonic()
    try:
        depth = await svc.store.call(svc.store.messages.queue_depth)
        checks["store:ready"] = {"description": "the message store answers", "status": "pass",
                                 "observedValue": round((time.monotonic() - t0) * 1000), "observedUnit": "ms"}
        checks["messages:queued"] = {"description": "messages queued or sending", "status": "pass",
                                     "observedValue": depth, "observedUnit": "messages"}
    except Exception as exc:
        checks["store:ready"] = {"description": f"store unavailable: {type(exc).__name__}", "status": "fail",
                                 "observedValue": 0, "observedUnit": "ms"}
    modems = svc.modems()
    ready = sum(1 for m in modems if m.get("state") == "ready" and m.get("enabled"))
    checks["modems:ready"] = {"description": f"{ready} of {len(modems)} modems ready",
                              "status": "pass" if ready else "warn", "observedValue": ready,
                              "observedUnit": "modems"}
    # The gateway's own verdict (gsmgw.health): fail when the store cannot be trusted
    # or no modem has been ready past the grace period; its reasons say why.
    r = svc.current_readiness()
    checks["gateway:ready"] = {"description": "; ".join(r.reasons) or "ready",
                               "status": {"ok": "pass", "degraded": "warn", "fail": "fail"}[r.status],
                               "observedValue": len(r.reasons), "observedUnit": "problems"}
    statuses = [c["status"] for c in checks.values()]
    status = "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"
    body = {"status": status, "version": __version__, "releaseId": 0, "checks": checks}
    return web.json_response(body, status=503 if status == "fail" else 200)


def add_routes(app: web.Application) -> None:
    app[STATE_KEY] = AndroidState()
    follower(app).subscribe(_event_handler(app))
    r = app.router
    for path in ("/message", "/messages"):
        r.add_post(path, post_message)
        r.add_get(path + "/{id}", get_message)
        r.add_delete(path + "/{id}", delete_message)
    r.add_get("/webhooks", list_webhooks)
    r.add_post("/webhooks", post_webhook)
    r.add_delete("/webhooks/{id}", delete_webhook)
    r.add_get("/health", health)


__all__ = ["STATE_KEY", "add_routes"]
