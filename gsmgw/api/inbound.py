"""API routes for the inbox, opt-out list, USSD, balance and webhooks."""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from gsmgw.api import schemas
from gsmgw.api.auth import require_scope
from gsmgw.api.context import INTAKE, SERVICES
from gsmgw.api.errors import error_response, json_body, takes_query
from gsmgw.api.schemas import parse, query
from gsmgw.api.views import delivery_view, event_view, inbound_view, optout_view
from gsmgw.errors import ATTimeout, ModemError, ValidationError
from gsmgw.intake import IntakeService
from gsmgw.intake.checks import parse_time


class InboundControl(Protocol):
    """What these routes need of the pool's inbound processor (wired by gsmgw.daemon)."""

    balances: dict[str, dict[str, Any]]

    async def ussd(self, modem_id: str, code: str, timeout_s: float | None = None) -> str: ...


INBOUND = web.AppKey("inbound_control", InboundControl)

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


@takes_query
async def list_inbox(request: web.Request) -> web.Response:
    """The inbox: replies to the caller's own messages (admin: every inbound message)."""
    caller = require_scope(request, "read")
    svc = request.app[SERVICES]
    q = query(schemas.InboxQuery, request.query)
    complete = None if q.complete is None else q.complete == "true"
    since = parse_time(q.since, "since") if q.since is not None else None
    sender = _sender_filter(q.from_, request.app[INTAKE]) if q.from_ is not None else None
    rows = await svc.store.call(
        svc.store.inbound.list_inbound, sender=sender, modem_id=q.sim, since=since, complete=complete,
        before_id=q.cursor, limit=q.limit, reply_to_key=request.app[INTAKE].owner_filter(caller),
        **({"tag": q.tag} if q.tag is not None else {}),
    )
    items = [inbound_view(r) for r in rows]
    return web.json_response({"items": items, "next_cursor": items[-1]["id"] if len(items) == q.limit else None})


async def get_inbox_item(request: web.Request) -> web.Response:
    caller = require_scope(request, "read")
    svc = request.app[SERVICES]
    intake = request.app[INTAKE]
    row = await svc.store.call(svc.store.inbound.get_inbound, request.match_info["id"])
    if row is not None and intake.owner_filter(caller) is not None and (
            not row.get("in_reply_to") or await intake.message(caller, row["in_reply_to"]) is None):
        row = None  # not a reply to this key's messages: not there for it
    if row is None:
        return error_response(404, "not_found", "no such inbound message")
    return web.json_response(inbound_view(row, with_parts=True))


# --- opt-out ------------------------------------------------------------------------


@takes_query
async def list_optouts(request: web.Request) -> web.Response:
    require_scope(request, "read")
    svc = request.app[SERVICES]
    q = query(schemas.OptOutsQuery, request.query)
    rows = await svc.store.call_read(svc.store.optouts.list_optouts, after=q.cursor, limit=q.limit)
    items = [optout_view(r) for r in rows]
    return web.json_response({"items": items, "next_cursor": items[-1]["number"] if len(items) == q.limit else None})


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
    body = parse(schemas.OptOutRequest, await json_body(request))
    number = request.app[INTAKE].number(body.number, field="number")
    added = await svc.store.call(svc.store.optouts.add_optout, number, source="api", note=body.note)
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
    body = parse(schemas.UssdRequest, await json_body(request))
    code = body.code
    if modem_id not in {m["id"] for m in svc.modems()}:
        return error_response(404, "not_found", "no such modem")
    control = request.app.get(INBOUND)
    if control is None:
        return error_response(503, "unavailable", "USSD is not wired in this gateway")
    try:
        text = await control.ussd(modem_id, code, body.timeout_s)
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
    counts = await svc.store.call_read(svc.store.webhooks.webhook_counts)
    return web.json_response({
        "subscriptions": [{"url": s.url, "events": list(s.events)} for s in w.subscription],
        "allowed_callback_hosts": list(w.allowed_hosts),
        "signed": bool(w.signing_secret),
        "max_attempts": w.max_attempts,
        "deliveries": counts,
    })


@takes_query
async def list_deliveries(request: web.Request) -> web.Response:
    require_scope(request, "admin")
    svc = request.app[SERVICES]
    q = query(schemas.DeliveriesQuery, request.query)
    before = int(q.cursor) if q.cursor is not None else None
    rows = await svc.store.call_read(svc.store.webhooks.list_webhook_deliveries, state=q.state, before_id=before, limit=q.limit)
    items = [delivery_view(r) for r in rows]
    return web.json_response({"items": items,
                              "next_cursor": str(items[-1]["id"]) if len(items) == q.limit else None})


async def retry_deliveries(request: web.Request) -> web.Response:
    require_scope(request, "admin")
    svc = request.app[SERVICES]
    n = await svc.store.call(svc.store.webhooks.retry_failed_webhooks)
    return web.json_response({"requeued": n})


@takes_query
async def list_events(request: web.Request) -> web.Response:
    require_scope(request, "admin")
    svc = request.app[SERVICES]
    q = query(schemas.EventsQuery, request.query)
    after = int(q.after)
    rows = await svc.store.call(svc.store.events.list_events, after_id=after, type_=q.type, limit=q.limit)
    items = [event_view(r) for r in rows]
    return web.json_response({"items": items, "next_after": items[-1]["id"] if items else after})


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
