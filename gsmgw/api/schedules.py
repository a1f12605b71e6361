"""API routes for recurring schedules and SIM keep-alive (issue 20 parts 2-3).

A schedule belongs to the key that created it: a key sees, pauses, resumes and
deletes its own; an admin key every key's. Another key's schedule is "not found"
(its existence is not revealed), as messages are.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from gsmgw.api import schemas
from gsmgw.api.auth import require_scope
from gsmgw.api.errors import error_response, json_body, takes_query
from gsmgw.api.schemas import parse, query
from gsmgw.intake.types import Caller, Recipient
from gsmgw.schedules import ScheduleSpec


class SchedulesControl(Protocol):
    """What these routes need (``gsmgw.schedules.Scheduler``; wired by gsmgw.daemon)."""

    async def create(self, caller: Caller, spec: ScheduleSpec) -> dict[str, Any]: ...

    async def get(self, caller: Caller, schedule_id: str) -> dict[str, Any] | None: ...

    async def list(self, caller: Caller, *, cursor: str | None = None, limit: int = 50) -> dict[str, Any]: ...

    async def set_paused(self, caller: Caller, schedule_id: str, paused: bool) -> dict[str, Any] | None: ...

    async def delete(self, caller: Caller, schedule_id: str) -> bool: ...


class KeepAliveControl(Protocol):
    async def status(self) -> list[dict[str, Any]]: ...


SCHEDULES = web.AppKey("schedules_control", SchedulesControl)
KEEPALIVE = web.AppKey("keepalive_control", KeepAliveControl)

_ID_CHARS = set("0123456789abcdef")


def _control(request: web.Request) -> SchedulesControl | None:
    return request.app.get(SCHEDULES)


def _unwired() -> web.Response:
    return error_response(503, "unavailable", "schedules are not running in this gateway ([schedules] enabled)")


def _plausible_id(schedule_id: str) -> bool:
    return len(schedule_id) == 24 and set(schedule_id) <= _ID_CHARS


def spec_of(body: schemas.ScheduleRequest) -> ScheduleSpec:
    to: Any = body.to
    if isinstance(to, list):
        to = [Recipient(r.to, r.variables) if isinstance(r, schemas.Recipient) else r for r in to]
    return ScheduleSpec(to=to, rrule=body.rrule, cron=body.cron, timezone=body.timezone, start=body.start,
                        text=body.text, template=body.template, variables=body.variables, sim=body.sim,
                        priority=body.priority, transactional=body.transactional, missed=body.missed,
                        name=body.name)


async def post_schedule(request: web.Request) -> web.Response:
    caller = require_scope(request, "send")
    body = parse(schemas.ScheduleRequest, await json_body(request))
    control = _control(request)
    if control is None:
        return _unwired()
    view = await control.create(caller, spec_of(body))
    resp = web.json_response(view, status=201)
    resp.headers["Location"] = f"/api/v1/schedules/{view['id']}"
    return resp


@takes_query
async def list_schedules(request: web.Request) -> web.Response:
    caller = require_scope(request, "read")
    q = query(schemas.SchedulesQuery, request.query)
    control = _control(request)
    if control is None:
        return _unwired()
    return web.json_response(await control.list(caller, cursor=q.cursor, limit=q.limit))


async def get_schedule(request: web.Request) -> web.Response:
    caller = require_scope(request, "read")
    control = _control(request)
    if control is None:
        return _unwired()
    sid = request.match_info["id"]
    view = await control.get(caller, sid) if _plausible_id(sid) else None
    if view is None:
        return error_response(404, "not_found", "no such schedule")
    return web.json_response(view)


async def _pause(request: web.Request, paused: bool) -> web.Response:
    caller = require_scope(request, "send")
    control = _control(request)
    if control is None:
        return _unwired()
    sid = request.match_info["id"]
    view = await control.set_paused(caller, sid, paused) if _plausible_id(sid) else None
    if view is None:
        return error_response(404, "not_found", "no such schedule")
    return web.json_response(view)


async def pause_schedule(request: web.Request) -> web.Response:
    return await _pause(request, True)


async def resume_schedule(request: web.Request) -> web.Response:
    return await _pause(request, False)


async def delete_schedule(request: web.Request) -> web.Response:
    caller = require_scope(request, "send")
    control = _control(request)
    if control is None:
        return _unwired()
    sid = request.match_info["id"]
    if not (_plausible_id(sid) and await control.delete(caller, sid)):
        return error_response(404, "not_found", "no such schedule")
    return web.json_response({"id": sid, "deleted": True})


async def get_keepalive(request: web.Request) -> web.Response:
    require_scope(request, "read")
    control = request.app.get(KEEPALIVE)
    if control is None:
        return _unwired()
    return web.json_response({"items": await control.status()})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v1/schedules", post_schedule)
    r.add_get("/api/v1/schedules", list_schedules)
    r.add_get("/api/v1/schedules/{id}", get_schedule)
    r.add_delete("/api/v1/schedules/{id}", delete_schedule)
    r.add_post("/api/v1/schedules/{id}/pause", pause_schedule)
    r.add_post("/api/v1/schedules/{id}/resume", resume_schedule)
    r.add_get("/api/v1/keepalive", get_keepalive)


__all__ = ["KEEPALIVE", "SCHEDULES", "add_routes"]
