"""The native API's handlers: messages, modems, status, health and metrics.

Each handler reads its request, calls the intake service (sending) or the store
(reading), and renders the reply; validation and admission are the service's.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from aiohttp import web

from gsmgw import __version__
from gsmgw.api import schemas
from gsmgw.api.auth import require_scope
from gsmgw.api.context import INTAKE, SERVICES, Services
from gsmgw.api.errors import error_response, json_body, takes_query
from gsmgw.api.metrics import METRICS, content_type
from gsmgw.api.schedules import KEEPALIVE
from gsmgw.api.schemas import parse, query
from gsmgw.api.views import jsonable, message_view, remote_modem_view
from gsmgw.domain import MessageState
from gsmgw.errors import ValidationError
from gsmgw.intake import Recipient, SendRequest


async def all_modems(svc: Services) -> list[dict[str, Any]]:
    """This host's modems, live, then those other hosts of a shared store last reported."""
    local = svc.modems()
    ids = {m["id"] for m in local}
    rows = await svc.store.call(svc.store.modems.list_modems)
    remote = [remote_modem_view(r) for r in rows if r["id"] not in ids and r["host"] != svc.host]
    return [*({**m, "remote": False} for m in local), *remote]


# --- health ---------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


async def readyz(request: web.Request) -> web.Response:
    """200 while messages go out; 503 when the store cannot be trusted or no modem is
    ready (a load balancer must not take "the process is alive" for "SMS go out").
    ``readiness`` is ok / degraded / fail and ``reasons`` say why."""
    svc = request.app[SERVICES]
    try:
        await svc.store.call(svc.store.messages.queue_depth)
    except Exception as exc:
        return error_response(503, "not_ready", f"store unavailable: {type(exc).__name__}", readiness="fail",
                              reasons=[f"store: {type(exc).__name__}"])
    r = svc.current_readiness()
    modems = svc.modems()
    ready = [m["id"] for m in modems if m.get("state") == "ready" and m.get("enabled", True)]
    if r.status == "fail" or (modems and not ready):
        code = "not_ready" if any(x.startswith("store:") for x in r.reasons) else "no_modem_ready"
        return error_response(503, code, "; ".join(r.reasons) or "not ready", readiness=r.status,
                              reasons=list(r.reasons), modems_ready=len(ready))
    return web.json_response({"status": "ready", "readiness": r.status, "reasons": list(r.reasons),
                              "modems_ready": len(ready)})


# --- messages -------------------------------------------------------------------------


def send_request(body: schemas.SendRequest, idempotency_key: str | None) -> SendRequest:
    to = ([Recipient(r.to, r.variables) if isinstance(r, schemas.Recipient) else r for r in body.to]
          if isinstance(body.to, list) else body.to)
    return SendRequest(
        to=to, text=body.text, template=body.template, variables=body.variables, priority=body.priority,
        send_at=body.send_at, valid_until=body.valid_until, ttl_s=body.ttl, sim=body.sim, flash=body.flash,
        delivery_report=body.delivery_report, transactional=body.transactional,
        resend_unknown=body.resend_unknown, callback_url=body.callback_url, idempotency_key=idempotency_key,
        door="api",
    )


async def post_messages(request: web.Request) -> web.Response:
    caller = require_scope(request, "send")
    body = parse(schemas.SendRequest, await json_body(request))
    idem = request.headers.get("Idempotency-Key")
    if idem is not None and not (0 < len(idem) <= 200 and idem.isprintable()):
        raise ValidationError("invalid_header", "Idempotency-Key must be 1-200 printable characters")
    result = await request.app[INTAKE].submit(caller, send_request(body, idem))
    first = result.messages[0]
    reply: dict[str, Any] = {
        "id": first.id if len(result.messages) == 1 else result.batch_id,
        "batch_id": result.batch_id,
        "state": MessageState.QUEUED.value,
        # With a template, texts differ per recipient: the first's here, each one's below.
        "encoding": first.encoding,
        "parts": first.parts,
        "messages": [{"id": m.id, "to": m.to, "encoding": m.encoding, "parts": m.parts} for m in result.messages],
    }
    if result.warnings:  # e.g. pinned to a SIM that is not ready: accepted, but it will wait
        reply["warnings"] = list(result.warnings)
    resp = web.json_response(reply, status=202)
    resp.headers["Location"] = f"/api/v1/messages/{first.id}"
    if result.replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


async def post_preview(request: web.Request) -> web.Response:
    require_scope(request, "send")
    body = parse(schemas.PreviewRequest, await json_body(request))
    pv = request.app[INTAKE].preview(body.text)
    return web.json_response(jsonable(dataclasses.asdict(pv)))


async def get_message(request: web.Request) -> web.Response:
    caller = require_scope(request, "read")
    row = await request.app[INTAKE].message(caller, request.match_info["id"])
    if row is None:  # or another key's: its existence is not revealed
        return error_response(404, "not_found", "no such message")
    return web.json_response(message_view(row))


async def delete_message(request: web.Request) -> web.Response:
    caller = require_scope(request, "send")
    message_id = request.match_info["id"]
    res = await request.app[INTAKE].cancel(caller, message_id)
    if res.state is None:
        return error_response(404, "not_found", "no such message")
    if not res.cancelled:
        return error_response(409, "not_cancellable",
                              f"the message is {res.state}; only queued messages can be cancelled", state=res.state)
    return web.json_response({"id": message_id, "state": res.state})


@takes_query
async def list_messages(request: web.Request) -> web.Response:
    caller = require_scope(request, "read")
    svc = request.app[SERVICES]
    intake = request.app[INTAKE]
    q = query(schemas.MessagesQuery, request.query)
    to = intake.number(q.to) if q.to is not None else None
    rows = await svc.store.call(
        svc.store.messages.list_messages, state=q.state, to_number=to, batch_id=q.batch_id,
        api_key_id=intake.owner_filter(caller), before_id=q.cursor, limit=q.limit,
    )
    items = [message_view(r) for r in rows]
    next_cursor = items[-1]["id"] if len(items) == q.limit else None
    return web.json_response({"items": items, "next_cursor": next_cursor})


async def get_batch(request: web.Request) -> web.Response:
    """A bulk request's progress: its messages counted per state (the caller's own; admin all)."""
    caller = require_scope(request, "read")
    batch = await request.app[INTAKE].batch(caller, request.match_info["id"])
    if batch is None:
        return error_response(404, "not_found", "no such batch")
    return web.json_response(jsonable(batch))


# --- modems and status ----------------------------------------------------------------


async def _sim_care(svc: Services, modems: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Adds each local modem's SIM care figures (``care``) and returns the whole (issue 20)."""
    if svc.sim_care is None:
        return None
    care = await svc.sim_care()
    for m in modems:
        if not m.get("remote"):
            m["care"] = care["modems"].get(m["id"])
    return care


async def get_modems(request: web.Request) -> web.Response:
    require_scope(request, "read")
    svc = request.app[SERVICES]
    modems = await all_modems(svc)
    await _sim_care(svc, modems)
    return web.json_response(jsonable({"items": modems}))


async def patch_modem(request: web.Request) -> web.Response:
    caller = require_scope(request, "admin")
    svc = request.app[SERVICES]
    body = parse(schemas.ModemPatch, await json_body(request))
    if not svc.set_modem_enabled(request.match_info["id"], body.enabled):
        return error_response(404, "not_found", "no such modem")
    await svc.store.call(svc.store.audit.record, f"key:{caller.id}", "modem.patch", request.match_info["id"],
                         {"enabled": body.enabled})  # issue 21
    return web.json_response({"id": request.match_info["id"], "enabled": body.enabled})


async def keepalive_status(request: web.Request) -> dict[str, Any]:
    """{"keepalive": [per SIM: last success, next due, ...]} when keep-alive runs here."""
    control = request.app.get(KEEPALIVE)
    return {"keepalive": await control.status()} if control is not None else {}


async def get_status(request: web.Request) -> web.Response:
    require_scope(request, "read")
    svc = request.app[SERVICES]
    counts = await svc.store.call_read(svc.store.messages.counts_by_state)
    modems = await all_modems(svc)
    care = await _sim_care(svc, modems)
    uptime_s = time.time() - svc.started_at
    return web.json_response(jsonable(
        {
            "readiness": svc.current_readiness().to_dict(),
            "version": __version__,
            "uptime_s": round(uptime_s, 1),
            "queue_depth": counts.get("queued", 0) + counts.get("sending", 0),
            "messages_by_state": counts,
            "sent_since_start": svc.sent_total(),
            "modems": [
                {k: m.get(k) for k in ("id", "host", "state", "state_reason", "enabled", "busy", "operator",
                                       "signal_csq", "sent_parts", "failed_parts", "last_error", "care")}
                for m in modems
            ],
            "host": svc.host,
            "modems_ready": sum(1 for m in modems if m["state"] == "ready" and m["enabled"]),
            "cost": care["cost"] if care else None,
            **await keepalive_status(request),  # SIM keep-alive per SIM (issue 20)
        }
    ))


async def get_metrics(request: web.Request) -> web.Response:
    require_scope(request, "read")
    svc = request.app[SERVICES]
    metrics = request.app[METRICS]
    metrics.pool.counts = await svc.store.call_read(svc.store.messages.counts_by_state)
    return web.Response(body=metrics.render(), headers={"Content-Type": content_type()})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/metrics", get_metrics)
    r.add_get("/api/v1/metrics", get_metrics)
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", readyz)
    r.add_post("/api/v1/messages", post_messages)
    r.add_post("/api/v1/messages/preview", post_preview)
    r.add_get("/api/v1/messages", list_messages)
    r.add_get("/api/v1/messages/{id}", get_message)
    r.add_delete("/api/v1/messages/{id}", delete_message)
    r.add_get("/api/v1/modems", get_modems)
    r.add_patch("/api/v1/modems/{id}", patch_modem)
    r.add_get("/api/v1/status", get_status)
    r.add_get("/api/v1/batches/{id}", get_batch)
