"""API routes for the inbox, opt-out list, USSD, balance and webhooks."""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from gsmgw.api.auth import require_scope
from gsmgw.api.context import INTAKE, SERVICES
from gsmgw.api.errors import error_response, json_body
from gsmgw.api.views import delivery_view, event_view, inbound_view, optout_view
from gsmgw.errors import ATTimeout, ModemError, ValidationError
from gsmgw.intake import IntakeService
from gsmgw.intake.checks import parse_time


class InboundControl(Protocol):
    """What these routes need of the pool's inbound processor (wired by gsmgw.daemon)."""

    balances: dict[str, dict[str, Any]]

    async def ussd(self, modem_id: str, code: str, timeout_s: float | None = None) -> str: ...


INBOUND = web.AppKey("inbound_control", InboundControl)

MAX_USSD_TIMEOUT_S = 120.0


def _limit(q: Any, default: int = 50, maximum: int = 500) -> int:
    try:
        limit = int(q.get("limit", str(default)))
    except ValueError:
        raise ValidationError("invalid_query", "limit must be an integer", field="limit") from None
    if not 1 <= limit <= maximum:
        raise ValidationError("invalid_query", f"limit must be from 1 to {maximum}", field="limit")
    return limit


def _sender_filter(raw: str, intake: IntakeService) -> str:
    """An inbox sender: a phone number (normalised to E.164) or an alphanumeric name."""
    if any(ord(c) < 32 or ord(c) == 127 for c in raw) or not raw or len(raw) > 32:
        raise ValidationError("invalid_query", "from must be 1-32 printable characters", field="from")
    if any(c.isalpha() for c in raw):
        return raw  # "MyBank": alphanumeric originators are stored as sent
    try:
        return intake.number(raw, field="from")
    except ValidationError:
        if raw.lstrip("+").isdigit():
            return raw  # a national or short-code originator, stored as the network gave it
        raise


# --- inbox ------------------------------------------------------------------------


async def list_inbox(request: web.Request) -> web.Response:
    require_scope(request, "read")
    svc = request.app[SERVICES]
    q = request.query
    limit = _limit(q)
    complete: bool | None = None
    if "complete" in q:
        if q["complete"] not in ("true", "false"):
            raise ValidationError("invalid_query", "complete must be true or false", field="complete")
        complete = q["complete"] == "true"
    since = parse_time(q["since"], "since") if "since" in q else None
    sender = _sender_filter(q["from"], request.app[INTAKE]) if "from" in q else None
    rows = await svc.store.call(
        svc.store.inbound.list_inbound, sender=sender, modem_id=q.get("sim"), since=since, complete=complete,
        before_id=q.get("cursor"), limit=limit,
    )
    items = [inbound_view(r) for r in rows]
    return web.json_response({"items": items, "next_cursor": items[-1]["id"] if len(items) == limit else None})


async def get_inbox_item(request: web.Request) -> web.Response:
    require_scope(request, "read")
    svc = request.app[SERVICES]
    row = await svc.store.call(svc.store.inbound.get_inbound, request.match_info["id"])
    if row is None:
        return error_response(404, "not_found", "no such inbound message")
    return web.json_response(inbound_view(row, with_parts=True))


# --- opt-out ------------------------------------------------------------------------


async def list_optouts(request: web.Request) -> web.Response:
    require_scope(request, "read")
    svc = request.app[SERVICES]
    limit = _limit(request.query, 100, 1000)
    rows = await svc.store.call(svc.store.optouts.list_optouts, after=request.query.get("cursor"), limit=limit)
    items = [optout_view(r) for r in rows]
    return web.json_response({"items": items, "next_cursor": items[-1]["number"] if len(items) == limit else None})


async def get_optout(request: web.Request) -> web.Response:
    require_scope(request, "read")
    svc = request.app[SERVICES]
    number = request.app[INTAKE].number(request.match_info["number"], field="number")
    listed = await svc.store.call(svc.store.optouts.opted_out, [number])
    if not listed:
        return error_response(404, "not_found", f"{number} is not on the opt-out list")
    return web.json_response({"number": number, "opted_out": True})


async def post_optout(request: web.Request) -> web.Response:
    require_scope(request, "send")  # adding only ever restricts sending
    svc = request.app[SERVICES]
    body = await json_body(request)
    unknown = set(body) - {"number", "note"}
    if unknown:
        raise ValidationError("unknown_field", f"unknown field(s): {', '.join(sorted(unknown))}")
    number = request.app[INTAKE].number(body.get("number"), field="number")
    note = body.get("note", "")
    if not isinstance(note, str) or len(note) > 500:
        raise ValidationError("invalid_field", "note must be a string of at most 500 characters", field="note")
    added = await svc.store.call(svc.store.optouts.add_optout, number, source="api", note=note)
    return web.json_response({"number": number, "opted_out": True, "added": added}, status=201 if added else 200)


async def delete_optout(request: web.Request) -> web.Response:
    require_scope(request, "admin")  # lifting an opt-out needs the admin's word
    svc = request.app[SERVICES]
    number = request.app[INTAKE].number(request.match_info["number"], field="number")
    removed = await svc.store.call(svc.store.optouts.remove_optout, number)
    if not removed:
        return error_response(404, "not_found", f"{number} is not on the opt-out list")
    return web.json_response({"number": number, "opted_out": False})


# --- USSD and balance ----------------------------------------------------------------


async def post_ussd(request: web.Request) -> web.Response:
    require_scope(request, "admin")
    svc = request.app[SERVICES]
    modem_id = request.match_info["id"]
    body = await json_body(request)
    unknown = set(body) - {"code", "timeout_s"}
    if unknown:
        raise ValidationError("unknown_field", f"unknown field(s): {', '.join(sorted(unknown))}")
    code = body.get("code")
    if not isinstance(code, str) or not 1 <= len(code) <= 64 or not all(c.isdigit() or c in "*#+" for c in code):
        raise ValidationError("invalid_ussd", "code must be 1-64 of 0-9 * # + (e.g. \"*100#\")", field="code")
    timeout_s = body.get("timeout_s")
    if timeout_s is not None and (isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float)
                                  or not 0 < timeout_s <= MAX_USSD_TIMEOUT_S):
        raise ValidationError("invalid_field", f"timeout_s must be a number from 0 to {MAX_USSD_TIMEOUT_S:g}",
                              field="timeout_s")
    if modem_id not in {m["id"] for m in svc.modems()}:
        return error_response(404, "not_found", "no such modem")
    control = request.app.get(INBOUND)
    if control is None:
        return error_response(503, "unavailable", "USSD is not wired in this gateway")
    try:
        text = await control.ussd(modem_id, code, float(timeout_s) if timeout_s is not None else None)
    except KeyError:
        return error_response(404, "not_found", "no such modem")
    except ATTimeout as exc:
        return error_response(504, "ussd_timeout", str(exc))
    except ModemError as exc:
        not_ready = type(exc).__name__ == "ModemNotReady"
        return error_response(409 if not_ready else 502, "modem_not_ready" if not_ready else "ussd_failed",
                                  str(exc))
    except ValueError as exc:
        raise ValidationError("invalid_ussd", str(exc), field="code") from None
    return web.json_response({"sim": modem_id, "code": code, "text": text})


async def get_balance(request: web.Request) -> web.Response:
    require_scope(request, "read")
    control = request.app.get(INBOUND)
    info = control.balances.get(request.match_info["id"]) if control is not None else None
    if info is None:
        return error_response(404, "not_found", "no balance checked for this modem (see inbound.balance_ussd)")
    return web.json_response({"sim": request.match_info["id"], **info})


# --- webhooks -------------------------------------------------------------------------


async def get_webhooks(request: web.Request) -> web.Response:
    require_scope(request, "admin")
    svc = request.app[SERVICES]
    w = svc.cfg.webhooks
    counts = await svc.store.call(svc.store.webhooks.webhook_counts)
    return web.json_response({
        "subscriptions": [{"url": s.url, "events": list(s.events)} for s in w.subscription],
        "allowed_callback_hosts": list(w.allowed_hosts),
        "signed": bool(w.signing_secret),
        "max_attempts": w.max_attempts,
        "deliveries": counts,
    })


async def list_deliveries(request: web.Request) -> web.Response:
    require_scope(request, "admin")
    svc = request.app[SERVICES]
    q = request.query
    limit = _limit(q, 100, 1000)
    state = q.get("state")
    if state is not None and state not in ("pending", "delivered", "failed"):
        raise ValidationError("invalid_query", "state must be pending, delivered or failed", field="state")
    before: int | None = None
    if "cursor" in q:
        if not q["cursor"].isdigit():
            raise ValidationError("invalid_query", "cursor must be an integer", field="cursor")
        before = int(q["cursor"])
    rows = await svc.store.call(svc.store.webhooks.list_webhook_deliveries, state=state, before_id=before, limit=limit)
    items = [delivery_view(r) for r in rows]
    return web.json_response({"items": items, "next_cursor": str(items[-1]["id"]) if len(items) == limit else None})


async def retry_deliveries(request: web.Request) -> web.Response:
    require_scope(request, "admin")
    svc = request.app[SERVICES]
    n = await svc.store.call(svc.store.webhooks.retry_failed_webhooks)
    return web.json_response({"requeued": n})


async def list_events(request: web.Request) -> web.Response:
    require_scope(request, "admin")
    svc = request.app[SERVICES]
    q = request.query
    limit = _limit(q, 100, 1000)
    after = q.get("after", "0")
    if not after.isdigit():
        raise ValidationError("invalid_query", "after must be an event id", field="after")
    rows = await svc.store.call(svc.store.events.list_events, after_id=int(after), type_=q.get("type"), limit=limit)
    items = [event_view(r) for r in rows]
    return web.json_response({"items": items, "next_after": items[-1]["id"] if items else int(after)})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/v1/inbox", list_inbox)
    r.add_get("/api/v1/inbox/{id}", get_inbox_item)
    r.add_get("/api/v1/optouts", list_optouts)
    r.add_post("/api/v1/optouts", post_optout)
    r.add_get("/api/v1/optouts/{number}", get_optout)
    r.add_delete("/api/v1/optouts/{number}", delete_optout)
    r.add_post("/api/v1/modems/{id}/ussd", post_ussd)
    r.add_get("/api/v1/modems/{id}/balance", get_balance)
    r.add_get("/api/v1/webhooks", get_webhooks)
    r.add_get("/api/v1/webhooks/deliveries", list_deliveries)
    r.add_post("/api/v1/webhooks/deliveries/retry", retry_deliveries)
    r.add_get("/api/v1/events", list_events)


__all__ = ["INBOUND", "InboundControl", "add_routes"]
