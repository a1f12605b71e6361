"""The native API's request bodies and query parameters as pydantic models: one
source for checking requests and for the OpenAPI document (``gsmgw.api.openapi``
renders these models' JSON Schema as OpenAPI 3.0).

The models check shape and bounds (types, lengths, ranges, unknown fields); what
needs the gateway's knowledge (is this a phone number, does this template fill,
is this modem known) is the intake service's. A model's failure is reported with
the same stable codes and messages as the service's own checks: each model says
in ``ERRORS`` how a failure of each field reads to callers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import pydantic
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
)

from gsmgw.domain import MessageState
from gsmgw.errors import ValidationError
from gsmgw.intake.checks import (
    MAX_NUMBER_CHARS,
    MAX_RECIPIENTS,
    MAX_TEXT_CHARS,
    MAX_TTL_S,
    MAX_VARIABLES,
    PRIORITIES,
    PRIORITY_RANGE,
)

MAX_NOTE_CHARS = 500
MIN_USSD_TIMEOUT_S = 1.0
MAX_USSD_TIMEOUT_S = 120.0
# Event and delivery ids are 64-bit integers in the store: 18 digits always fit.
MAX_ID_DIGITS = 18

Loc = tuple[int | str, ...]


@dataclass(frozen=True)
class Err:
    """How a field's failure reads: a code and a message (``{input!r}`` and ``{key!r}``,
    the name under the field, are filled in). ``inner`` is used for a failure below the
    field (a value of an object), ``by_type`` for particular pydantic error types."""

    code: str
    message: str
    inner: tuple[str, str] | None = None
    by_type: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    field: str | None = ""  # "" = the field's own name; None = no field

    def explain(self, error: Mapping[str, Any]) -> ValidationError:
        loc: Loc = tuple(error["loc"])
        code, message = self.code, self.message
        if self.inner is not None and len(loc) > 1:
            code, message = self.inner
        code, message = self.by_type.get(error["type"], (code, message))
        message = message.replace("{input!r}", repr(error.get("input"))).replace(
            "{key!r}", repr(loc[1]) if len(loc) > 1 else "")
        return ValidationError(code, message, field=str(loc[0]) if self.field == "" else self.field)


class Recipients(Err):
    """``to``: one number, a list of them, or ``{to, variables}`` objects (with a template)."""

    def explain(self, error: Mapping[str, Any]) -> ValidationError:
        loc: Loc = tuple(error["loc"])
        if len(loc) == 2 and loc[1] == "many":
            return ValidationError("invalid_number", f"give 1 to {MAX_RECIPIENTS} recipients", field="to")
        if len(loc) < 5:  # ("to",) missing, ("to", "one"), ("to", "many", i, "number")
            return _number_error(error, "to")
        i, name = loc[2], loc[4]
        if error["type"] == "extra_forbidden":
            return ValidationError("unknown_field", "a recipient object has only to and variables", field=f"to[{i}]")
        if name == "to":
            return _number_error(error, f"to[{i}].to")
        return VARIABLES.explain({**error, "loc": (f"to[{i}].variables", *loc[5:])})


def _number_error(error: Mapping[str, Any], field: str) -> ValidationError:
    if error["type"] == "string_too_long":
        return ValidationError("invalid_number", "number is too long", field=field)
    return ValidationError("invalid_number", "a phone number must be a non-empty string", field=field)


def _flag(name: str) -> Err:
    return Err("invalid_field", f"{name} must be true or false")


NUMBER = Err("invalid_number", "a phone number must be a non-empty string",
             by_type={"string_too_long": ("invalid_number", "number is too long")})
VARIABLES = Err("invalid_variables", f"variables must be an object of at most {MAX_VARIABLES} names",
                inner=("invalid_variables", "variable {key!r} must be a string or a number"))


def _limit(default: int, maximum: int) -> tuple[Any, Err]:
    return (Field(default=default, ge=1, le=maximum),
            Err("invalid_query", "limit must be an integer",
                by_type={t: ("invalid_query", f"limit must be from 1 to {maximum}")
                         for t in ("greater_than_equal", "less_than_equal")}))


class Model(BaseModel):
    """A request body or a query: checked by :func:`parse`, documented by its JSON Schema."""

    # defer_build: a model's validator is built when first used (or its schema asked
    # for): the ~30 bodies and queries of routes a gateway may never see are not held
    # (about 0.5 MB resident at import, issue 17). SendRequest is built below.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)
    ERRORS: ClassVar[dict[str, Err]] = {}
    # Fields whose failure is reported first, when several fail (the others in field order).
    FIRST: ClassVar[tuple[str, ...]] = ()
    # One error for any failure (a body too small to explain field by field).
    INVALID: ClassVar[tuple[str, str] | None] = None


M = TypeVar("M", bound=Model)


def parse(model: type[M], data: Mapping[str, Any]) -> M:
    """``data`` checked against ``model``; a failure is a ValidationError with a stable code."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise explain(model, exc.errors(include_url=False)) from None


def explain(model: type[Model], errors: Sequence[Mapping[str, Any]]) -> ValidationError:
    if model.INVALID is not None:
        return ValidationError(*model.INVALID)
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden" and len(e["loc"]) == 1)
    if unknown and issubclass(model, Query):
        return ValidationError("unknown_parameter", f"unknown query parameter(s): {', '.join(unknown)}",
                               field=unknown[0])
    if unknown:
        return ValidationError("unknown_field", f"unknown field(s): {', '.join(unknown)}")
    names = [f.alias or n for n, f in model.model_fields.items()]
    order = [*model.FIRST, *names]

    def rank(e: Mapping[str, Any]) -> int:
        loc = tuple(e["loc"])
        tag = f"{loc[0]}#count" if len(loc) == 2 and loc[1] == "many" else str(loc[0]) if loc else ""
        return order.index(tag) if tag in order else len(order)

    first = min(errors, key=rank)
    name = str(first["loc"][0]) if first["loc"] else ""
    spec = model.ERRORS.get(name)
    if spec is None:  # a field without its own wording: still a stable code and the field
        return ValidationError("invalid_field", f"{name}: {first['msg']}", field=name or None)
    return spec.explain(first)


# --- bodies -------------------------------------------------------------------------------

Number = Annotated[StrictStr, Field(max_length=MAX_NUMBER_CHARS)]
Text = Annotated[StrictStr, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
Variables = Annotated[dict[str, StrictStr | StrictInt | StrictFloat], Field(max_length=MAX_VARIABLES)]
Time = Annotated[StrictStr, Field(json_schema_extra={"format": "date-time"})]


class Recipient(Model):
    to: Number
    variables: Variables | None = None


def _one_or_many(value: Any) -> str:
    return "many" if isinstance(value, list) else "one"


def _number_or_recipient(value: Any) -> str:
    return "recipient" if isinstance(value, dict) else "number"


RecipientItem = Annotated[
    Annotated[Number, Tag("number")] | Annotated[Recipient, Tag("recipient")], Discriminator(_number_or_recipient)]
To = Annotated[
    Annotated[Number, Tag("one")]
    | Annotated[list[RecipientItem], Field(min_length=1, max_length=MAX_RECIPIENTS), Tag("many")],
    Discriminator(_one_or_many),
    Field(description="E.164 (+447700900123) or national in api.default_region; one or a list; "
                      "with a template, a recipient may be {to, variables}"),
]


class SendRequest(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, json_schema_extra={"example": {"to": "+15551234567", "text": "Your code is 123456", "priority": "otp"}})
    to: To
    text: Text | None = Field(default=None, description="the text; give text or template")
    template: Text | None = Field(
        default=None, description="text with {name} placeholders ({{ and }} for braces), filled per recipient "
                                  "from variables and the recipient's own variables")
    variables: Variables | None = None
    priority: Annotated[StrictInt, Field(ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])] | Literal[
        "low", "normal", "high", "otp"] | None = None
    send_at: Time | None = Field(default=None, description="send no earlier than this (with a time zone)")
    ttl: Annotated[StrictFloat, Field(ge=1, le=MAX_TTL_S, allow_inf_nan=False)] | None = Field(
        default=None, description="seconds the message stays valid (from send_at or now)")
    valid_until: Time | None = None
    sim: StrictStr | None = Field(default=None, description="id of the modem to send from")
    flash: StrictBool = False
    # None (absent) = the [dispatch] default; an explicit null is refused, as before.
    delivery_report: StrictBool = None  # type: ignore[assignment]
    transactional: StrictBool = Field(default=False, description=(
        "a receipt, code or alert, not marketing: also to numbers that opted out (STOP), and not held by "
        "recipient quiet hours or SIM pacing"))
    resend_unknown: StrictBool = None  # type: ignore[assignment]
    callback_url: StrictStr | None = Field(default=None,
                                           description="per-message webhook; host in webhooks.allowed_hosts")

    FIRST: ClassVar[tuple[str, ...]] = ("to#count", "text", "template")
    ERRORS: ClassVar[dict[str, Err]] = {
        "to": Recipients("invalid_number", ""),
        "text": Err("invalid_text", "text must be a non-empty string",
                    by_type={"string_too_long": ("text_too_long", f"text is longer than {MAX_TEXT_CHARS} characters")}),
        "template": Err("invalid_text", "template must be a non-empty string"),
        "variables": VARIABLES,
        "priority": Err("invalid_field", "priority must be an integer from -10 to 10 or one of "
                        + ", ".join(PRIORITIES)),
        "send_at": Err("invalid_time", "send_at must be an ISO 8601 string"),
        "valid_until": Err("invalid_time", "valid_until must be an ISO 8601 string"),
        "ttl": Err("invalid_field", f"ttl must be seconds, from 1 to {MAX_TTL_S}"),
        "sim": Err("unknown_sim", "no modem with id {input!r}"),
        "flash": _flag("flash"),
        "delivery_report": _flag("delivery_report"),
        "transactional": _flag("transactional"),
        "resend_unknown": _flag("resend_unknown"),
        "callback_url": Err("invalid_callback", "callback_url must be a string"),
    }


class PreviewRequest(Model):
    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra={"example": {"text": "hello"}})
    text: Text

    ERRORS: ClassVar[dict[str, Err]] = {"text": SendRequest.ERRORS["text"]}


class ModemPatch(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, json_schema_extra={"example": {"enabled": False}})
    enabled: StrictBool

    INVALID: ClassVar[tuple[str, str] | None] = ("invalid_field", 'send {"enabled": true|false}')


class OptOutRequest(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, json_schema_extra={"example": {"number": "+15551234567", "note": "asked by phone"}})
    number: Number
    note: Annotated[StrictStr, Field(max_length=MAX_NOTE_CHARS)] = ""

    ERRORS: ClassVar[dict[str, Err]] = {
        "number": NUMBER,
        "note": Err("invalid_field", f"note must be a string of at most {MAX_NOTE_CHARS} characters"),
    }


class UssdRequest(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, json_schema_extra={"example": {"code": "*100#", "timeout_s": 20}})
    # ASCII digits only: "*１００#" or "*²#" pass str.isdigit() and reach the modem garbled.
    code: Annotated[StrictStr, Field(pattern=r"^[0-9*#+]{1,64}$")]
    timeout_s: Annotated[StrictFloat, Field(ge=MIN_USSD_TIMEOUT_S, le=MAX_USSD_TIMEOUT_S,
                                            allow_inf_nan=False)] | None = None

    ERRORS: ClassVar[dict[str, Err]] = {
        "code": Err("invalid_ussd", 'code must be 1-64 of the ASCII characters 0-9 * # + (e.g. "*100#")'),
        "timeout_s": Err("invalid_field", f"timeout_s must be a number of seconds from {MIN_USSD_TIMEOUT_S:g} "
                         f"to {MAX_USSD_TIMEOUT_S:g}"),
    }


# --- queries ---------------------------------------------------------------------------------


class Query(Model):
    """Query parameters: strings on the wire; an unknown parameter is refused
    (``unknown_parameter``), as an unknown body field is."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NoQuery(Query):
    """A route that takes no query parameters."""


def query(model: type[M], q: Mapping[str, str]) -> M:
    """``q`` (the first value of each name) checked against ``model``."""
    return parse(model, dict(q))


_LIMIT_500, _LIMIT_500_ERR = _limit(50, 500)
_LIMIT_1000, _LIMIT_1000_ERR = _limit(100, 1000)
Cursor = Annotated[StrictStr | None, Field(description="next_cursor of the previous page")]
Digits = Annotated[StrictStr, Field(pattern=r"^[0-9]{1,18}$")]


BatchId = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{24}$", description="batch_id of a send reply")]


class MessagesQuery(Query):
    limit: int = _LIMIT_500
    state: Literal[tuple(s.value for s in MessageState)] | None = None  # type: ignore[valid-type]
    to: Number | None = Field(default=None, description="recipient number")
    batch_id: BatchId | None = None
    cursor: Cursor = None

    ERRORS: ClassVar[dict[str, Err]] = {
        "limit": _LIMIT_500_ERR,
        "state": Err("invalid_query", "unknown state {input!r}"),
        "to": NUMBER,
        "batch_id": Err("invalid_query", "batch_id must be a batch id (24 hex digits)"),
    }


class InboxQuery(Query):
    limit: int = _LIMIT_500
    complete: Literal["true", "false"] | None = None
    since: Time | None = None
    from_: Annotated[StrictStr, Field(min_length=1, max_length=MAX_NUMBER_CHARS)] | None = Field(
        default=None, alias="from", description="sender")
    sim: StrictStr | None = None
    cursor: Cursor = None
    # Messages an inbound rule tagged so (issue 19).
    tag: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_.:-]{1,40}$")] | None = Field(
        default=None, description="only messages inbound rules tagged so")

    ERRORS: ClassVar[dict[str, Err]] = {
        "limit": _LIMIT_500_ERR,
        "tag": Err("invalid_query", "tag must be 1-40 of A-Z a-z 0-9 _ . : -"),
        "complete": Err("invalid_query", "complete must be true or false"),
        "from": Err("invalid_query", f"from must be 1-{MAX_NUMBER_CHARS} printable characters"),
    }


class OptOutsQuery(Query):
    limit: int = _LIMIT_1000
    cursor: Cursor = None

    ERRORS: ClassVar[dict[str, Err]] = {"limit": _LIMIT_1000_ERR}


class DeliveriesQuery(Query):
    limit: int = _LIMIT_1000
    state: Literal["pending", "delivered", "failed"] | None = None
    cursor: Digits | None = None

    ERRORS: ClassVar[dict[str, Err]] = {
        "limit": _LIMIT_1000_ERR,
        "state": Err("invalid_query", "state must be pending, delivered or failed"),
        "cursor": Err("invalid_query", f"cursor must be an integer of 1-{MAX_ID_DIGITS} digits"),
    }


class EventsQuery(Query):
    limit: int = _LIMIT_1000
    after: Digits = Field(default="0", description="an event id")
    type: StrictStr | None = Field(default=None, description="e.g. sms:delivered")

    ERRORS: ClassVar[dict[str, Err]] = {
        "limit": _LIMIT_1000_ERR,
        "after": Err("invalid_query", f"after must be an event id (an integer of 1-{MAX_ID_DIGITS} digits)"),
    }


BODIES: tuple[type[Model], ...] = (SendRequest, PreviewRequest, ModemPatch, OptOutRequest, UssdRequest)


# --- schedules (issue 20 part 3) ----------------------------------------------------------

ScheduleId = Annotated[StrictStr, Field(pattern=r"^[0-9a-f]{24}$")]


class ScheduleRequest(Model):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, json_schema_extra={"example": {
        "name": "Monday reminder", "rrule": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0", "timezone": "Europe/Berlin",
        "to": ["+4915112345678"], "text": "Team meeting at 10:00", "missed": "once"}})
    name: Annotated[StrictStr, Field(max_length=200)] = ""
    rrule: Annotated[StrictStr, Field(min_length=1, max_length=500)] | None = Field(
        default=None, description="an RFC 5545 RRULE value, e.g. FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0 "
                                  "(in local time of timezone); give rrule or cron")
    cron: Annotated[StrictStr, Field(min_length=1, max_length=500)] | None = Field(
        default=None, description="a 5-field cron expression (minute hour day month weekday), in local time")
    timezone: Annotated[StrictStr, Field(min_length=1, max_length=64)] = Field(
        default="UTC", description="IANA time zone, e.g. Europe/Berlin")
    start: Time | None = Field(default=None, description="first possible occurrence (the RRULE's DTSTART); "
                                                         "default now")
    to: To
    text: Text | None = None
    template: Text | None = Field(default=None, description="with {name} placeholders; {date} and {time} are "
                                                            "the occurrence's local date and time")
    variables: Variables | None = None
    priority: Annotated[StrictInt, Field(ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])] | Literal[
        "low", "normal", "high", "otp"] | None = None
    sim: StrictStr | None = Field(default=None, description="id of the modem to send from")
    transactional: StrictBool = False
    missed: Literal["once", "skip"] = Field(
        default="once", description="occurrences missed while the gateway was down: once = the latest is sent, "
                                    "skip = none")

    FIRST: ClassVar[tuple[str, ...]] = ("rrule", "cron", "timezone", "to#count", "text", "template")
    ERRORS: ClassVar[dict[str, Err]] = {
        "name": Err("invalid_field", "name must be a string of at most 200 characters"),
        "rrule": Err("invalid_rrule", "rrule must be an RRULE string of 1-500 characters"),
        "cron": Err("invalid_cron", "cron must be a cron expression string of 1-500 characters"),
        "timezone": Err("invalid_timezone", "timezone must be an IANA time zone name such as \"Europe/Berlin\""),
        "start": Err("invalid_time", "start must be an ISO 8601 string"),
        "to": Recipients("invalid_number", ""),
        "text": SendRequest.ERRORS["text"],
        "template": SendRequest.ERRORS["template"],
        "variables": VARIABLES,
        "priority": SendRequest.ERRORS["priority"],
        "sim": Err("unknown_sim", "no modem with id {input!r}"),
        "transactional": _flag("transactional"),
        "missed": Err("invalid_field", "missed must be \"once\" or \"skip\""),
    }


class SchedulesQuery(Query):
    limit: int = _LIMIT_500
    cursor: Annotated[ScheduleId | None, Field(description="next_cursor of the previous page")] = None

    ERRORS: ClassVar[dict[str, Err]] = {
        "limit": _LIMIT_500_ERR,
        "cursor": Err("invalid_query", "cursor must be a schedule id (24 hex digits)"),
    }


BODIES += (ScheduleRequest,)

# The send body is every POST's: built now, so that the first message after a start
# does not pay the ~5 ms of building it.
SendRequest.model_rebuild()
