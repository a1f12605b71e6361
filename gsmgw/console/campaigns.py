"""Campaigns in the console (issue 21): a list with each campaign's progress, a detail
page with the figures and the first recipients, and pause / resume / cancel buttons.
The work is ``gsmgw.campaigns``'s, as through the API; a key sees its own campaigns,
an admin all."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from gsmgw.campaigns import CampaignService
from gsmgw.console.core import PREFIX, console_of, error_page, flash, needs, render, request_session
from gsmgw.errors import ConflictError

ID_RE = re.compile(r"^[0-9a-f]{24}$")
PARTS = ("pending", "queued", "sent", "delivered", "failed", "opted_out", "cancelled")


def _service(request: web.Request) -> CampaignService:
    deps = console_of(request).deps
    return CampaignService(deps.store, deps.intake, deps.config)  # type: ignore[arg-type]


@needs("read")
async def campaigns(request: web.Request) -> web.StreamResponse:
    rows = await _service(request).list(request_session(request).caller, limit=100)
    return render(request, "campaigns.html", {"section": "campaigns", "campaigns": rows, "parts": PARTS})


async def _one(request: web.Request) -> dict[str, Any] | None:
    cid = request.match_info["id"]
    if not ID_RE.match(cid):
        return None
    return await _service(request).get(request_session(request).caller, cid)


@needs("read")
async def campaign(request: web.Request) -> web.StreamResponse:
    row = await _one(request)
    if row is None:
        return error_page(request, 404, "Not found", "There is no such campaign.")
    store = console_of(request).deps.store
    recipients = await store.call(store.campaigns.recipients, row["id"], limit=50)
    return render(request, "campaign.html", {"section": "campaigns", "c": row, "p": row["progress"],
                                             "parts": PARTS, "recipients": recipients})


@needs("send")
async def action(request: web.Request) -> web.StreamResponse:
    name = request.match_info["action"]
    row = await _one(request)
    if row is None or name not in ("pause", "resume", "cancel"):
        return error_page(request, 404, "Not found", "There is no such campaign.")
    try:
        await getattr(_service(request), name)(request_session(request).caller, row["id"])
    except ConflictError as exc:
        flash(request, "error", exc.args[0] if exc.args else "not possible now")
    else:
        flash(request, "ok", {"pause": "Paused.", "resume": "Resumed.", "cancel": "Cancelled."}[name])
    raise web.HTTPSeeOther(f"{PREFIX}campaigns/{row['id']}")


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/campaigns", campaigns)
    r.add_get("/campaigns/{id}", campaign)
    r.add_post("/campaigns/{id}/{action}", action)


__all__ = ["add_routes"]
