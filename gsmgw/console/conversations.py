"""Conversations: inbound and outbound threaded by number, newest first, unread
marks, incomplete multipart shown as such, and a reply box that goes through the
intake (opt-outs respected) like any other send."""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import quote

from aiohttp import web

from gsmgw.console.compose import preview_view
from gsmgw.console.core import (
    PREFIX,
    console_of,
    error_page,
    flash,
    needs,
    owner_filter,
    render,
)
from gsmgw.console.sending import submit
from gsmgw.errors import AdmissionError, ValidationError


def valid_number(raw: Any) -> str | None:
    """A thread's key as given in a link: 1-32 printable characters."""
    if not isinstance(raw, str):
        return None
    raw = raw.strip()
    if not 0 < len(raw) <= 32 or not raw.isprintable():
        return None
    return raw


def repliable(number: str) -> bool:
    """An alphanumeric sender ("MyBank") cannot be answered by SMS."""
    return bool(re.fullmatch(r"\+?[0-9]{3,20}", number))


def thread_url(number: str) -> str:
    return f"{PREFIX}conversations/thread?number={quote(number, safe='')}"


@needs("read")
async def conversations(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    threads = await c.q.conversations(owner_filter(request))
    return render(request, "conversations.html", {"section": "conversations", "threads": threads})


@needs("read")
async def thread(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    number = valid_number(request.query.get("number"))
    if number is None:
        return error_page(request, 404, "Not found", "There is no such conversation.")
    items = await c.q.thread(number, owner_filter(request))
    if not items:
        return error_page(request, 404, "Not found", "There is no such conversation.")
    await c.q.mark_read(number)
    last_in = next((i for i in reversed(items) if i["direction"] == "in"), None)
    local_sims = [m["id"] for m in await c.q.modems() if not m.get("remote")]
    return render(request, "thread.html", {
        "section": "conversations",
        "number": number,
        "items": items,
        "repliable": repliable(number),
        "opted_out": await c.q.opted_out(number),
        "sims": local_sims,
        "reply_sim": last_in["modem_id"] if last_in and last_in["modem_id"] in local_sims else "",
        "idem": secrets.token_urlsafe(16),
        "preview": preview_view(c.deps.intake, ""),
    })


@needs("send")
async def reply(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    number = valid_number(form.get("number"))
    if number is None:
        return error_page(request, 422, "Cannot reply", "The conversation's number is missing or malformed.")
    text = str(form.get("text", ""))
    sim = str(form.get("sim", "")) or None
    idem = str(form.get("idem", ""))
    if not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", idem):
        idem = ""
    if not text.strip():
        flash(request, "error", "Write a reply first.")
        raise web.HTTPSeeOther(thread_url(number))
    try:
        result = await submit(request, to=[number], text=text, send_at=None, priority="normal", sim=sim,
                              idem=idem, via="reply")
    except ValidationError as exc:
        flash(request, "error", f"Not sent: {exc.message}")
    except AdmissionError as exc:
        flash(request, "error", f"Not sent: {getattr(exc, 'message', exc)}")
    else:
        flash(request, "ok", "Reply queued." if not result.replayed else "This reply was already sent.")
    raise web.HTTPSeeOther(thread_url(number))


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/conversations", conversations)
    r.add_get("/conversations/thread", thread)
    r.add_post("/conversations/reply", reply)


__all__ = ["add_routes", "repliable", "thread_url", "valid_number"]
