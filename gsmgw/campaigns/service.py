"""Contacts and campaigns as a service: what the API, the console and the CLI call
(plain values in and out, no aiohttp). Sending goes through ``IntakeService`` only
(``gsmgw.campaigns.runner``), so opt-outs, quotas, queue depth and pacing apply to a
campaign's messages as to any other.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import io
import json
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gsmgw.campaigns.csvimport import (
    MAX_FIELD_CHARS,
    MAX_FIELDS,
    MAX_GROUP_CHARS,
    MAX_NAME_CHARS,
    MAX_TAG_CHARS,
    NAME_RE,
    CsvReader,
    Duplicate,
    ImportOptions,
    RowError,
    neutralise,
)
from gsmgw.config import Config
from gsmgw.errors import ConflictError, ValidationError
from gsmgw.intake import Caller, IntakeService
from gsmgw.intake.checks import (
    PRIORITIES,
    check_template,
    parse_time,
    render_template,
    text_preview,
)
from gsmgw.store import Store
from gsmgw.store.campaigns import (
    CANCELLED,
    COMPLETED,
    DRAFT,
    PAUSED,
    RUNNING,
    SCHEDULED,
)
from gsmgw.store.contacts import ContactIn

MAX_ERRORS_LISTED = 10_000
MAX_TARGET_CONTACTS = 10_000
MAX_MISSING_LISTED = 100
MAX_CAMPAIGN_NAME = 200
PAGE = 1000
IMPORT_PAUSE_S = 0.005


def idempotency_key(campaign_id: str, contact_id: str) -> str:
    """The key a recipient's message is submitted under: the same recipient of the same
    campaign never queues twice, whichever host or run submits it."""
    return f"campaign:{campaign_id}:{contact_id}"


@dataclass(slots=True)
class ImportReport:
    """Every data row is in exactly one of created, updated, skipped (the number was a
    contact and on_duplicate=skip), invalid, duplicates (of an earlier row), blank."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    invalid: int = 0
    duplicates: int = 0
    blank: int = 0
    errors: list[RowError] = field(default_factory=list)
    duplicate_rows: list[Duplicate] = field(default_factory=list)
    skipped_numbers: list[str] = field(default_factory=list)
    delimiter: str = ","
    columns: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "created": self.created, "updated": self.updated, "skipped": self.skipped,
            "invalid": self.invalid, "duplicates": self.duplicates, "blank": self.blank,
            "delimiter": self.delimiter, "columns": self.columns,
            "errors": [{"row": e.row, "reason": e.reason, **({"value": e.value} if e.value else {})}
                       for e in self.errors],
            "duplicate_rows": [{"row": d.row, "number": d.number, "duplicate_of": d.duplicate_of}
                               for d in self.duplicate_rows],
            "errors_truncated": self.invalid > len(self.errors) or self.duplicates > len(self.duplicate_rows),
        }


def _text(value: Any, name: str, max_chars: int, *, empty: bool = True) -> str:
    if not isinstance(value, str) or len(value) > max_chars or (not empty and not value.strip()):
        raise ValidationError("invalid_field", f"{name} must be a{'' if empty else ' non-empty'} string of at most "
                              f"{max_chars} characters", field=name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("invalid_field", f"{name} is not valid Unicode text", field=name) from None
    return value.strip()


def _names(value: Any, name: str, max_chars: int) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > 100:
        raise ValidationError("invalid_field", f"{name} must be a list of at most 100 strings", field=name)
    return tuple(sorted({_text(v, name, max_chars, empty=False) for v in value}))


def _fields(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or len(value) > MAX_FIELDS:
        raise ValidationError("invalid_field", f"fields must be an object of at most {MAX_FIELDS} names",
                              field="fields")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not NAME_RE.match(k):
            raise ValidationError("invalid_field", f"field name {k!r} must be letters, digits and _", field="fields")
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise ValidationError("invalid_field", f"field {k!r} must be a string or a number", field="fields")
        out[k] = _text(str(v), f"fields.{k}", MAX_FIELD_CHARS)
    return out


def variables_of(contact: Mapping[str, Any]) -> dict[str, str]:
    """A contact's template variables: its fields, then ``name`` and ``number``."""
    return {**contact.get("fields", {}), "name": contact.get("name") or "", "number": contact["number"]}


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(template: str) -> set[str]:
    return {m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1)}


class ContactsService:
    def __init__(self, store: Store, config: Callable[[], Config]) -> None:
        self.store = store
        self.config = config

    def number(self, raw: Any, region: str | None = None) -> str:
        from gsmgw.intake.checks import normalise_number

        return normalise_number(raw, region or self.config().api.default_region, field="number")

    def contact_in(self, body: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
        """A contact body checked: number (E.164), name, fields, tags, groups."""
        out: dict[str, Any] = {}
        if "number" in body or not partial:
            out["number"] = self.number(body.get("number"))
        if "name" in body:
            out["name"] = _text(body["name"], "name", MAX_NAME_CHARS)
        if "fields" in body:
            out["fields"] = _fields(body["fields"])
        if "tags" in body:
            out["tags"] = _names(body["tags"], "tags", MAX_TAG_CHARS)
        if "groups" in body:
            out["groups"] = _names(body["groups"], "groups", MAX_GROUP_CHARS)
        return out

    async def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        c = self.contact_in(body)
        row = await self.store.call(self.store.contacts.create_contact, ContactIn(
            number=c["number"], name=c.get("name", ""), fields=c.get("fields", {}), tags=c.get("tags", ()),
            groups=c.get("groups", ())))
        if row is None:
            raise ConflictError("duplicate_contact", f"{c['number']} is already a contact")
        return row

    async def update(self, contact_id: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        c = self.contact_in(body, partial=True)
        row = await self.store.call(self.store.contacts.update_contact, contact_id, **c)
        if row is False:
            raise ConflictError("duplicate_contact", f"{c.get('number')} is another contact's number")
        return row or None

    async def import_csv(self, data: bytes, options: ImportOptions) -> ImportReport:
        """Read, check and store a CSV file in batches (``[campaigns] import_batch_rows``):
        parsing runs in a thread and each batch is its own short transaction, so a
        100,000-row file blocks neither the event loop nor the dispatcher's writes."""
        if options.on_duplicate not in ("update", "skip"):
            raise ValidationError("invalid_field", "on_duplicate must be update or skip", field="on_duplicate")
        if options.default_region is not None and not re.fullmatch(r"[A-Za-z]{2}", options.default_region):
            raise ValidationError("invalid_field", "default_region must be a two-letter country code (ISO 3166)",
                                  field="default_region")
        if options.default_region is None:
            options = dataclasses.replace(options, default_region=self.config().api.default_region or None)
        reader = await asyncio.to_thread(CsvReader, data, options)
        report = ImportReport(delimiter=reader.delimiter, columns=reader.header)
        n = self.config().campaigns.import_batch_rows
        while True:
            chunk = await asyncio.to_thread(reader.next_chunk, n)
            if chunk is None:
                break
            report.rows += chunk.rows
            report.blank += chunk.blank
            report.invalid += len(chunk.errors)
            report.duplicates += len(chunk.duplicates)
            room = MAX_ERRORS_LISTED - len(report.errors)
            report.errors.extend(chunk.errors[:max(room, 0)])
            room = MAX_ERRORS_LISTED - len(report.duplicate_rows)
            report.duplicate_rows.extend(chunk.duplicates[:max(room, 0)])
            if chunk.contacts:
                res = await self.store.call(self.store.contacts.upsert_batch, chunk.contacts,
                                            on_duplicate=options.on_duplicate)
                report.created += res.created
                report.updated += res.updated
                report.skipped += len(res.skipped)
                room = MAX_ERRORS_LISTED - len(report.skipped_numbers)
                report.skipped_numbers.extend(res.skipped[:max(room, 0)])
            # A breath between batches for the loop and the store's writer (the parsing
            # thread holds the GIL while it runs).
            await asyncio.sleep(IMPORT_PAUSE_S)
        return report

    async def export_csv(self, *, group_id: str | None = None, tag: str | None = None) -> AsyncIterator[bytes]:
        """The contacts as CSV (UTF-8): number, name, groups, tags (| between), opted_out,
        then one column per field name. Two passes: the field names, then the rows."""
        names: set[str] = set()
        after: str | None = None
        while True:
            page = await self.store.call(self.store.contacts.list_contacts, after=after, limit=PAGE,
                                         group_id=group_id, tag=tag)
            if not page:
                break
            for c in page:
                names.update(c["fields"])
            after = page[-1]["id"]
        fields = sorted(names)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\r\n")
        w.writerow(["number", "name", "groups", "tags", "opted_out", *(neutralise(f) for f in fields)])
        yield buf.getvalue().encode()
        after = None
        while True:
            page = await self.store.call(self.store.contacts.list_contacts, after=after, limit=PAGE,
                                         group_id=group_id, tag=tag)
            if not page:
                break
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\r\n")
            for c in page:
                w.writerow([c["number"], neutralise(c["name"] or ""), neutralise("|".join(c["groups"])),
                            neutralise("|".join(c["tags"])), "yes" if c["opted_out"] else "",
                            *(neutralise(c["fields"].get(f, "")) for f in fields)])
            yield buf.getvalue().encode()
            after = page[-1]["id"]


@dataclass(frozen=True, slots=True)
class Validation:
    """What starting a campaign now would do."""

    recipients: int
    opted_out: int
    missing_count: int
    missing: tuple[dict[str, Any], ...]  # the first contacts with a variable missing
    parts: int  # SMS parts the texts make, all recipients together

    def as_dict(self) -> dict[str, Any]:
        return {"recipients": self.recipients, "opted_out": self.opted_out, "missing_count": self.missing_count,
                "missing": list(self.missing), "parts": self.parts, "ok": self.missing_count == 0
                and self.recipients > 0}


class CampaignService:
    def __init__(self, store: Store, intake: IntakeService, config: Callable[[], Config],
                 wake: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.intake = intake
        self.config = config
        self.wake = wake

    # --- reading ------------------------------------------------------------------------

    async def get(self, caller: Caller, campaign_id: str) -> dict[str, Any] | None:
        """The campaign with its progress, if the caller may see it (its own; admin all)."""
        row = await self.store.call(self.store.campaigns.get_campaign, campaign_id)
        if row is None or not ("admin" in caller.scopes or row["api_key_id"] == caller.id):
            return None
        row["progress"] = await self.store.call(self.store.campaigns.progress, campaign_id)
        return row

    async def list(self, caller: Caller, *, state: str | None = None, after: str | None = None,
                   limit: int = 50) -> list[dict[str, Any]]:
        owner = IntakeService.owner_filter(caller)
        rows = await self.store.call(self.store.campaigns.list_campaigns, owner=owner, state=state, after=after,
                                     limit=limit)
        for r in rows:
            r["progress"] = await self.store.call(self.store.campaigns.progress, r["id"])
        return rows

    # --- creating -----------------------------------------------------------------------

    async def _target(self, body: Mapping[str, Any]) -> tuple[str, str]:
        given = [k for k in ("group", "tag", "contacts") if body.get(k) is not None]
        if len(given) != 1:
            raise ValidationError("invalid_target", "give exactly one of group (an id or name), tag, contacts",
                                  field="group")
        kind = given[0]
        value = body[kind]
        if kind == "contacts":
            if (not isinstance(value, list) or not 0 < len(value) <= MAX_TARGET_CONTACTS
                    or not all(isinstance(v, str) and 0 < len(v) <= 32 for v in value)):
                raise ValidationError("invalid_target", f"contacts must be a list of 1-{MAX_TARGET_CONTACTS} "
                                      "contact ids", field="contacts")
            return kind, json.dumps(sorted(set(value)))
        value = _text(value, kind, MAX_GROUP_CHARS if kind == "group" else MAX_TAG_CHARS, empty=False)
        if kind == "group":
            g = await self.store.call(self.store.contacts.get_group, value)
            if g is None:
                g = await self.store.call(self.store.contacts.group_by_name, value)
            if g is None:
                raise ValidationError("unknown_group", f"no group {value!r}", field="group")
            value = g["id"]
        return kind, value

    async def create(self, caller: Caller, body: Mapping[str, Any]) -> dict[str, Any]:
        name = _text(body.get("name"), "name", MAX_CAMPAIGN_NAME, empty=False)
        template = check_template(body.get("template"))
        kind, target = await self._target(body)
        prio_raw = body.get("priority", "low")
        if isinstance(prio_raw, str) and prio_raw in PRIORITIES:
            prio_raw = PRIORITIES[prio_raw]
        if isinstance(prio_raw, bool) or not isinstance(prio_raw, int) or not -10 <= prio_raw <= -1:
            raise ValidationError("invalid_field", "priority must be low or an integer from -10 to -1: campaigns "
                                  "go after transactional traffic (normal is 0)", field="priority")
        window = body.get("window", self.config().campaigns.window)
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 1000:
            raise ValidationError("invalid_field", "window must be an integer from 1 to 1000", field="window")
        sim = body.get("sim")
        if sim is not None and (not isinstance(sim, str) or sim not in await self.intake.modem_ids()):
            raise ValidationError("unknown_sim", f"no modem with id {sim!r}", field="sim")
        start_at = parse_time(body["start_at"], "start_at") if body.get("start_at") is not None else None
        unknown = set(body) - {"name", "template", "group", "tag", "contacts", "priority", "window", "sim",
                               "start_at"}
        if unknown:
            raise ValidationError("unknown_field", f"unknown field(s): {', '.join(sorted(unknown))}")
        return await self.store.call(self.store.campaigns.create_campaign, name=name, template=template,
                                     target_kind=kind, target=target, api_key_id=caller.id, priority=prio_raw,
                                     window=window, sim=sim, start_at=start_at)

    # --- validating and starting --------------------------------------------------------

    async def _recipients(self, camp: Mapping[str, Any]) -> tuple[list[tuple[str, str, str]], Validation]:
        kind, target = camp["target_kind"], camp["target"]
        value: Any = json.loads(target) if kind == "contacts" else target
        contacts: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page = await self.store.call(self.store.contacts.target_contacts, kind, value, after=after, limit=PAGE)
            contacts.extend(page)
            if len(page) < PAGE:
                break
            after = page[-1]["id"]
        cfg = self.config().dispatch
        template = camp["template"]

        def render() -> tuple[list[tuple[str, str, str]], list[dict[str, Any]], int, int]:
            out, missing, n_missing, parts = [], [], 0, 0
            wanted = placeholders(template)
            for c in contacts:
                values = variables_of(c)
                lacking = sorted(v for v in wanted if not values.get(v))
                if lacking:
                    n_missing += 1
                    if len(missing) < MAX_MISSING_LISTED:
                        missing.append({"contact_id": c["id"], "number": c["number"], "variables": lacking})
                    continue
                text = render_template(template, values)
                try:
                    _t, pv = text_preview(text, smart_encoding=cfg.smart_encoding, max_parts=cfg.max_parts)
                except ValidationError as exc:
                    n_missing += 1
                    if len(missing) < MAX_MISSING_LISTED:
                        missing.append({"contact_id": c["id"], "number": c["number"], "error": exc.message})
                    continue
                parts += pv.parts
                out.append((c["id"], c["number"], text))
            return out, missing, n_missing, parts

        out, missing, n_missing, parts = await asyncio.to_thread(render)
        opted = 0
        for i in range(0, len(out), PAGE):
            opted += len(await self.intake.opted_out([n for _c, n, _t in out[i:i + PAGE]]))
        return out, Validation(len(out) + n_missing, opted, n_missing, tuple(missing), parts)

    async def _own(self, caller: Caller, campaign_id: str) -> dict[str, Any] | None:
        row = await self.store.call(self.store.campaigns.get_campaign, campaign_id)
        if row is None or not ("admin" in caller.scopes or row["api_key_id"] == caller.id):
            return None
        return row

    async def validate(self, caller: Caller, campaign_id: str) -> Validation | None:
        camp = await self._own(caller, campaign_id)
        if camp is None:
            return None
        return (await self._recipients(camp))[1]

    async def start(self, caller: Caller, campaign_id: str) -> dict[str, Any] | None:
        """Start a draft (now, or at its start_at). Starting a campaign that started
        already changes nothing and answers its state: a retried start is harmless."""
        camp = await self._own(caller, campaign_id)
        if camp is None:
            return None
        if camp["state"] != DRAFT:
            return await self.get(caller, campaign_id)
        recipients, v = await self._recipients(camp)
        if v.missing_count:
            first = v.missing[0]
            what = (f"{{{', '.join(first['variables'])}}} missing" if "variables" in first else first["error"])
            raise ValidationError("missing_variable", f"{v.missing_count} of {v.recipients} recipients cannot be "
                                  f"sent the template (first: {first['number']}: {what}); fill their fields or "
                                  "change the template (POST .../validate lists them)", field="template")
        if not recipients:
            raise ValidationError("no_recipients", "the campaign's target has no contacts", field="group")
        await self.store.call(self.store.campaigns.start_campaign, campaign_id, recipients, at=camp["start_at"])
        self.wake()
        return await self.get(caller, campaign_id)

    # --- pause, resume, cancel ------------------------------------------------------------

    async def pause(self, caller: Caller, campaign_id: str) -> dict[str, Any] | None:
        """Stop feeding the queue. Messages already queued (at most the window) are left
        to go out: they were accepted, and cancelling them would need new idempotency
        keys to re-feed them, which is how a recipient gets a message twice."""
        return await self._move(caller, campaign_id, (RUNNING, SCHEDULED), PAUSED)

    async def resume(self, caller: Caller, campaign_id: str) -> dict[str, Any] | None:
        camp = await self._own(caller, campaign_id)
        if camp is None:
            return None
        future = camp["start_at"] is not None and camp["start_at"] > dt.datetime.now(dt.UTC)
        return await self._move(caller, campaign_id, (PAUSED,), SCHEDULED if future and not camp["started_at"]
                                else RUNNING)

    async def cancel(self, caller: Caller, campaign_id: str) -> dict[str, Any] | None:
        """Stop for good: recipients not yet fed are cancelled, and so are the campaign's
        messages still queued (not those a modem already took)."""
        camp = await self._own(caller, campaign_id)
        if camp is None:
            return None
        if await self.store.call(self.store.campaigns.set_state, campaign_id, (DRAFT, SCHEDULED, RUNNING, PAUSED),
                                 CANCELLED):
            for mid in await self.store.call(self.store.campaigns.queued_message_ids, campaign_id):
                await self.store.call(self.store.messages.cancel, mid)
        return await self.get(caller, campaign_id)

    async def _move(self, caller: Caller, campaign_id: str, from_states: Sequence[str],
                    to: str) -> dict[str, Any] | None:
        camp = await self._own(caller, campaign_id)
        if camp is None:
            return None
        if camp["state"] == to:
            return await self.get(caller, campaign_id)  # paused twice: harmless
        if not await self.store.call(self.store.campaigns.set_state, campaign_id, from_states, to):
            now = (await self.store.call(self.store.campaigns.get_campaign, campaign_id) or {}).get("state")
            raise ConflictError("invalid_state", f"the campaign is {now}: it cannot become {to}")
        self.wake()
        return await self.get(caller, campaign_id)

    async def delete(self, caller: Caller, campaign_id: str) -> bool | None:
        camp = await self._own(caller, campaign_id)
        if camp is None:
            return None
        if camp["state"] not in (DRAFT, COMPLETED, CANCELLED):
            raise ConflictError("invalid_state", f"the campaign is {camp['state']}: cancel it first")
        return bool(await self.store.call(self.store.campaigns.delete_campaign, campaign_id))


__all__ = ["CampaignService", "ContactsService", "ImportReport", "Validation", "idempotency_key",
           "variables_of"]
