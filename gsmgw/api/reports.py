"""Reports, number erasure and the audit log (issue 21, parts 3 and 5).

``GET /api/v1/reports``: the daily report aggregates grouped by SIM, key or campaign
and by day or month, as JSON or CSV (``format=csv`` or ``Accept: text/csv``); an
admin key sees everything (and may filter on ``key``), another key only its own
messages. ``DELETE /api/v1/numbers/{number}`` (admin) erases a number everywhere
(``gsmgw.housekeeping.erase_number``). ``GET /api/v1/audit`` (admin) lists admin actions.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal

from aiohttp import web
from pydantic import Field, StrictStr

from gsmgw.api.auth import require_scope
from gsmgw.api.context import INTAKE, SERVICES
from gsmgw.api.errors import error_response, takes_query
from gsmgw.api.schemas import Err, Query, query
from gsmgw.api.views import jsonable
from gsmgw.errors import ValidationError
from gsmgw.housekeeping import erase_number
from gsmgw.store.rollup import rows_to_csv

MAX_REPORT_DAYS = 3700  # ten years and a bit
DEFAULT_REPORT_DAYS = 31

Day = Annotated[StrictStr, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", description="a UTC day, YYYY-MM-DD")]


class ReportsQuery(Query):
    group_by: Literal["sim", "key", "campaign"] = Field(default="sim", description="what a row is per")
    period: Literal["day", "month"] = Field(default="day", description="day or month (UTC)")
    from_: Day | None = Field(default=None, alias="from", description="first day (default: 30 days before to)")
    to: Day | None = Field(default=None, description="last day, inclusive (default: today)")
    format: Literal["json", "csv"] | None = Field(default=None, description="csv, or json (default)")
    key: Annotated[StrictStr, Field(min_length=1, max_length=16)] | None = Field(
        default=None, description="only this API key's messages (admin)")

    ERRORS: ClassVar[dict[str, Err]] = {
        "group_by": Err("invalid_query", "group_by must be sim, key or campaign"),
        "period": Err("invalid_query", "period must be day or month"),
        "from": Err("invalid_query", "from must be a day as YYYY-MM-DD"),
        "to": Err("invalid_query", "to must be a day as YYYY-MM-DD"),
        "format": Err("invalid_query", "format must be json or csv"),
        "key": Err("invalid_query", "key must be an API key id"),
    }


class AuditQuery(Query):
    limit: int = Field(default=100, ge=1, le=1000)
    cursor: Annotated[StrictStr, Field(pattern=r"^[0-9]{1,18}$")] | None = Field(
        default=None, description="next_cursor of the previous page")
    action: Annotated[StrictStr, Field(min_length=1, max_length=40)] | None = Field(
        default=None, description="e.g. key.create, or a family: key.*")

    ERRORS: ClassVar[dict[str, Err]] = {
        "limit": Err("invalid_query", "limit must be from 1 to 1000"),
        "cursor": Err("invalid_query", "cursor must be the next_cursor of a previous page"),
        "action": Err("invalid_query", "action must be 1-40 characters"),
    }


def _day(raw: str | None, name: str, default: dt.date) -> dt.date:
    if raw is None:
        return default
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ValidationError("invalid_query", f"{name} is not a calendar day: {raw!r}", field=name) from None


@takes_query
async def get_reports(request: web.Request) -> web.StreamResponse:
    caller = require_scope(request, "read")
    svc = request.app[SERVICES]
    q = query(ReportsQuery, request.query)
    to = _day(q.to, "to", dt.datetime.now(dt.UTC).date())
    frm = _day(q.from_, "from", to - dt.timedelta(days=DEFAULT_REPORT_DAYS - 1))
    if frm > to:
        raise ValidationError("invalid_query", "from is after to", field="from")
    if (to - frm).days > MAX_REPORT_DAYS:
        raise ValidationError("invalid_query", f"at most {MAX_REPORT_DAYS} days at once", field="from")
    owner = request.app[INTAKE].owner_filter(caller)
    if q.key is not None and owner is not None and q.key != owner:
        return error_response(403, "forbidden", "a key that is not admin sees only its own messages")
    rows = await svc.store.call_read(svc.store.rollup.report, group_by=q.group_by, period=q.period,
                                date_from=frm, date_to=to, api_key_id=owner or q.key)
    fmt = q.format or ("csv" if "text/csv" in request.headers.get("Accept", "") else "json")
    if fmt == "csv":
        return web.Response(text=rows_to_csv(rows, q.group_by), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="report-{frm}-{to}.csv"'})
    lag = await svc.store.call_read(svc.store.rollup.lag)
    return web.json_response({"group_by": q.group_by, "period": q.period, "from": frm.isoformat(),
                              "to": to.isoformat(), "rolled_through_event": lag["cursor"],
                              "latest_event": lag["latest_event_id"], "items": rows})


async def delete_number(request: web.Request) -> web.Response:
    caller = require_scope(request, "admin")
    svc = request.app[SERVICES]
    raw = request.match_info["number"]
    if len(raw) > 40:
        raise ValidationError("invalid_number", "number is too long", field="number")
    res = await erase_number(svc.store, raw, region=svc.cfg.api.default_region, actor=f"key:{caller.id}")
    return web.json_response(res)


@takes_query
async def get_audit(request: web.Request) -> web.Response:
    require_scope(request, "admin")
    svc = request.app[SERVICES]
    q = query(AuditQuery, request.query)
    rows = await svc.store.call_read(svc.store.audit.list_entries, before_id=int(q.cursor) if q.cursor else None,
                                action=q.action, limit=q.limit)
    items = [jsonable(r) for r in rows]
    next_cursor = str(rows[-1]["id"]) if len(rows) == q.limit else None
    return web.json_response({"items": items, "next_cursor": next_cursor})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/reports", get_reports)
    app.router.add_delete("/api/v1/numbers/{number}", delete_number)
    app.router.add_get("/api/v1/audit", get_audit)


__all__ = ["AuditQuery", "ReportsQuery", "add_routes"]
