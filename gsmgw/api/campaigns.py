"""Contacts, groups and campaigns over the native API (issue 21 parts 1-2).

Scopes: reading needs ``read``, changing needs ``send`` (``admin`` may do all). The
address book is the gateway's (every key sees the same contacts); a campaign
belongs to the key that created it (admin sees all), and its messages are sent
as that key. The work is ``gsmgw.campaigns``'s; these handlers read requests and
render replies. ``PATHS`` and ``BODIES`` describe the routes for ``openapi.py``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, ClassVar, Literal

from aiohttp import web
from pydantic import ConfigDict, Field, StrictInt, StrictStr

from gsmgw.api import schemas
from gsmgw.api.auth import require_scope
from gsmgw.api.context import INTAKE, SERVICES
from gsmgw.api.errors import error_response, json_body, takes_query
from gsmgw.api.schemas import Err, Model, Query, parse, query
from gsmgw.api.views import jsonable
from gsmgw.campaigns import CampaignService, ColumnMapping, ContactsService, ImportOptions
from gsmgw.errors import ValidationError
from gsmgw.store.campaigns import CAMPAIGN_STATES

CONTACTS = web.AppKey("contacts_service", ContactsService)
CAMPAIGNS = web.AppKey("campaigns_service", CampaignService)

Name = Annotated[StrictStr, Field(min_length=1, max_length=100)]
Id = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{24}$", description="a contact id")]
# Ids per request: well inside api.max_body_bytes (a longer list is a group's job).
MAX_IDS = 2000
FieldValue = StrictStr | StrictInt | float


class ContactBody(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"example": {
        "number": "+447700900123", "name": "Ann", "fields": {"city": "Leeds"}, "tags": ["vip"],
        "groups": ["customers"]}})
    number: StrictStr = Field(max_length=32, description="E.164, or national in api.default_region")
    name: Annotated[StrictStr, Field(max_length=200)] = ""
    fields: Annotated[dict[str, FieldValue], Field(max_length=50)] = Field(
        default_factory=dict, description="custom fields: template variables of campaigns")
    tags: Annotated[list[Annotated[StrictStr, Field(min_length=1, max_length=64)]], Field(max_length=100)] = Field(
        default_factory=list)
    groups: Annotated[list[Name], Field(max_length=100)] = Field(default_factory=list,
                                                                  description="group names (created if new)")

    ERRORS: ClassVar[dict[str, Err]] = {"number": schemas.NUMBER}


class ContactPatch(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"example": {"name": "Ann Smith"}})
    number: StrictStr | None = Field(default=None, max_length=32)
    name: Annotated[StrictStr, Field(max_length=200)] | None = None
    fields: Annotated[dict[str, FieldValue], Field(max_length=50)] | None = Field(
        default=None, description="replaces all fields")
    tags: Annotated[list[Annotated[StrictStr, Field(min_length=1, max_length=64)]], Field(max_length=100)] | None = None
    groups: Annotated[list[Name], Field(max_length=100)] | None = None

    ERRORS: ClassVar[dict[str, Err]] = {"number": schemas.NUMBER}


class GroupBody(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"example": {"name": "customers"}})
    name: Name


class MembersBody(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"example": {"contacts": ["0190c"]}})
    contacts: Annotated[list[Id], Field(min_length=1, max_length=MAX_IDS)]


class CampaignBody(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"example": {
        "name": "March reminder", "template": "Hi {name}, your appointment in {city} is tomorrow.",
        "group": "customers"}})
    name: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    template: Annotated[StrictStr, Field(min_length=1, max_length=10_000)] = Field(
        description="{name}, {number} and the contact's fields as {field}")
    group: Annotated[StrictStr, Field(min_length=1, max_length=100)] | None = Field(
        default=None, description="a group id or name; give one of group, tag, contacts")
    tag: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None
    contacts: Annotated[list[Id], Field(min_length=1, max_length=MAX_IDS)] | None = None
    priority: Annotated[StrictInt, Field(ge=-10, le=-1)] | Literal["low"] = "low"
    window: Annotated[StrictInt, Field(ge=1, le=1000)] | None = Field(
        default=None, description="at most this many of its messages queued at once ([campaigns] window)")
    sim: StrictStr | None = Field(default=None, description="send from this modem only")
    start_at: schemas.Time | None = Field(default=None, description="start then (with a time zone); else now")

    ERRORS: ClassVar[dict[str, Err]] = {
        "template": Err("invalid_text", "template must be a non-empty string"),
        "priority": Err("invalid_field", "priority must be low or an integer from -10 to -1"),
        "start_at": Err("invalid_time", "start_at must be an ISO 8601 string"),
        "sim": Err("unknown_sim", "no modem with id {input!r}"),
    }


_LIMIT: Any = Field(default=100, ge=1, le=1000)
_LIMIT_ERR = Err("invalid_query", "limit must be an integer from 1 to 1000")


class ContactsQuery(Query):
    limit: int = _LIMIT
    cursor: Annotated[StrictStr, Field(max_length=32)] | None = Field(default=None,
                                                                       description="next_cursor of the last page")
    group: Annotated[StrictStr, Field(max_length=32)] | None = Field(default=None, description="a group id")
    tag: Annotated[StrictStr, Field(max_length=64)] | None = None
    q: Annotated[StrictStr, Field(max_length=100)] | None = Field(default=None, description="in number or name")

    ERRORS: ClassVar[dict[str, Err]] = {"limit": _LIMIT_ERR}


class ExportQuery(Query):
    group: Annotated[StrictStr, Field(max_length=32)] | None = Field(default=None, description="a group id")
    tag: Annotated[StrictStr, Field(max_length=64)] | None = None


class ImportQuery(Query):
    number: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="the number column (default: number, phone, mobile, ...)")
    name: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="the name column (default: name, if present)")
    fields: Annotated[StrictStr, Field(max_length=200)] | None = Field(
        default=None, description="field columns, comma-separated (default: all other columns; the whole query "
                    "must fit an 8 KB request line)")
    tags: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="a column of tags separated by | , or ;")
    groups: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="a column of group names separated by |")
    group: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="put every imported contact in this group")
    tag: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="give every imported contact this tag")
    default_region: Annotated[StrictStr, Field(pattern=r"^[A-Za-z]{2}$")] | None = Field(
        default=None, description="where national numbers are read (default: api.default_region)")
    on_duplicate: Literal["update", "skip"] = Field(default="update",
                                                    description="a number that is already a contact")
    delimiter: Literal[",", ";", "tab", "|"] | None = Field(default=None, description="default: from the header")

    ERRORS: ClassVar[dict[str, Err]] = {
        "default_region": Err("invalid_query", "default_region must be a two-letter country code"),
        "on_duplicate": Err("invalid_query", "on_duplicate must be update or skip"),
        "delimiter": Err("invalid_query", "delimiter must be , ; | or tab"),
    }


class CampaignsQuery(Query):
    limit: int = _LIMIT
    state: Literal[CAMPAIGN_STATES] | None = None  # type: ignore[valid-type]
    cursor: Annotated[StrictStr, Field(max_length=32)] | None = None

    ERRORS: ClassVar[dict[str, Err]] = {"limit": _LIMIT_ERR,
                                        "state": Err("invalid_query", "unknown state {input!r}")}


class RecipientsQuery(Query):
    limit: int = _LIMIT
    cursor: Annotated[StrictStr, Field(pattern=r"^[0-9]{1,9}$")] | None = None
    state: Literal["pending", "submitted", "opted_out", "cancelled"] | None = None

    ERRORS: ClassVar[dict[str, Err]] = {"limit": _LIMIT_ERR,
                                        "cursor": Err("invalid_query", "cursor must be next_cursor of a page"),
                                        "state": Err("invalid_query", "unknown state {input!r}")}


BODIES: tuple[type[Model], ...] = (ContactBody, ContactPatch, GroupBody, MembersBody, CampaignBody)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(jsonable(data), status=status)


def _not_found(what: str) -> web.Response:
    return error_response(404, "not_found", f"no such {what}")


# --- contacts ------------------------------------------------------------------------------


@takes_query
async def list_contacts(request: web.Request) -> web.Response:
    require_scope(request, "read")
    q = query(ContactsQuery, request.query)
    store = request.app[SERVICES].store
    rows = await store.call(store.contacts.list_contacts, after=q.cursor, limit=q.limit, group_id=q.group,
                            tag=q.tag, search=q.q)
    return _json({"items": rows, "next_cursor": rows[-1]["id"] if len(rows) == q.limit else None})


async def post_contact(request: web.Request) -> web.Response:
    require_scope(request, "send")
    body = parse(ContactBody, await json_body(request))
    row = await request.app[CONTACTS].create(body.model_dump(exclude_unset=True))
    resp = _json(row, 201)
    resp.headers["Location"] = f"/api/v1/contacts/{row['id']}"
    return resp


async def get_contact(request: web.Request) -> web.Response:
    require_scope(request, "read")
    store = request.app[SERVICES].store
    row = await store.call(store.contacts.get_contact, request.match_info["id"])
    return _json(row) if row is not None else _not_found("contact")


async def patch_contact(request: web.Request) -> web.Response:
    require_scope(request, "send")
    body = parse(ContactPatch, await json_body(request))
    row = await request.app[CONTACTS].update(request.match_info["id"],
                                             body.model_dump(exclude_unset=True, exclude_none=True))
    return _json(row) if row is not None else _not_found("contact")


async def delete_contact(request: web.Request) -> web.Response:
    require_scope(request, "send")
    store = request.app[SERVICES].store
    done = await store.call(store.contacts.delete_contact, request.match_info["id"])
    return _json({"deleted": True}) if done else _not_found("contact")


async def _read_csv(request: web.Request) -> bytes:
    svc = request.app[SERVICES]
    limit = svc.cfg.campaigns.import_max_bytes
    if request.content_type not in ("text/csv", "text/plain", "application/octet-stream"):
        raise ValidationError("invalid_csv", "send the file as the body with Content-Type: text/csv")
    too_large = web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length or limit + 1)
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks, size = [], 0
    try:
        async with asyncio.timeout(max(svc.cfg.api.body_timeout_s, 60.0)):
            async for data in request.content.iter_chunked(1 << 16):
                size += len(data)
                if size > limit:
                    raise too_large
                chunks.append(data)
    except TimeoutError:
        raise ValidationError("body_timeout", "the file did not arrive in time") from None
    return b"".join(chunks)


@takes_query
async def import_contacts(request: web.Request) -> web.Response:
    require_scope(request, "send")
    q = query(ImportQuery, request.query)
    data = await _read_csv(request)
    if not data:
        raise ValidationError("invalid_csv", "the body is empty: send the CSV file", field="file")
    fields = tuple(f.strip() for f in q.fields.split(",") if f.strip()) if q.fields is not None else None
    options = ImportOptions(
        mapping=ColumnMapping(number=q.number, name=q.name, fields=fields, tags=q.tags, groups=q.groups),
        default_region=q.default_region, on_duplicate=q.on_duplicate,
        delimiter="\t" if q.delimiter == "tab" else q.delimiter, group=q.group, tags=(q.tag,) if q.tag else ())
    report = await request.app[CONTACTS].import_csv(data, options)
    return _json(report.as_dict())


@takes_query
async def export_contacts(request: web.Request) -> web.StreamResponse:
    require_scope(request, "read")
    q = query(ExportQuery, request.query)
    resp = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8",
                                       "Content-Disposition": 'attachment; filename="contacts.csv"'})
    await resp.prepare(request)
    async for chunk in request.app[CONTACTS].export_csv(group_id=q.group, tag=q.tag):
        await resp.write(chunk)
    await resp.write_eof()
    return resp


# --- groups --------------------------------------------------------------------------------


async def list_groups(request: web.Request) -> web.Response:
    require_scope(request, "read")
    store = request.app[SERVICES].store
    return _json({"items": await store.call(store.contacts.list_groups)})


async def post_group(request: web.Request) -> web.Response:
    require_scope(request, "send")
    body = parse(GroupBody, await json_body(request))
    store = request.app[SERVICES].store
    row = await store.call(store.contacts.create_group, body.name.strip())
    if row is None:
        return error_response(409, "duplicate_group", f"a group is called {body.name!r}")
    return _json(row, 201)


async def get_group(request: web.Request) -> web.Response:
    require_scope(request, "read")
    store = request.app[SERVICES].store
    row = await store.call(store.contacts.get_group, request.match_info["id"])
    return _json(row) if row is not None else _not_found("group")


async def patch_group(request: web.Request) -> web.Response:
    require_scope(request, "send")
    body = parse(GroupBody, await json_body(request))
    store = request.app[SERVICES].store
    done = await store.call(store.contacts.rename_group, request.match_info["id"], body.name.strip())
    if done is None:
        return error_response(409, "duplicate_group", f"a group is called {body.name!r}")
    if not done:
        return _not_found("group")
    return _json(await store.call(store.contacts.get_group, request.match_info["id"]))


async def delete_group(request: web.Request) -> web.Response:
    require_scope(request, "send")
    store = request.app[SERVICES].store
    done = await store.call(store.contacts.delete_group, request.match_info["id"])
    return _json({"deleted": True}) if done else _not_found("group")


async def _members(request: web.Request, add: bool) -> web.Response:
    require_scope(request, "send")
    body = parse(MembersBody, await json_body(request))
    store = request.app[SERVICES].store
    n = await store.call(store.contacts.set_members, request.match_info["id"], body.contacts, add=add)
    return _json({"added" if add else "removed": n}) if n is not None else _not_found("group")


async def add_members(request: web.Request) -> web.Response:
    return await _members(request, True)


async def remove_members(request: web.Request) -> web.Response:
    return await _members(request, False)


# --- campaigns -----------------------------------------------------------------------------


def campaign_view(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in ("id", "name", "template", "state", "priority", "sim", "start_at", "started_at",
                               "finished_at", "last_error", "created_at", "updated_at")}
    out["window"] = row["queue_window"]
    target = json.loads(row["target"]) if row["target_kind"] == "contacts" else row["target"]
    out["target"] = {row["target_kind"]: target}
    out["progress"] = row.get("progress")
    return jsonable(out)


@takes_query
async def list_campaigns(request: web.Request) -> web.Response:
    caller = require_scope(request, "read")
    q = query(CampaignsQuery, request.query)
    rows = await request.app[CAMPAIGNS].list(caller, state=q.state, after=q.cursor, limit=q.limit)
    return web.json_response({"items": [campaign_view(r) for r in rows],
                              "next_cursor": rows[-1]["id"] if len(rows) == q.limit else None})


async def post_campaign(request: web.Request) -> web.Response:
    caller = require_scope(request, "send")
    body = parse(CampaignBody, await json_body(request))
    svc = request.app[CAMPAIGNS]
    row = await svc.create(caller, body.model_dump(exclude_none=True))
    row = await svc.get(caller, row["id"]) or row
    resp = web.json_response(campaign_view(row), status=201)
    resp.headers["Location"] = f"/api/v1/campaigns/{row['id']}"
    return resp


async def get_campaign(request: web.Request) -> web.Response:
    caller = require_scope(request, "read")
    row = await request.app[CAMPAIGNS].get(caller, request.match_info["id"])
    return web.json_response(campaign_view(row)) if row is not None else _not_found("campaign")


async def delete_campaign(request: web.Request) -> web.Response:
    caller = require_scope(request, "send")
    done = await request.app[CAMPAIGNS].delete(caller, request.match_info["id"])
    return _json({"deleted": True}) if done else _not_found("campaign")


async def validate_campaign(request: web.Request) -> web.Response:
    caller = require_scope(request, "send")
    v = await request.app[CAMPAIGNS].validate(caller, request.match_info["id"])
    return _json(v.as_dict()) if v is not None else _not_found("campaign")


def _action(name: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        caller = require_scope(request, "send")
        row = await getattr(request.app[CAMPAIGNS], name)(caller, request.match_info["id"])
        return web.json_response(campaign_view(row)) if row is not None else _not_found("campaign")

    handler.__name__ = f"{name}_campaign"
    return handler


@takes_query
async def campaign_recipients(request: web.Request) -> web.Response:
    caller = require_scope(request, "read")
    q = query(RecipientsQuery, request.query)
    cid = request.match_info["id"]
    if await request.app[CAMPAIGNS].get(caller, cid) is None:
        return _not_found("campaign")
    store = request.app[SERVICES].store
    rows = await store.call(store.campaigns.recipients, cid, after=int(q.cursor) if q.cursor else -1,
                            limit=q.limit, state=q.state)
    return web.json_response({"items": rows, "next_cursor": str(rows[-1]["seq"]) if len(rows) == q.limit else None})


def add_routes(app: web.Application) -> None:
    svc = app[SERVICES]
    app[CONTACTS] = ContactsService(svc.store, lambda: svc.cfg)
    app[CAMPAIGNS] = CampaignService(svc.store, app[INTAKE], lambda: svc.cfg, wake=lambda: svc.wake_campaigns())
    r = app.router
    r.add_get("/api/v1/contacts", list_contacts)
    r.add_post("/api/v1/contacts", post_contact)
    r.add_post("/api/v1/contacts/import", import_contacts)
    r.add_get("/api/v1/contacts/export", export_contacts)
    # Contact ids are 24 hex digits: /contacts/import and /contacts/export are not ids
    # (so their Allow lists only their own methods).
    contact = "/api/v1/contacts/{id:[0-9a-f]{24}}"
    r.add_get(contact, get_contact)
    r.add_patch(contact, patch_contact)
    r.add_delete(contact, delete_contact)
    r.add_get("/api/v1/groups", list_groups)
    r.add_post("/api/v1/groups", post_group)
    r.add_get("/api/v1/groups/{id}", get_group)
    r.add_patch("/api/v1/groups/{id}", patch_group)
    r.add_delete("/api/v1/groups/{id}", delete_group)
    r.add_post("/api/v1/groups/{id}/members", add_members)
    r.add_delete("/api/v1/groups/{id}/members", remove_members)
    r.add_get("/api/v1/campaigns", list_campaigns)
    r.add_post("/api/v1/campaigns", post_campaign)
    r.add_get("/api/v1/campaigns/{id}", get_campaign)
    r.add_delete("/api/v1/campaigns/{id}", delete_campaign)
    r.add_post("/api/v1/campaigns/{id}/validate", validate_campaign)
    for action in ("start", "pause", "resume", "cancel"):
        r.add_post(f"/api/v1/campaigns/{{id}}/{action}", _action(action))
    r.add_get("/api/v1/campaigns/{id}/recipients", campaign_recipients)


__all__ = ["BODIES", "add_routes", "campaign_view"]
