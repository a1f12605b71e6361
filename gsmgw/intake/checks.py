"""Validation and normalisation of what callers send: pure functions, no I/O.

Each takes the raw value (whatever its type) and either returns it normalised
or raises :class:`~gsmgw.errors.ValidationError` with a stable code, a message
for humans, and the field at fault. Every door shows these codes and messages
(mapped to its own error shape), so they are part of the API.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

import phonenumbers

from gsmgw.errors import CodecError, ValidationError
from gsmgw.intake.types import Recipient
from gsmgw.sms import Preview, preview
from gsmgw.urls import host_allowed, target

MAX_RECIPIENTS = 1000
MAX_TEXT_CHARS = 10_000
MAX_NUMBER_CHARS = 32
MAX_VARIABLES = 100
MAX_TTL_S = 30 * 86400
MAX_IDEMPOTENCY_KEY_CHARS = 200
MAX_URL_CHARS = 2048
PRIORITIES = {"low": -5, "normal": 0, "high": 5, "otp": 9}
PRIORITY_RANGE = (-10, 10)
# Times a caller may give: in this century. Beyond that a date is a mistake, and
# date arithmetic near year 1 or 9999 overflows (a send_at plus a ttl, a validity).
EARLIEST_TIME = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST_TIME = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # C0 controls and DEL: never part of a number
# {name} placeholders only (no attribute access or format specs); {{ and }} are literal braces.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")


def normalise_number(raw: Any, region: str, field: str = "to") -> str:
    """A phone number as E.164 (``+447700900123``); national numbers in ``region``."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError("invalid_number", "a phone number must be a non-empty string", field=field)
    if _CONTROL.search(raw):
        raise ValidationError("invalid_number", "control characters are not allowed in a number", field=field)
    if len(raw) > MAX_NUMBER_CHARS:
        raise ValidationError("invalid_number", "number is too long", field=field)
    try:
        num = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError("invalid_number", f"{raw!r} is not a phone number: {exc}", field=field) from None
    # "Possible" (right length for the country) rather than "valid" (an assigned range):
    # number plans change faster than the phonenumbers package, and test ranges such as
    # +1 555 01xx are legitimate targets on private networks.
    known_country = phonenumbers.region_code_for_country_code(num.country_code or 0) != "ZZ"
    if not known_country or not phonenumbers.is_possible_number(num):
        raise ValidationError("invalid_number", f"{raw!r} is not a possible phone number", field=field)
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def parse_time(raw: Any, field: str) -> dt.datetime:
    """An aware datetime (or ISO 8601 text with a zone) as UTC, in 2000-2099."""
    if isinstance(raw, dt.datetime):
        value = raw
    elif isinstance(raw, str) and len(raw) <= 64:
        try:
            value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError("invalid_time", f"{field}: {raw!r} is not ISO 8601", field=field) from None
    else:
        raise ValidationError("invalid_time", f"{field} must be an ISO 8601 string", field=field)
    if value.tzinfo is None:
        raise ValidationError("invalid_time", f"{field} needs a time zone (e.g. Z or +02:00)", field=field)
    try:
        value = value.astimezone(dt.UTC)  # 9999-12-31T23:59:59-23:59 is past year 9999 in UTC
    except OverflowError:
        value = None
    if value is None or not EARLIEST_TIME <= value < LATEST_TIME:
        raise ValidationError("invalid_time", f"{field} must be from 2000-01-01 to 2099-12-31 (UTC)", field=field)
    return value


def well_formed(value: str, field: str, code: str = "invalid_text") -> str:
    """Refuse text that is not valid Unicode (a lone UTF-16 surrogate such as \\ud800):
    it cannot be stored as UTF-8, encoded for a modem, nor shown."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(code, f"{field} is not valid Unicode text (a lone surrogate)", field=field) from None
    return value


def flag(value: Any, name: str, default: bool) -> bool:
    """true/false; None = the default."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValidationError("invalid_field", f"{name} must be true or false", field=name)
    return value


def priority(raw: Any) -> int:
    """-10..10, or a name; None = normal (0)."""
    if raw is None:
        return 0
    if isinstance(raw, str) and raw in PRIORITIES:
        return PRIORITIES[raw]
    lo, hi = PRIORITY_RANGE
    if isinstance(raw, int) and not isinstance(raw, bool) and lo <= raw <= hi:
        return raw
    raise ValidationError(
        "invalid_field", "priority must be an integer from -10 to 10 or one of low, normal, high, otp",
        field="priority",
    )


def ttl_s(raw: Any) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 1 <= raw <= MAX_TTL_S:
        raise ValidationError("invalid_field", f"ttl must be seconds, from 1 to {MAX_TTL_S}", field="ttl")
    return float(raw)


def variables(raw: Any, field: str) -> dict[str, str]:
    """Template variables: at most 100 names, each a string or a number."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or len(raw) > MAX_VARIABLES:
        raise ValidationError("invalid_variables", f"variables must be an object of at most {MAX_VARIABLES} names",
                              field=field)
    out = {}
    for k, v in raw.items():
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise ValidationError("invalid_variables", f"variable {k!r} must be a string or a number", field=field)
        out[well_formed(str(k), field, "invalid_variables")] = well_formed(str(v), field, "invalid_variables")
    return out


def render_template(template: str, values: Mapping[str, str], field: str = "template") -> str:
    """Fill ``{name}`` placeholders; a missing name is an error, never an empty hole."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "{{":
            return "{"
        if m.group(0) == "}}":
            return "}"
        name = m.group(1)
        if name not in values:
            raise ValidationError("missing_variable", f"template variable {{{name}}} has no value", field=field)
        return values[name]

    return _PLACEHOLDER.sub(sub, template)


def check_template(template: Any) -> str:
    if not isinstance(template, str) or not template or len(template) > MAX_TEXT_CHARS:
        raise ValidationError("invalid_text", "template must be a non-empty string", field="template")
    return well_formed(template, "template")


def text_preview(text: Any, *, smart_encoding: bool, max_parts: int) -> tuple[str, Preview]:
    """The text as given and what sending it costs (encoding, parts)."""
    if not isinstance(text, str) or text == "":
        raise ValidationError("invalid_text", "text must be a non-empty string", field="text")
    if len(text) > MAX_TEXT_CHARS:
        raise ValidationError("text_too_long", f"text is longer than {MAX_TEXT_CHARS} characters", field="text")
    well_formed(text, "text")
    try:
        pv = preview(text, smart_encoding=smart_encoding, max_parts=max_parts)
    except CodecError as exc:
        raise ValidationError("text_too_long", str(exc), field="text") from None
    return text, pv


def callback_url(url: Any, allowed_hosts: Collection[str]) -> str:
    """A per-message webhook: http(s), to a host the admin allowed."""
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS or not url.isprintable():
        raise ValidationError("invalid_callback", f"callback_url must be a URL of at most {MAX_URL_CHARS} "
                              "printable characters", field="callback_url")
    well_formed(url, "callback_url", "invalid_callback")
    where = target(url)
    if where is None:
        raise ValidationError("invalid_callback", "callback_url must be an http(s) URL", field="callback_url")
    if not host_allowed(url, allowed_hosts):
        raise ValidationError("callback_not_allowed", f"{where[0]}:{where[1]} is not in webhooks.allowed_hosts",
                              field="callback_url")
    return url


def idempotency_key(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not 0 < len(raw) <= MAX_IDEMPOTENCY_KEY_CHARS or not raw.isprintable():
        raise ValidationError("invalid_field",
                              f"idempotency_key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} printable characters",
                              field="idempotency_key")
    return well_formed(raw, "idempotency_key", "invalid_field")


def recipients_and_texts(
    to: Any, text: Any, template: Any, common_variables: Any, *, region: str,
    preview_of: Callable[[Any], tuple[str, Preview]],
) -> list[tuple[str, str, Preview]]:
    """(E.164 number, text, preview) per recipient, from ``text`` or ``template`` +
    variables (the common ones, overridden by each recipient's own)."""
    recipients = list(to) if isinstance(to, list | tuple) else [to]
    if not recipients or len(recipients) > MAX_RECIPIENTS:
        raise ValidationError("invalid_number", f"give 1 to {MAX_RECIPIENTS} recipients", field="to")
    has_text, has_template = text is not None, template is not None
    if has_text == has_template:
        raise ValidationError("invalid_text", "give either text or template (with variables)", field="text")
    if has_text:
        if any(isinstance(r, Recipient) for r in recipients):
            raise ValidationError("invalid_number", "per-recipient variables need a template", field="to")
        text, pv = preview_of(text)
        return [(normalise_number(r, region), text, pv) for r in recipients]
    template = check_template(template)
    common = variables(common_variables, "variables")
    out = []
    cache: dict[str, tuple[str, Preview]] = {}
    for i, r in enumerate(recipients):
        if isinstance(r, Recipient):
            number = normalise_number(r.to, region, field=f"to[{i}].to")
            own = variables(r.variables, f"to[{i}].variables")
        else:
            number, own = normalise_number(r, region), {}
        rendered = render_template(template, {**common, **own})
        if rendered not in cache:
            cache[rendered] = preview_of(rendered)
        out.append((number, *cache[rendered]))
    return out
