"""The OpenAPI 3.0 description of the native API, served at ``/api/v1/openapi.json``.

Request bodies and query parameters are the pydantic models the handlers check
requests with (``gsmgw.api.schemas``), rendered here as OpenAPI 3.0; replies and
paths are written next to them by hand (``gsmgw.api.v1``, ``gsmgw.api.inbound``);
``tests/api/test_openapi.py`` fails when a route exists that the document does
not describe, or the other way round, and ``tests/api/test_schemathesis.py``
runs schemathesis against a live gateway with it. The compatibility surfaces
(``/message``, ``/cgi-bin/sendsms``...) are other products' APIs and are
documented in docs/api-compat.md instead.
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web
from pydantic.json_schema import models_json_schema

from gsmgw import __version__
from gsmgw.api import reports as reports_api
from gsmgw.api import schemas
from gsmgw.domain import MessageState
from gsmgw.store.rollup import COUNTERS, FAILURE_CLASSES

OPENAPI_PATH = "/api/v1/openapi.json"

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}
NTIME: Schema = _nullable(TIME)
NSTR: Schema = _nullable(STR)
NINT: Schema = _nullable(INT)


def _obj(props: dict[str, Schema], required: list[str] | None = None, *, extra: bool = True,
         description: str = "") -> Schema:
    out: Schema = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    if not extra:
        out["additionalProperties"] = False
    if description:
        out["description"] = description
    return out


def _page(item: str, cursor: Schema | None = None) -> Schema:
    return _obj({"items": {"type": "array", "items": _ref(item)},
                 "next_cursor": cursor or NSTR}, ["items", "next_cursor"])


ERROR = _obj(
    {
        "error": _obj(
            {
                "code": {"type": "string", "description": "stable, machine-readable, e.g. invalid_number"},
                "message": {"type": "string", "description": "for humans"},
                "field": {"type": "string", "description": "the request field at fault, when there is one"},
                "retry_after_s": {"type": "number"},
                "state": {"type": "string"},
            },
            ["code", "message"],
        )
    },
    ["error"],
    description='Every error: {"error": {"code", "message", "field"?}}',
)

MESSAGE_STATES = [s.value for s in MessageState]
PART_ERROR = _nullable(_obj({"code": NSTR, "message": NSTR}))

SCHEMAS: dict[str, Schema] = {
    "Error": ERROR,
    "SendReply": _obj(
        {
            "id": STR, "batch_id": STR, "state": {"type": "string", "enum": ["queued"]},
            "encoding": {"type": "string", "enum": ["gsm7", "ucs2"]}, "parts": INT,
            "messages": {"type": "array", "items": _obj({"id": STR, "to": STR}, ["id", "to"])},
            "warnings": {"type": "array", "items": STR,
                         "description": "accepted, but e.g. pinned to a SIM that is not ready"},
        },
        ["id", "batch_id", "state", "encoding", "parts", "messages"],
    ),
    "Batch": _obj(
        {
            "batch_id": STR, "total": INT, "by_state": {"type": "object", "additionalProperties": INT},
            "pending": INT, "done": INT, "delivered": INT, "failed": INT,
            "progress": {"type": "number", "minimum": 0, "maximum": 1}, "created_at": TIME,
        },
        ["batch_id", "total", "by_state", "pending", "done", "progress"],
    ),
    "Readiness": _obj({"status": {"type": "string", "enum": ["ok", "degraded", "fail"]},
                       "reasons": {"type": "array", "items": STR}}, ["status", "reasons"]),
    "Preview": _obj(
        {
            "encoding": {"type": "string", "enum": ["gsm7", "ucs2"]}, "parts": INT, "units_used": INT,
            "units_left": INT, "units_per_part": INT, "characters": INT, "locking_shift": NSTR,
            "single_shift": NSTR, "text": STR, "smart_replaced": BOOL,
        },
        ["encoding", "parts", "units_used", "units_left", "units_per_part", "characters"],
    ),
    "Part": _obj(
        {"seq": INT, "state": {"type": "string", "enum": MESSAGE_STATES}, "sim": NSTR, "tp_mr": NINT,
         "sent_at": NTIME, "delivered_at": NTIME, "report_status": NINT, "error": PART_ERROR},
        ["seq", "state"],
    ),
    "Message": _obj(
        {
            "id": STR, "batch_id": STR, "to": STR, "text": STR,
            "state": {"type": "string", "enum": MESSAGE_STATES}, "encoding": STR, "parts_total": INT,
            "priority": INT, "sim": NSTR, "sim_requested": NSTR, "flash": BOOL, "delivery_report": BOOL,
            "transactional": BOOL, "attempts": INT, "created_at": TIME, "updated_at": TIME, "send_at": NTIME,
            "valid_until": NTIME, "sent_at": NTIME, "delivered_at": NTIME, "error": PART_ERROR,
            "parts": {"type": "array", "items": _ref("Part")},
            "waiting": _nullable(_obj({"reason": STR, "until": TIME}, ["reason", "until"])), "cost_micros": NINT,
        },
        ["id", "batch_id", "to", "state", "encoding", "parts_total", "created_at"],
    ),
    "MessagePage": _page("Message"),
    "Cancelled": _obj({"id": STR, "state": STR}, ["id", "state"]),
    "Modem": _obj(
        {"id": STR, "host": NSTR, "state": STR, "enabled": _nullable(BOOL), "remote": BOOL, "imei": NSTR,
         "iccid": NSTR, "operator": NSTR, "signal_csq": NINT, "busy": _nullable(BOOL),
         "care": _nullable({"type": "object"})},
        ["id", "state"],
    ),
    "ModemList": _obj({"items": {"type": "array", "items": _ref("Modem")}}, ["items"]),
    "ModemEnabled": _obj({"id": STR, "enabled": BOOL}, ["id", "enabled"]),
    "Status": _obj(
        {
            "version": STR, "uptime_s": {"type": "number"}, "queue_depth": INT,
            "messages_by_state": {"type": "object", "additionalProperties": INT}, "sent_since_start": INT,
            "modems": {"type": "array", "items": {"type": "object"}}, "host": STR, "modems_ready": INT,
            "readiness": _ref("Readiness"), "cost": _nullable({"type": "object"}),
            "keepalive": {"type": "array", "items": {"type": "object"},
                          "description": "SIM keep-alive per SIM (as GET /api/v1/keepalive)"},
        },
        ["version", "uptime_s", "queue_depth", "messages_by_state", "modems", "modems_ready"],
    ),
    "Health": _obj({"status": STR, "version": STR}, ["status"]),
    "InboundMessage": _obj(
        {
            "id": STR, "from": STR, "sim": NSTR, "text": STR, "encoding": NSTR, "parts_total": INT,
            "parts_received": INT, "complete": BOOL, "missing": {"type": "array", "items": INT},
            "in_reply_to": NSTR, "sent_at": NTIME, "received_at": NTIME,
            "tags": {"type": "array", "items": STR, "description": "tags put on it by inbound rules"},
            "parts": {"type": "array", "items": _obj({"seq": NINT, "pdu": STR, "received_at": NTIME})},
        },
        ["id", "from", "text", "complete"],
    ),
    "InboundPage": _page("InboundMessage"),
    "OptOut": _obj(
        {"number": STR, "source": STR, "keyword": NSTR, "inbound_id": NSTR, "note": NSTR, "created_at": NTIME},
        ["number", "source"],
    ),
    "OptOutPage": _page("OptOut"),
    "OptOutState": _obj({"number": STR, "opted_out": BOOL, "added": BOOL}, ["number", "opted_out"]),
    "UssdReply": _obj({"sim": STR, "code": STR, "text": STR}, ["sim", "code", "text"]),
    "Balance": _obj({"sim": STR}, ["sim"]),
    "Webhooks": _obj(
        {
            "subscriptions": {"type": "array", "items": _obj({"url": STR, "events": {"type": "array",
                                                                                     "items": STR}})},
            "allowed_callback_hosts": {"type": "array", "items": STR}, "signed": BOOL, "max_attempts": INT,
            "deliveries": {"type": "object", "additionalProperties": INT},
        },
        ["subscriptions", "allowed_callback_hosts", "signed"],
    ),
    "Delivery": _obj(
        {"id": INT, "event_id": INT, "type": STR, "url": STR, "state": STR, "attempts": INT, "last_status": NINT,
         "last_error": NSTR, "next_attempt_at": NTIME, "created_at": NTIME, "delivered_at": NTIME},
        ["id", "event_id", "type", "url", "state"],
    ),
    "DeliveryPage": _page("Delivery"),
    "Requeued": _obj({"requeued": INT}, ["requeued"]),
    "Event": _obj({"id": INT, "type": STR, "message_id": NSTR, "sim": NSTR, "data": {"type": "object"},
                   "created_at": NTIME}, ["id", "type"]),
    "EventPage": _obj({"items": {"type": "array", "items": _ref("Event")}, "next_after": INT},
                      ["items", "next_after"]),
}


def openapi30(schema: Any) -> Any:
    """A JSON Schema (2020-12, as pydantic writes it) as an OpenAPI 3.0 Schema Object:
    ``nullable`` for a null alternative, boolean ``exclusiveMinimum``, ``enum`` for
    ``const``; titles and null defaults dropped."""
    if isinstance(schema, list):
        return [openapi30(x) for x in schema]
    if not isinstance(schema, dict):
        return schema
    out: Schema = {}
    for k, v in schema.items():
        if k == "title" or (k == "default" and v is None):
            continue
        if k in ("properties", "$defs"):  # names -> schemas: every name is kept
            out[k] = {name: openapi30(sub) for name, sub in v.items()}
        elif k == "const":
            out["enum"] = [v]
        elif k in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(v, bool):
            out["minimum" if k == "exclusiveMinimum" else "maximum"] = v
            out[k] = True
        else:
            out[k] = openapi30(v)
    for key in ("anyOf", "oneOf"):
        variants = out.get(key)
        if not variants or {"type": "null"} not in variants:
            continue
        rest = [v for v in variants if v != {"type": "null"}]
        del out[key]
        if len(rest) == 1 and "$ref" not in rest[0]:
            out = {**rest[0], **out}
        elif len(rest) == 1:
            out["allOf"] = rest
        else:
            out[key] = rest
        out["nullable"] = True
    return out


def _model_schemas() -> dict[str, Schema]:
    """The request bodies (and the models they use), under their class names."""
    from gsmgw.api import campaigns  # issue 21's bodies

    _, top = models_json_schema([(m, "validation") for m in (*schemas.BODIES, *campaigns.BODIES)],
                                ref_template="#/components/schemas/{model}")
    return {name: openapi30(sub) for name, sub in top.get("$defs", {}).items()}


def _queries(model: type[schemas.Query]) -> list[dict[str, Any]]:
    """A query model's fields as OpenAPI query parameters."""
    props = model.model_json_schema(mode="validation")["properties"]
    out = []
    for name, prop in props.items():
        schema = openapi30(prop)
        schema.pop("nullable", None)  # an absent parameter, not a null one
        description = schema.pop("description", "")
        out.append(_query(name, schema, description))
    return out


def _json(schema: Schema, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
AUTH_ERRORS = {
    "401": {**_err("no, invalid or revoked API key"),
            "headers": {"WWW-Authenticate": {"description": "the schemes accepted", "schema": STR}}},
    "403": _err("the key lacks the scope this needs"),
    "429": {**_err("rate limit, daily quota or queue full"), "headers": RETRY_AFTER},
}
BODY_ERRORS = {
    "413": _err("body larger than api.max_body_bytes"),
    "422": _err("invalid input: see error.code and error.field"),
}


def _op(summary: str, ok: dict[str, Any], *, scope: str | None, tag: str, body: str | None = None,
        params: list[dict[str, Any]] | None = None, errors: dict[str, Any] | None = None,
        status: str = "200", public: bool = False) -> dict[str, Any]:
    responses: dict[str, Any] = {status: ok}
    if not public:
        responses.update(AUTH_ERRORS)
    if body is not None:
        responses.update(BODY_ERRORS)
        responses.setdefault("405", _err("method not allowed"))
    if params and any(p["in"] == "query" for p in params):
        responses.setdefault("422", _err("invalid query parameter"))
    responses.update(errors or {})
    op: dict[str, Any] = {
        "summary": summary + (f" (scope: {scope})" if scope else ""),
        "tags": [tag],
        "responses": responses,
        "operationId": "",
    }
    if public:
        op["security"] = []
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if params:
        op["parameters"] = params
    return op


def _path(name: str, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": description}


def _query(name: str, schema: Schema, description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


NOT_FOUND = {"404": _err("no such item")}
TEXT_METRICS = {"description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}}}


def _paths() -> dict[str, dict[str, Any]]:
    msg_id = [_path("id", "message id (or the batch id of a one-recipient request)")]
    modem_id = [_path("id", "modem id from the configuration")]
    number = [_path("number", "phone number (E.164 or national)")]
    return {
        "/healthz": {"get": _op("Liveness", _json(_ref("Health"), "alive"), scope=None, tag="health", public=True)},
        "/readyz": {"get": _op("Readiness: the store can be trusted and a modem is ready (when modems are "
                               "configured); readiness ok/degraded/fail with the reasons",
                               _json(_obj({"status": STR, "readiness": STR, "reasons": {"type": "array",
                                                                                        "items": STR},
                                           "modems_ready": INT}, ["status"]), "ready"),
                               scope=None, tag="health", public=True,
                               errors={"503": _err("not ready (store unavailable, or no modem ready)")})},
        "/metrics": {"get": _op("Prometheus metrics", TEXT_METRICS, scope="read", tag="status")},
        "/api/v1/metrics": {"get": _op("Prometheus metrics", TEXT_METRICS, scope="read", tag="status")},
        OPENAPI_PATH: {"get": _op("This document", _json({"type": "object"}, "OpenAPI 3.0 document"),
                                  scope=None, tag="meta", public=True)},
        "/api/v1/messages": {
            "post": _op("Queue a message to one or many recipients",
                        {**_json(_ref("SendReply"), "queued (committed before this reply)"),
                         "headers": {"Location": {"schema": STR},
                                     "Idempotent-Replayed": {"schema": STR,
                                                             "description": "true: an earlier request's reply"}}},
                        scope="send", tag="messages", body="SendRequest", status="202",
                        errors={"409": _err("idempotency_conflict: the Idempotency-Key was used for another "
                                            "request"),
                                "503": {**_err("store_unavailable: the store was removed, replaced or is "
                                               "unwritable"), "headers": RETRY_AFTER}},
                        params=[{"name": "Idempotency-Key", "in": "header", "required": False,
                                 "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                                 "description": "a retried request with the same key never sends twice"}]),
            "get": _op("List messages, newest first", _json(_ref("MessagePage"), "a page"), scope="read",
                       tag="messages", params=_queries(schemas.MessagesQuery)),
        },
        "/api/v1/messages/preview": {
            "post": _op("Encoding, parts and characters left, without sending", _json(_ref("Preview"), "preview"),
                        scope="send", tag="messages", body="PreviewRequest"),
        },
        "/api/v1/batches/{id}": {
            "get": _op("A bulk request's progress: its messages counted per state", _json(_ref("Batch"), "batch"),
                       scope="read", tag="messages", params=[_path("id", "batch_id of a send reply")],
                       errors=NOT_FOUND),
        },
        "/api/v1/messages/{id}": {
            "get": _op("One message: state per part, SIM, timestamps, error", _json(_ref("Message"), "the message"),
                       scope="read", tag="messages", params=msg_id, errors=NOT_FOUND),
            "delete": _op("Cancel a message while it is queued", _json(_ref("Cancelled"), "cancelled"),
                          scope="send", tag="messages", params=msg_id,
                          errors={**NOT_FOUND, "409": _err("no longer queued")}),
        },
        "/api/v1/modems": {"get": _op("Modems of this host and of the shared store",
                                      _json(_ref("ModemList"), "modems"), scope="read", tag="modems")},
        "/api/v1/modems/{id}": {
            "patch": _op("Enable or disable a modem", _json(_ref("ModemEnabled"), "done"), scope="admin",
                         tag="modems", body="ModemPatch", params=modem_id, errors=NOT_FOUND),
        },
        "/api/v1/modems/{id}/ussd": {
            "post": _op("Run a USSD code on a modem", _json(_ref("UssdReply"), "the network's answer"),
                        scope="admin", tag="modems", body="UssdRequest", params=modem_id,
                        errors={**NOT_FOUND, "409": _err("modem not ready"), "502": _err("USSD failed"),
                                "503": _err("USSD not wired in this gateway"), "504": _err("USSD timeout")}),
        },
        "/api/v1/modems/{id}/balance": {
            "get": _op("Last balance read by the periodic USSD check", _json(_ref("Balance"), "balance"),
                       scope="read", tag="modems", params=modem_id, errors=NOT_FOUND),
        },
        "/api/v1/status": {"get": _op("Version, uptime, queue depth, per-modem health",
                                      _json(_ref("Status"), "status"), scope="read", tag="status")},
        "/api/v1/inbox": {
            "get": _op("Received messages, newest first", _json(_ref("InboundPage"), "a page"), scope="read",
                       tag="inbox", params=_queries(schemas.InboxQuery)),
        },
        "/api/v1/inbox/{id}": {
            "get": _op("One received message with its parts' PDUs", _json(_ref("InboundMessage"), "message"),
                       scope="read", tag="inbox", params=[_path("id")], errors=NOT_FOUND),
        },
        "/api/v1/optouts": {
            "get": _op("Numbers that opted out", _json(_ref("OptOutPage"), "a page"), scope="read",
                       tag="optouts", params=_queries(schemas.OptOutsQuery)),
            "post": _op("Add a number to the opt-out list", _json(_ref("OptOutState"), "already listed"),
                        scope="send", tag="optouts", body="OptOutRequest",
                        errors={"201": _json(_ref("OptOutState"), "added")}),
        },
        "/api/v1/optouts/{number}": {
            "get": _op("Is this number opted out?", _json(_ref("OptOutState"), "listed"), scope="read",
                       tag="optouts", params=number, errors={**NOT_FOUND, "422": _err("not a phone number")}),
            "delete": _op("Lift an opt-out", _json(_ref("OptOutState"), "removed"), scope="admin",
                          tag="optouts", params=number, errors={**NOT_FOUND, "422": _err("not a phone number")}),
        },
        "/api/v1/webhooks": {"get": _op("Webhook configuration and delivery counts",
                                        _json(_ref("Webhooks"), "configuration"), scope="admin", tag="webhooks")},
        "/api/v1/webhooks/deliveries": {
            "get": _op("Webhook deliveries, newest first", _json(_ref("DeliveryPage"), "a page"), scope="admin",
                       tag="webhooks", params=_queries(schemas.DeliveriesQuery)),
        },
        "/api/v1/webhooks/deliveries/retry": {
            "post": _op("Retry every failed delivery", _json(_ref("Requeued"), "requeued"), scope="admin",
                        tag="webhooks"),
        },
        **_schedule_paths(),
        "/api/v1/events": {
            "get": _op("The event log, oldest first after a cursor", _json(_ref("EventPage"), "events"),
                       scope="admin", tag="webhooks", params=_queries(schemas.EventsQuery)),
        },
        **_paths_reports(number),
    }


def _paths_reports(number: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Reports, erasure and the audit log (issue 21; gsmgw.api.reports)."""
    n_int = {"type": "integer", "minimum": 0}
    failed = _obj({c: n_int for c in FAILURE_CLASSES})
    row = _obj({"period": STR, "sim": STR, "key": STR, "campaign": STR,
                **{c: n_int for c in COUNTERS if not c.startswith("failed_")},
                "parts_failed": n_int, "failed_by_class": failed,
                "delivery_rate": _nullable({"type": "number"}),
                "ttd_p50_s": NINT, "ttd_p95_s": NINT, "ttd_samples": n_int},
               description="one period and group; ttd_* are the upper bounds of the histogram bucket "
                           "of the percentile (seconds from sent to delivered)")
    report = _obj({"group_by": STR, "period": STR, "from": STR, "to": STR, "rolled_through_event": INT,
                   "latest_event": INT, "items": {"type": "array", "items": row}})
    audit = _obj({"id": INT, "at": TIME, "actor": STR, "action": STR, "target": STR,
                  "detail": {"type": "object"}, "host": STR})
    return {
        "/api/v1/reports": {
            "get": _op("Delivery reports per SIM, key or campaign and day or month (JSON, or CSV with "
                       "format=csv or Accept: text/csv); a key that is not admin sees its own messages",
                       {**_json(report, "the report"),
                        "content": {"application/json": {"schema": report},
                                    "text/csv": {"schema": STR}}},
                       scope="read", tag="reports", params=_queries(reports_api.ReportsQuery),
                       errors={"403": _err("key= names another key (admin only)")}),
        },
        "/api/v1/numbers/{number}": {
            "delete": _op("Erase a number everywhere (an opt-out stays as a tombstone: its hash)",
                          _json(_obj({"number_hash": STR, "rows": {"type": "object"}, "tombstone": BOOL}),
                                "erased"),
                          scope="admin", tag="reports", params=number,
                          errors={"422": _err("not a phone number")}),
        },
        "/api/v1/audit": {
            "get": _op("The audit log of admin actions, newest first", _json(_obj({
                "items": {"type": "array", "items": audit}, "next_cursor": NSTR}), "a page"),
                scope="admin", tag="reports", params=_queries(reports_api.AuditQuery)),
        },
    }


# --- schedules and keep-alive (issue 20 parts 2-3) --------------------------------------------

SCHEMAS.update({
    "Schedule": _obj(
        {
            "id": STR, "name": STR, "rrule": STR, "cron": STR, "timezone": STR, "start": TIME,
            "missed": {"type": "string", "enum": ["once", "skip"]}, "paused": BOOL,
            "to": {"type": "array", "items": {}}, "text": NSTR, "template": NSTR,
            "variables": _nullable({"type": "object"}), "sim": NSTR, "priority": NINT, "transactional": BOOL,
            "next_run_at": NTIME, "next_run_local": NSTR, "last_run_at": NTIME, "last_run_local": NSTR,
            "last_batch_id": NSTR, "runs": INT, "skipped": INT, "last_error": NSTR, "created_at": TIME,
            "upcoming_local": {"type": "array", "items": STR},
            "messages_by_state": {"type": "object", "additionalProperties": INT},
        },
        ["id", "timezone", "missed", "paused", "to", "runs", "skipped"],
    ),
    "SchedulePage": _page("Schedule"),
    "ScheduleDeleted": _obj({"id": STR, "deleted": BOOL}, ["id", "deleted"]),
    "KeepAlive": _obj(
        {"items": {"type": "array", "items": _obj(
            {"sim": STR, "enabled": BOOL, "action": STR, "target": STR, "every_days": {"type": "number"},
             "expiry_days": _nullable({"type": "number"}), "last_success_at": NTIME, "last_attempt_at": NTIME,
             "next_due_at": NTIME, "pending": BOOL, "expiry_risk": BOOL,
             "last_run": _nullable({"type": "object"})}, ["sim", "enabled", "action"])}},
        ["items"],
    ),
})


def _schedule_paths() -> dict[str, dict[str, Any]]:
    sid = [_path("id", "schedule id")]
    unwired = {"503": _err("schedules are not running in this gateway")}
    return {
        "/api/v1/schedules": {
            "post": _op("Create a recurring schedule (RRULE or cron, in a time zone)",
                        {**_json(_ref("Schedule"), "created"), "headers": {"Location": {"schema": STR}}},
                        scope="send", tag="schedules", body="ScheduleRequest", status="201", errors=unwired),
            "get": _op("List schedules, newest first (the key's own; admin every key's)",
                       _json(_ref("SchedulePage"), "a page"), scope="read", tag="schedules",
                       params=_queries(schemas.SchedulesQuery), errors=unwired),
        },
        "/api/v1/schedules/{id}": {
            "get": _op("One schedule: next and last run, upcoming local times, its messages per state",
                       _json(_ref("Schedule"), "the schedule"), scope="read", tag="schedules", params=sid,
                       errors={**NOT_FOUND, **unwired}),
            "delete": _op("Delete a schedule (the messages it queued stay)", _json(_ref("ScheduleDeleted"), "deleted"),
                          scope="send", tag="schedules", params=sid, errors={**NOT_FOUND, **unwired}),
        },
        "/api/v1/schedules/{id}/pause": {
            "post": _op("Pause a schedule", _json(_ref("Schedule"), "paused"), scope="send", tag="schedules",
                        params=sid, errors={**NOT_FOUND, **unwired}),
        },
        "/api/v1/schedules/{id}/resume": {
            "post": _op("Resume a schedule (occurrences while paused are not sent)", _json(_ref("Schedule"), "resumed"),
                        scope="send", tag="schedules", params=sid, errors={**NOT_FOUND, **unwired}),
        },
        "/api/v1/keepalive": {
            "get": _op("SIM keep-alive per SIM: last success, last run, next due, expiry risk",
                       _json(_ref("KeepAlive"), "keep-alive state"), scope="read", tag="status", errors=unwired),
        },
    }
# --- contacts, groups and campaigns (issue 21; gsmgw.api.campaigns) --------------------

SCHEMAS.update({
    "Contact": _obj({"id": STR, "number": STR, "name": STR, "fields": {"type": "object"},
                     "tags": {"type": "array", "items": STR}, "groups": {"type": "array", "items": STR},
                     "opted_out": {"type": "boolean", "description": "from the opt-out list, now"},
                     "created_at": TIME, "updated_at": TIME}, ["id", "number"]),
    "ContactPage": _obj({"items": {"type": "array", "items": _ref("Contact")}, "next_cursor": NSTR}, ["items"]),
    "Group": _obj({"id": STR, "name": STR, "members": INT, "created_at": TIME}, ["id", "name"]),
    "GroupList": _obj({"items": {"type": "array", "items": _ref("Group")}}, ["items"]),
    "ImportReport": _obj({"rows": INT, "created": INT, "updated": INT, "skipped": INT, "invalid": INT,
                          "duplicates": INT, "blank": INT,
                          "errors": {"type": "array", "items": _obj({"row": INT, "reason": STR, "value": STR})},
                          "duplicate_rows": {"type": "array",
                                             "items": _obj({"row": INT, "number": STR, "duplicate_of": INT})}},
                         ["rows", "created", "updated", "skipped", "invalid", "duplicates", "blank", "errors"]),
    "Campaign": _obj({"id": STR, "name": STR, "state": STR, "template": STR, "target": {"type": "object"},
                      "priority": INT, "window": INT, "progress": {"type": "object", "nullable": True}},
                     ["id", "name", "state"]),
    "CampaignPage": _obj({"items": {"type": "array", "items": _ref("Campaign")}, "next_cursor": NSTR}, ["items"]),
    "CampaignValidation": _obj({"recipients": INT, "opted_out": INT, "missing_count": INT, "parts": INT,
                                "ok": {"type": "boolean"}, "missing": {"type": "array", "items": {"type": "object"}}},
                               ["recipients", "missing_count", "ok"]),
    "RecipientPage": _obj({"items": {"type": "array", "items": {"type": "object"}}, "next_cursor": NSTR},
                          ["items"]),
    "Done": {"type": "object"},
})


def _campaign_paths() -> dict[str, dict[str, Any]]:
    from gsmgw.api import campaigns as c

    cid = [_path("id", "contact id")]
    gid = [_path("id", "group id")]
    kid = [_path("id", "campaign id")]
    dup = {"409": _err("that number or name is taken")}
    state = {**NOT_FOUND, "409": _err("invalid_state: not possible in the campaign's state")}
    csv = {"description": "CSV, UTF-8", "content": {"text/csv": {"schema": {"type": "string"}}}}
    out: dict[str, dict[str, Any]] = {
        "/api/v1/contacts": {
            "get": _op("List contacts (id order) with groups, tags and opt-out status",
                       _json(_ref("ContactPage"), "a page"), scope="read", tag="contacts",
                       params=_queries(c.ContactsQuery)),
            "post": _op("Create a contact", _json(_ref("Contact"), "created"), scope="send", tag="contacts",
                        body="ContactBody", status="201", errors=dup),
        },
        "/api/v1/contacts/import": {
            "post": {**_op("Import contacts from a CSV file (the body, Content-Type: text/csv)",
                           _json(_ref("ImportReport"), "every row counted once; invalid rows with their reasons"),
                           scope="send", tag="contacts", params=_queries(c.ImportQuery),
                           errors={"413": _err("larger than campaigns.import_max_bytes")}),
                     "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}},
        },
        "/api/v1/contacts/export": {
            "get": _op("Export contacts as CSV", csv, scope="read", tag="contacts", params=_queries(c.ExportQuery)),
        },
        "/api/v1/contacts/{id}": {
            "get": _op("One contact", _json(_ref("Contact"), "the contact"), scope="read", tag="contacts",
                       params=cid, errors=NOT_FOUND),
            "patch": _op("Change a contact (fields, tags, groups replaced as a whole)",
                         _json(_ref("Contact"), "changed"), scope="send", tag="contacts", body="ContactPatch",
                         params=cid, errors={**NOT_FOUND, **dup}),
            "delete": _op("Delete a contact", _json(_ref("Done"), "deleted"), scope="send", tag="contacts",
                          params=cid, errors=NOT_FOUND),
        },
        "/api/v1/groups": {
            "get": _op("Groups with their member counts", _json(_ref("GroupList"), "groups"), scope="read",
                       tag="contacts"),
            "post": _op("Create a group", _json(_ref("Group"), "created"), scope="send", tag="contacts",
                        body="GroupBody", status="201", errors=dup),
        },
        "/api/v1/groups/{id}": {
            "get": _op("One group", _json(_ref("Group"), "the group"), scope="read", tag="contacts", params=gid,
                       errors=NOT_FOUND),
            "patch": _op("Rename a group", _json(_ref("Group"), "renamed"), scope="send", tag="contacts",
                         body="GroupBody", params=gid, errors={**NOT_FOUND, **dup}),
            "delete": _op("Delete a group (its contacts stay)", _json(_ref("Done"), "deleted"), scope="send",
                          tag="contacts", params=gid, errors=NOT_FOUND),
        },
        "/api/v1/groups/{id}/members": {
            "post": _op("Add contacts to a group", _json(_ref("Done"), "how many were added"), scope="send",
                        tag="contacts", body="MembersBody", params=gid, errors=NOT_FOUND),
            "delete": _op("Remove contacts from a group", _json(_ref("Done"), "how many were removed"),
                          scope="send", tag="contacts", body="MembersBody", params=gid, errors=NOT_FOUND),
        },
        "/api/v1/campaigns": {
            "get": _op("Campaigns with their progress, newest first", _json(_ref("CampaignPage"), "a page"),
                       scope="read", tag="campaigns", params=_queries(c.CampaignsQuery)),
            "post": _op("Create a campaign (a draft: start it to send)", _json(_ref("Campaign"), "created"),
                        scope="send", tag="campaigns", body="CampaignBody", status="201"),
        },
        "/api/v1/campaigns/{id}": {
            "get": _op("A campaign and its live progress", _json(_ref("Campaign"), "the campaign"), scope="read",
                       tag="campaigns", params=kid, errors=NOT_FOUND),
            "delete": _op("Delete a draft, completed or cancelled campaign", _json(_ref("Done"), "deleted"),
                          scope="send", tag="campaigns", params=kid, errors=state),
        },
        "/api/v1/campaigns/{id}/validate": {
            "post": _op("What starting now would do: recipients, opted out, missing variables",
                        _json(_ref("CampaignValidation"), "the check"), scope="send", tag="campaigns", params=kid,
                        errors=NOT_FOUND),
        },
        "/api/v1/campaigns/{id}/recipients": {
            "get": _op("A campaign's recipients and their messages' states", _json(_ref("RecipientPage"), "a page"),
                       scope="read", tag="campaigns", params=kid + _queries(c.RecipientsQuery), errors=NOT_FOUND),
        },
    }
    for action, what in (("start", "Start (idempotent: starting again changes nothing)"),
                         ("pause", "Pause: stop feeding the queue"), ("resume", "Resume a paused campaign"),
                         ("cancel", "Cancel: unfed recipients and queued messages are cancelled")):
        out[f"/api/v1/campaigns/{{id}}/{action}"] = {
            "post": _op(what, _json(_ref("Campaign"), "the campaign now"), scope="send", tag="campaigns",
                        params=kid, errors={**state, "422": _err("missing_variable (a recipient lacks a "
                                                                 "template variable) or no_recipients")})}
    return out


def document() -> dict[str, Any]:
    paths = {**_paths(), **_campaign_paths()}
    for path, ops in paths.items():
        for method, op in ops.items():
            op["operationId"] = f"{method}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}"
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "gsmgw HTTP API",
            "version": __version__,
            "description": (
                "The native API of gsmgw, an on-premises SMS gateway driving GSM modems. Every endpoint but "
                "/healthz, /readyz and this document needs an API key (`gsmgw keys create NAME --scope "
                "send,read,admin`), as `Authorization: Bearer KEY`, `X-API-Key: KEY`, or HTTP Basic with the "
                "key as password. Errors are JSON: {\"error\": {\"code\", \"message\", \"field\"?}}. "
                "Compatible APIs (SMS Gateway for Android, Kannel sendsms) are described in docs/api-compat.md."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}, {"apiKeyHeader": []}, {"basic": []}],
        "tags": [{"name": t} for t in ("messages", "inbox", "optouts", "modems", "webhooks", "status", "health",
                                        "meta", "schedules", "contacts", "campaigns")],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer gsk_..."},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "basic": {"type": "http", "scheme": "basic", "description": "any username; the API key as password"},
            },
            "schemas": {**copy.deepcopy(SCHEMAS), **_model_schemas()},
        },
    }


DOCUMENT = web.AppKey("openapi_document", dict)


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[DOCUMENT])


def add_routes(app: web.Application) -> None:
    app[DOCUMENT] = document()
    app.router.add_get(OPENAPI_PATH, get_openapi)


__all__ = ["OPENAPI_PATH", "add_routes", "document"]
