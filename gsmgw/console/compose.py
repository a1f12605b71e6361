"""Compose: one or many recipients, a live preview of encoding, parts and
characters left (the intake's own preview), schedule, priority, SIM. Sending goes
through the intake service, like every other door's."""

from __future__ import annotations

import re
import secrets
from typing import Any

from aiohttp import web

from gsmgw.console.core import (
    PREFIX,
    console_of,
    flash,
    needs,
    render,
)
from gsmgw.console.sending import submit
from gsmgw.errors import AdmissionError, CodecError, ValidationError

PRIORITIES = ("normal", "low", "high", "otp")
MAX_RECIPIENTS = 1000


def recipients(raw: str) -> list[str]:
    """A pasted list: one number per line, or separated by commas, semicolons or
    spaces inside a line ("+44 7700 900123" stays one number)."""
    out: list[str] = []
    for line in raw.replace("\r", "\n").split("\n"):
        for piece in re.split(r"[,;]", line):
            piece = piece.strip()
            if not piece:
                continue
            # "+1 555 0100 +1 555 0101" on one line: split where a new "+" starts.
            out.extend(p.strip() for p in re.split(r"\s+(?=\+)", piece) if p.strip())
    return list(dict.fromkeys(out))


def send_at_value(raw: str) -> str | None:
    """The form's UTC date-time (datetime-local: no zone) as ISO 8601 with Z."""
    raw = raw.strip()
    if not raw:
        return None
    if len(raw) == 16:  # YYYY-MM-DDTHH:MM
        raw += ":00"
    return raw if raw.endswith("Z") or "+" in raw[10:] else raw + "Z"


def preview_view(intake: Any, text: Any) -> dict[str, Any]:
    """What the preview box shows; an ``error`` instead when the text cannot be sent."""
    if not isinstance(text, str) or not text:
        return {"empty": True}
    try:
        pv = intake.preview(text)
    except (ValidationError, CodecError) as exc:
        return {"error": getattr(exc, "message", None) or str(exc)}
    return {
        "encoding": str(pv.encoding),
        "parts": pv.parts,
        "characters": pv.characters,
        "units_left": pv.units_left,
        "units_per_part": pv.units_per_part,
        "smart_replaced": getattr(pv, "smart_replaced", False),
    }


async def _form_context(request: web.Request, values: dict[str, str], *, error: str = "",
                        error_field: str = "") -> dict[str, Any]:
    c = console_of(request)
    modems = [m for m in await c.q.modems() if not m.get("remote")]
    return {
        "section": "compose",
        "v": values,
        "priorities": PRIORITIES,
        "sims": [m["id"] for m in modems],
        "idem": secrets.token_urlsafe(16),
        "preview": preview_view(c.deps.intake, values.get("text", "")),
        "error": error,
        "error_field": error_field,
    }


FIELDS = ("to", "text", "send_at", "priority", "sim")


@needs("send")
async def compose_page(request: web.Request) -> web.StreamResponse:
    values = {k: "" for k in FIELDS}
    values["to"] = request.query.get("to", "")[:200]
    values["priority"] = "normal"
    return render(request, "compose.html", await _form_context(request, values))


@needs("send")
async def preview(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    text = form.get("text", "")
    return render(request, "_preview.html", {"preview": preview_view(console_of(request).deps.intake, text)})


@needs("send")
async def send(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    values = {k: str(form.get(k, ""))[:20_000] for k in FIELDS}
    values["priority"] = values["priority"] or "normal"
    to = recipients(values["to"])
    problem = ""
    if not to:
        problem = "to: give at least one number"
    elif len(to) > MAX_RECIPIENTS:
        problem = f"to: at most {MAX_RECIPIENTS} numbers at once ({len(to)} given)"
    elif not values["text"]:
        problem = "text: write the message"
    elif values["priority"] not in PRIORITIES:
        problem = "priority: choose one of the list"
    if problem:
        field = problem.split(":", 1)[0]
        return render(request, "compose.html", await _form_context(request, values, error=problem, error_field=field),
                      status=422)
    idem = str(form.get("idem", ""))
    if not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", idem):
        idem = ""
    try:
        result = await submit(request, to=to, text=values["text"], send_at=send_at_value(values["send_at"]),
                              priority=values["priority"], sim=values["sim"] or None, idem=idem, via="compose")
    except ValidationError as exc:
        return render(request, "compose.html",
                      await _form_context(request, values, error=exc.message, error_field=exc.field or ""),
                      status=422)
    except AdmissionError as exc:
        resp = render(request, "compose.html",
                      await _form_context(request, values, error=getattr(exc, "message", str(exc))), status=429)
        retry = getattr(exc, "retry_after_s", None)
        if retry:
            resp.headers["Retry-After"] = str(max(1, int(retry + 0.999)))
        return resp
    ids = list(result.message_ids)
    first = result.messages[0]
    if result.replayed:
        flash(request, "ok", "This form was already sent; nothing was queued twice.")
    else:
        n = len(ids)
        flash(request, "ok", f"Queued {n} message{'s' if n != 1 else ''} ({first.encoding}, "
                             f"{first.parts} part{'s' if first.parts != 1 else ''} each).")
    if len(ids) == 1:
        raise web.HTTPSeeOther(f"{PREFIX}messages/{ids[0]}")
    raise web.HTTPSeeOther(f"{PREFIX}batches/{result.batch_id}")


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/compose", compose_page)
    r.add_post("/compose/preview", preview)
    r.add_post("/compose", send)


__all__ = ["add_routes", "preview_view", "recipients", "send_at_value"]
