"""Messages: search and filter, a message's timeline per part, cancel; batches
with their progress."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from aiohttp import web

from gsmgw.console.core import (
    PREFIX,
    console_of,
    error_page,
    flash,
    needs,
    owner_filter,
    render,
    request_session,
)
from gsmgw.domain import FINAL_MESSAGE_STATES, MessageState

PAGE = 50
ID_RE = re.compile(r"[0-9a-f]{1,32}")
SIM_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
STATES = [s.value for s in MessageState]


def _when(raw: str, field: str, errors: list[str]) -> dt.datetime | None:
    """A date or date-time from a form (UTC, as the page says)."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        errors.append(f"{field}: {raw!r} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM)")
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def number_filter(raw: str) -> dict[str, str]:
    """An E.164 number matches exactly; other digits match the end of the number
    (national renderings without their leading 0)."""
    raw = raw.strip()
    if not raw:
        return {}
    digits = "".join(ch for ch in raw if ch.isdigit())
    if raw.startswith("+") and len(digits) >= 8:
        return {"number": "+" + digits}
    digits = digits.lstrip("0")
    return {"number_suffix": digits} if digits else {"number": raw[:32]}


def parse_filters(q: Any) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """(filters for the store, the form's values to show again, errors)."""
    errors: list[str] = []
    form = {k: str(q.get(k, ""))[:100] for k in ("state", "number", "sim", "batch", "since", "until")}
    filters: dict[str, Any] = {}
    if form["state"]:
        if form["state"] in STATES:
            filters["state"] = form["state"]
        else:
            errors.append(f"state: unknown state {form['state']!r}")
    filters.update(number_filter(form["number"]))
    if form["sim"]:
        if SIM_RE.fullmatch(form["sim"]):
            filters["sim"] = form["sim"]
        else:
            errors.append("sim: a modem id is letters, digits, _ . -")
    if form["batch"]:
        if ID_RE.fullmatch(form["batch"]):
            filters["batch_id"] = form["batch"]
        else:
            errors.append("batch: a batch id is hexadecimal")
    since = _when(form["since"], "since", errors)
    until = _when(form["until"], "until", errors)
    if since is not None:
        filters["since"] = since
    if until is not None:
        # A bare date means the whole day.
        filters["until"] = until + dt.timedelta(days=1) if len(form["until"].strip()) == 10 else until
    cursor = q.get("cursor", "")
    if cursor and ID_RE.fullmatch(cursor):
        filters["before_id"] = cursor
    return filters, form, errors


@needs("read")
async def list_messages(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    filters, form, errors = parse_filters(request.query)
    rows = await c.q.search(**filters, owner=owner_filter(request), limit=PAGE)
    next_cursor = rows[-1]["id"] if len(rows) == PAGE else None
    query = {k: v for k, v in form.items() if v}
    modems = [m["id"] for m in await c.q.modems()]
    ctx = {"section": "messages", "rows": rows, "form": form, "errors": errors, "states": STATES,
           "sims": modems, "next_cursor": next_cursor, "query": query}
    if request.headers.get("HX-Request") == "true" and request.headers.get("HX-Target") == "results":
        return render(request, "_message_rows.html", ctx)
    return render(request, "messages.html", ctx)


async def _own_message(request: web.Request) -> dict[str, Any] | None:
    c = console_of(request)
    message_id = request.match_info["id"]
    if not ID_RE.fullmatch(message_id):
        return None
    row = await c.q.message(message_id)
    owner = owner_filter(request)
    if row is None or (owner is not None and row.get("api_key_id") != owner):
        return None  # someone else's message is "no such message", as through the API
    return row


def timeline(row: dict[str, Any], reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per part: the steps it went through, with times, TP-MR, errors and reports."""
    by_seq: dict[int, list[dict[str, Any]]] = {}
    for r in reports:
        by_seq.setdefault(int(r["seq"] or 0), []).append(r)
    out = []
    for p in row.get("parts", []):
        steps = [{"name": "queued", "at": row["created_at"], "done": True}]
        steps.append({"name": "sending", "at": p.get("sending_at"), "done": p.get("sending_at") is not None})
        sent = p.get("sent_at") is not None
        steps.append({"name": "sent", "at": p.get("sent_at"), "done": sent,
                      "detail": f"TP-MR {p['tp_mr']}" if p.get("tp_mr") is not None else ""})
        state = p["state"]
        if state == MessageState.DELIVERED:
            steps.append({"name": "delivered", "at": p.get("delivered_at"), "done": True})
        elif state in (MessageState.FAILED, MessageState.UNKNOWN, MessageState.EXPIRED, MessageState.CANCELLED):
            steps.append({"name": state, "at": None, "done": True, "bad": True,
                          "detail": " ".join(x for x in (p.get("error_code"), p.get("error_text")) if x)})
        else:
            steps.append({"name": "delivered", "at": None, "done": False})
        steps = [{"at": None, "detail": "", "bad": False, **st} for st in steps]
        out.append({"seq": p["seq"], "state": state, "sim": p.get("modem_id"), "tp_mr": p.get("tp_mr"),
                    "steps": steps, "reports": by_seq.get(int(p["seq"]), [])})
    return out


async def _message_context(request: web.Request, row: dict[str, Any]) -> dict[str, Any]:
    c = console_of(request)
    reports = await c.q.reports_of(row["id"])
    # Without a status report asked for, "sent" is as far as it goes.
    final = row["state"] in FINAL_MESSAGE_STATES or (row["state"] == MessageState.SENT
                                                     and not row.get("delivery_report", True))
    batch = await c.q.batch(row["batch_id"], owner_filter(request)) if row["batch_id"] != row["id"] else None
    return {"section": "messages", "m": row, "parts": timeline(row, reports), "final": final,
            "batch": batch, "cancellable": row["state"] == MessageState.QUEUED}


@needs("read")
async def message(request: web.Request) -> web.StreamResponse:
    row = await _own_message(request)
    if row is None:
        return error_page(request, 404, "Not found", "There is no such message.")
    return render(request, "message.html", await _message_context(request, row))


@needs("read", rate=False)
async def message_live(request: web.Request) -> web.StreamResponse:
    """The timeline fragment a message page polls while the message is not final."""
    row = await _own_message(request)
    if row is None:
        return error_page(request, 404, "Not found", "There is no such message.")
    return render(request, "_timeline.html", await _message_context(request, row))


@needs("send")
async def cancel(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    message_id = request.match_info["id"]
    if not ID_RE.fullmatch(message_id):
        return error_page(request, 404, "Not found", "There is no such message.")
    # The intake decides: a key cancels its own messages, an admin any; another key's
    # message is "no such message".
    result = await c.deps.intake.cancel(request_session(request).caller, message_id)
    state = result.state
    if state is None:
        return error_page(request, 404, "Not found", "There is no such message.")
    if result.cancelled:
        flash(request, "ok", "Cancelled: it will not be sent.")
    else:
        flash(request, "error", f"Not cancelled: the message is {state}; only a queued message can be cancelled.")
    raise web.HTTPSeeOther(f"{PREFIX}messages/{message_id}")


@needs("read")
async def batches(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    rows = await c.q.recent_batches(owner_filter(request))
    return render(request, "batches.html", {"section": "batches", "batches": rows})


@needs("read")
async def batch(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    batch_id = request.match_info["id"]
    b = await c.q.batch(batch_id, owner_filter(request)) if ID_RE.fullmatch(batch_id) else None
    if b is None:
        return error_page(request, 404, "Not found", "There is no such batch.")
    rows = await c.q.search(batch_id=batch_id, owner=owner_filter(request), limit=PAGE)
    return render(request, "batch.html", {"section": "batches", "b": b, "rows": rows,
                                          "more": len(rows) == PAGE})


@needs("read", rate=False)
async def batch_live(request: web.Request) -> web.StreamResponse:
    """The progress fragment a batch page polls until every message is final."""
    c = console_of(request)
    batch_id = request.match_info["id"]
    b = await c.q.batch(batch_id, owner_filter(request)) if ID_RE.fullmatch(batch_id) else None
    if b is None:
        return error_page(request, 404, "Not found", "There is no such batch.")
    return render(request, "_batch_progress.html", {"b": b})


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/messages", list_messages)
    r.add_get("/messages/{id}", message)
    r.add_get("/messages/{id}/live", message_live)
    r.add_post("/messages/{id}/cancel", cancel)
    r.add_get("/batches", batches)
    r.add_get("/batches/{id}", batch)
    r.add_get("/batches/{id}/live", batch_live)


__all__ = ["add_routes", "number_filter", "parse_filters", "timeline"]
