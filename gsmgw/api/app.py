"""aiohttp application factory: the only module tree that imports aiohttp.web."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import phonenumbers
from aiohttp import web

from gsmgw import __version__
from gsmgw.api.metrics import METRICS, Metrics, content_type, metrics_middleware
from gsmgw.config import Config
from gsmgw.domain import MessageState
from gsmgw.errors import CodecError, ValidationError
from gsmgw.sms import preview
from gsmgw.store import ApiKey, EnqueueResult, NewMessage, Store

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_RECIPIENTS = 1000
MAX_TEXT_CHARS = 10_000


@dataclass
class Services:
    """What the API needs from the rest of the gateway; wired by gsmgw.daemon."""

    cfg: Config
    store: Store
    notify_work: Callable[[], None]
    modems: Callable[[], list[dict[str, Any]]]
    set_modem_enabled: Callable[[str, bool], bool]
    started_at: float = dataclasses.field(default_factory=time.time)
    sent_total: Callable[[], int] = lambda: 0
    # number -> (SIM group or None, fallback seconds or None for strict)
    route: Callable[[str], tuple[str | None, float | None]] = lambda _n: (None, None)
    host: str = "local"


REMOTE_FIELDS = ("id", "host", "port", "state", "state_reason", "enabled", "imei", "iccid", "imsi", "operator",
                 "model", "manufacturer", "own_number", "signal_csq")


async def all_modems(svc: Services) -> list[dict[str, Any]]:
    """This host's modems, live, then those other hosts of a shared store last reported."""
    local = svc.modems()
    ids = {m["id"] for m in local}
    rows = await svc.store.call(svc.store.modems.list_modems)
    remote = []
    for r in rows:
        if r["id"] in ids or r["host"] == svc.host:
            continue
        view = {k: r.get(k) for k in REMOTE_FIELDS}
        view.update(remote=True, updated_at=_iso(r["updated_at"]), busy=None, sent_parts=None,
                    failed_parts=None, last_error="", resting=None, limits=None)
        remote.append(view)
    return [*({**m, "remote": False} for m in local), *remote]


SERVICES = web.AppKey("services", Services)
API_KEY = web.RequestKey("api_key", ApiKey)


# --- errors -------------------------------------------------------------------


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ValidationError as exc:
        extra = {"field": exc.field} if exc.field else {}
        return error_response(422, exc.code, exc.message, **extra)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "body_too_large", "request body is larger than the configured limit")
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
            resp = error_response(exc.status, code, exc.reason)
            if "Allow" in exc.headers:  # RFC 9110: a 405 names the methods that are allowed
                resp.headers["Allow"] = exc.headers["Allow"]
            return resp
        raise
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; see the gateway log")


# --- auth ---------------------------------------------------------------------

PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/api/v1/openapi.json", "/health"})

# A route handler with this attribute set checks credentials itself (Kannel's
# username/password parameters) through authenticate(); the middleware lets it by.
OWN_AUTH_ATTR = "gsmgw_own_auth"


def own_auth(handler: Handler) -> Handler:
    setattr(handler, OWN_AUTH_ATTR, True)
    return handler


def _presented_key(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    if auth[:6].lower() == "basic ":
        # HTTP Basic (SMS Gateway for Android clients): any username, the API key as password.
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, sep, password = decoded.partition(":")
        return (password.strip() or None) if sep else None
    key = request.headers.get("X-API-Key")
    return key.strip() if key else None


def unauthorized(message: str) -> web.Response:
    resp = error_response(401, "unauthorized", message)
    # RFC 9110: a 401 names the schemes; Basic clients that wait for a challenge need it.
    resp.headers["WWW-Authenticate"] = 'Bearer realm="gsmgw", Basic realm="gsmgw", charset="UTF-8"'
    return resp


async def authenticate(request: web.Request, presented: str | None) -> web.Response | None:
    """Check a presented API key: None (and ``request[API_KEY]`` set) if it may
    proceed, else the 401 or 429 response to give."""
    if not presented:
        return unauthorized("an API key is required (Authorization: Bearer KEY)")
    if len(presented) > 200 or not presented.isascii() or not presented.isprintable():
        return unauthorized("invalid API key")
    svc = request.app[SERVICES]
    cache = request.app[KEY_CACHE]
    digest = hashlib.sha256(presented.encode()).digest()
    now = time.monotonic()
    hit, key = cache.get(digest, now)
    if not hit:
        key = await svc.store.call(svc.store.keys.verify_api_key, presented)
        cache.put(digest, key, now)
    if key is None:
        return unauthorized("invalid or revoked API key")
    request[API_KEY] = key
    wait = request.app[LIMITER].take_request(key, time.monotonic())
    if wait > 0:
        request.app[METRICS].rejected.labels("rate").inc()
        return too_many("rate_limited", f"this key may make {key.rate_per_s} requests per second", wait)
    return None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS or getattr(request.match_info.handler, OWN_AUTH_ATTR, False):
        return await handler(request)
    refused = await authenticate(request, _presented_key(request))
    if refused is not None:
        return refused
    return await handler(request)


class KeyCache:
    """Keys verified in the last few seconds, by SHA-256 of the presented key.

    Most requests then need no database read. A revoked key (``gsmgw keys
    revoke``, possibly on another host) stops working within ``ttl_s``; a wrong
    key is remembered for ``negative_ttl_s`` so that guessing does not load the
    database either.
    """

    def __init__(self, ttl_s: float = 10.0, negative_ttl_s: float = 2.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.max_entries = max_entries
        self._entries: dict[bytes, tuple[float, ApiKey | None]] = {}

    def get(self, digest: bytes, now: float) -> tuple[bool, ApiKey | None]:
        entry = self._entries.get(digest)
        if entry is None or entry[0] <= now:
            return False, None
        return True, entry[1]

    def put(self, digest: bytes, key: ApiKey | None, now: float) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries = {d: e for d, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[digest] = (now + (self.ttl_s if key is not None else self.negative_ttl_s), key)


KEY_CACHE = web.AppKey("key_cache", KeyCache)


class QueueDepth:
    """The queue depth for the 'queue full' check, counted at most once a second
    (a COUNT over a million queued rows is not free) and advanced by our own intake."""

    def __init__(self, max_age_s: float = 1.0) -> None:
        self.max_age_s = max_age_s
        self._value = 0
        self._at = -1e9

    async def get(self, store: Store) -> int:
        now = time.monotonic()
        if now - self._at > self.max_age_s:
            self._at = now
            self._value = await store.call(store.messages.queue_depth)
        return self._value

    def add(self, n: int) -> None:
        self._value += n


QUEUE_DEPTH = web.AppKey("queue_depth", QueueDepth)


class KeyLimiter:
    """Per-key request rate (token bucket) and daily message quota, in memory.

    The daily count starts from the store the first time a key is seen each UTC
    day, so a restart does not reset a quota.
    """

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, last monotonic)
        self._day: dict[str, tuple[str, int]] = {}  # key id -> (UTC date, messages)

    def take_request(self, key: ApiKey, now: float) -> float:
        """0 if the request may proceed, else seconds to wait."""
        if key.rate_per_s <= 0:
            return 0.0
        tokens, last = self._buckets.get(key.id, (float(key.rate_per_s), now))
        tokens = min(float(key.rate_per_s), tokens + (now - last) * key.rate_per_s)
        if tokens < 1.0:
            self._buckets[key.id] = (tokens, now)
            return (1.0 - tokens) / key.rate_per_s
        self._buckets[key.id] = (tokens - 1.0, now)
        return 0.0

    async def quota_left(self, key: ApiKey, store: Store) -> int | None:
        if key.daily_quota <= 0:
            return None
        today = dt.datetime.now(dt.UTC).date().isoformat()
        day, used = self._day.get(key.id, ("", 0))
        if day != today:
            used = await store.call(store.messages.count_accepted_since, key.id, _utc_midnight())
            self._day[key.id] = (today, used)
        return key.daily_quota - used

    def add_messages(self, key: ApiKey, n: int) -> None:
        if key.daily_quota > 0 and key.id in self._day:
            day, used = self._day[key.id]
            self._day[key.id] = (day, used + n)


def _utc_midnight() -> dt.datetime:
    now = dt.datetime.now(dt.UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


LIMITER = web.AppKey("limiter", KeyLimiter)


def too_many(code: str, message: str, retry_after_s: float) -> web.Response:
    resp = error_response(429, code, message, retry_after_s=round(retry_after_s, 3))
    resp.headers["Retry-After"] = str(max(1, int(retry_after_s + 0.999)))
    return resp


def require_scope(request: web.Request, scope: str) -> ApiKey:
    key: ApiKey = request[API_KEY]
    if scope not in key.scopes and "admin" not in key.scopes:
        raise web.HTTPForbidden(
            text=json.dumps({"error": {"code": "forbidden", "message": f"this key lacks the {scope!r} scope"}}),
            content_type="application/json",
        )
    return key


# --- validation -----------------------------------------------------------------


def normalise_number(raw: Any, region: str, field: str = "to") -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationError("invalid_number", "a phone number must be a non-empty string", field=field)
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise ValidationError("invalid_number", "control characters are not allowed in a number", field=field)
    if len(raw) > 32:
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


def _parse_time(raw: Any, field: str) -> dt.datetime:
    if not isinstance(raw, str):
        raise ValidationError("invalid_time", f"{field} must be an ISO 8601 string", field=field)
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError("invalid_time", f"{field}: {raw!r} is not ISO 8601", field=field) from None
    if value.tzinfo is None:
        raise ValidationError("invalid_time", f"{field} needs a time zone (e.g. Z or +02:00)", field=field)
    return value.astimezone(dt.UTC)


def _bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise ValidationError("invalid_field", f"{name} must be true or false", field=name)
    return value


PRIORITIES = {"low": -5, "normal": 0, "high": 5, "otp": 9}


def _priority(raw: Any) -> int:
    if raw is None:
        return 0
    if isinstance(raw, str) and raw in PRIORITIES:
        return PRIORITIES[raw]
    if isinstance(raw, int) and not isinstance(raw, bool) and -10 <= raw <= 10:
        return raw
    raise ValidationError(
        "invalid_field", "priority must be an integer from -10 to 10 or one of low, normal, high, otp",
        field="priority",
    )


ALLOWED_FIELDS = frozenset(
    {"to", "text", "template", "variables", "priority", "send_at", "ttl", "valid_until", "sim", "flash",
     "delivery_report", "transactional", "resend_unknown", "callback_url"}
)

# {name} placeholders only (no attribute access or format specs); {{ and }} are literal braces.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")


def _variables(raw: Any, field: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > 100:
        raise ValidationError("invalid_variables", "variables must be an object of at most 100 names", field=field)
    out = {}
    for k, v in raw.items():
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise ValidationError("invalid_variables", f"variable {k!r} must be a string or a number", field=field)
        out[k] = str(v)
    return out


def render_template(template: str, variables: dict[str, str], field: str = "template") -> str:
    """Fill ``{name}`` placeholders; a missing name is a 422, never an empty hole."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "{{":
            return "{"
        if m.group(0) == "}}":
            return "}"
        name = m.group(1)
        if name not in variables:
            raise ValidationError("missing_variable", f"template variable {{{name}}} has no value", field=field)
        return variables[name]

    return _PLACEHOLDER.sub(sub, template)


def _recipients_and_texts(svc: Services, body: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(E.164 number, text, preview) per recipient, from `text` or `template` + variables."""
    raw_to = body.get("to")
    recipients = raw_to if isinstance(raw_to, list) else [raw_to]
    if not recipients or len(recipients) > MAX_RECIPIENTS:
        raise ValidationError("invalid_number", f"give 1 to {MAX_RECIPIENTS} recipients", field="to")
    has_text, has_template = body.get("text") is not None, body.get("template") is not None
    if has_text == has_template:
        raise ValidationError("invalid_text", "give either text or template (with variables)", field="text")
    region = svc.cfg.api.default_region
    if has_text:
        if any(isinstance(r, dict) for r in recipients):
            raise ValidationError("invalid_number", "per-recipient variables need a template", field="to")
        text, pv = _text_and_preview(svc, body["text"])
        return [(normalise_number(r, region), text, pv) for r in recipients]
    template = body["template"]
    if not isinstance(template, str) or not template or len(template) > MAX_TEXT_CHARS:
        raise ValidationError("invalid_text", "template must be a non-empty string", field="template")
    common = _variables(body.get("variables"), "variables")
    out = []
    cache: dict[str, tuple[str, Any]] = {}
    for i, r in enumerate(recipients):
        if isinstance(r, dict):
            if set(r) - {"to", "variables"}:
                raise ValidationError("unknown_field", "a recipient object has only to and variables",
                                      field=f"to[{i}]")
            number = normalise_number(r.get("to"), region, field=f"to[{i}].to")
            own = _variables(r.get("variables"), f"to[{i}].variables")
        else:
            number, own = normalise_number(r, region), {}
        text = render_template(template, {**common, **own})
        if text not in cache:
            cache[text] = _text_and_preview(svc, text)
        out.append((number, *cache[text]))
    return out


def _text_and_preview(svc: Services, text: Any) -> tuple[str, Any]:
    if not isinstance(text, str) or text == "":
        raise ValidationError("invalid_text", "text must be a non-empty string", field="text")
    if len(text) > MAX_TEXT_CHARS:
        raise ValidationError("text_too_long", f"text is longer than {MAX_TEXT_CHARS} characters", field="text")
    try:
        pv = preview(text, smart_encoding=svc.cfg.dispatch.smart_encoding, max_parts=svc.cfg.dispatch.max_parts)
    except CodecError as exc:
        raise ValidationError("text_too_long", str(exc), field="text") from None
    return text, pv


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ValidationError("invalid_json", "send a JSON object with Content-Type: application/json")
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValidationError("invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ValidationError("invalid_json", "the body must be a JSON object")
    return body


# --- handlers -------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


async def readyz(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    try:
        await svc.store.call(svc.store.messages.queue_depth)
    except Exception as exc:
        return error_response(503, "not_ready", f"store unavailable: {type(exc).__name__}")
    modems = svc.modems()
    ready = [m["id"] for m in modems if m.get("state") == "ready" and m.get("enabled", True)]
    if modems and not ready:
        # Messages would only queue up: say so, so that a load balancer or an operator's
        # probe does not take "the process is alive" for "SMS are going out".
        states = ", ".join(f"{m['id']}: {m.get('state')}" for m in modems)
        return error_response(503, "no_modem_ready", f"no modem is ready ({states})")
    return web.json_response({"status": "ready", "modems_ready": len(ready)})


async def post_messages(request: web.Request) -> web.Response:
    key = require_scope(request, "send")
    svc = request.app[SERVICES]
    body = await _json_body(request)
    unknown = set(body) - ALLOWED_FIELDS
    if unknown:
        raise ValidationError("unknown_field", f"unknown field(s): {', '.join(sorted(unknown))}")
    per_recipient = _recipients_and_texts(svc, body)
    numbers = [n for n, _t, _p in per_recipient]
    now = dt.datetime.now(dt.UTC)
    send_at = _parse_time(body["send_at"], "send_at") if body.get("send_at") is not None else None
    valid_until = None
    if body.get("valid_until") is not None:
        valid_until = _parse_time(body["valid_until"], "valid_until")
    if body.get("ttl") is not None:
        ttl = body["ttl"]
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl <= 30 * 86400:
            raise ValidationError("invalid_field", "ttl must be seconds, from 1 to 2592000", field="ttl")
        valid_until = (send_at or now) + dt.timedelta(seconds=ttl)
    if valid_until is not None and valid_until <= (send_at or now):
        raise ValidationError("invalid_time", "the message would expire before it could be sent", field="valid_until")
    sim = body.get("sim")
    if sim is not None and (not isinstance(sim, str) or sim not in {m["id"] for m in await all_modems(svc)}):
        raise ValidationError("unknown_sim", f"no modem with id {sim!r}", field="sim")
    callback_url = body.get("callback_url")
    if callback_url is not None:
        _check_callback(svc, callback_url)
    if not _bool(body, "transactional", False):
        await check_optouts(svc, numbers)
    refused = await admission(request, key, len(numbers))
    if refused is not None:
        return refused
    routes = {n: svc.route(n) for n in numbers}
    items = [
        NewMessage(
            to_number=n,
            route_group=routes[n][0],
            route_fallback_s=routes[n][1],
            text=text,
            encoding=str(pv.encoding),
            parts_total=pv.parts,
            priority=_priority(body.get("priority")),
            send_at=send_at,
            valid_until=valid_until,
            sim_requested=sim,
            flash=_bool(body, "flash", False),
            delivery_report=_bool(body, "delivery_report", svc.cfg.dispatch.delivery_reports),
            transactional=_bool(body, "transactional", False),
            resend_unknown=_bool(body, "resend_unknown", svc.cfg.dispatch.unknown_policy == "resend"),
            callback_url=callback_url,
        )
        for n, text, pv in per_recipient
    ]
    idem = request.headers.get("Idempotency-Key")
    if idem is not None and not (0 < len(idem) <= 200 and idem.isprintable()):
        raise ValidationError("invalid_header", "Idempotency-Key must be 1-200 printable characters")
    result = await enqueue_messages(request, key, items, idem)
    reply = {
        "id": result.message_ids[0] if len(result.message_ids) == 1 else result.batch_id,
        "batch_id": result.batch_id,
        "state": MessageState.QUEUED.value,
        # With a template, texts differ per recipient: the first's here, each one's below.
        "encoding": str(per_recipient[0][2].encoding),
        "parts": per_recipient[0][2].parts,
        "messages": [
            {"id": mid, "to": n, "encoding": str(pv.encoding), "parts": pv.parts}
            for mid, (n, _text, pv) in zip(result.message_ids, per_recipient, strict=False)
        ],
    }
    resp = web.json_response(reply, status=202)
    resp.headers["Location"] = f"/api/v1/messages/{reply['messages'][0]['id']}"
    if result.replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


async def check_optouts(svc: Services, numbers: list[str]) -> None:
    """Issue 7: numbers that sent STOP get nothing but transactional messages."""
    blocked = await svc.store.call(svc.store.optouts.opted_out, numbers)
    if blocked:
        raise ValidationError("opted_out", f"opted out (sent STOP): {', '.join(sorted(blocked))}; "
                              "mark the message \"transactional\": true if it must still go", field="to")


async def admission(request: web.Request, key: ApiKey, n: int) -> web.Response | None:
    """The 429 to give if ``n`` more messages would break the key's daily quota or
    fill the queue; None if they may be queued."""
    svc = request.app[SERVICES]
    left = await request.app[LIMITER].quota_left(key, svc.store)
    if left is not None and left < n:
        request.app[METRICS].rejected.labels("quota").inc()
        tomorrow = _utc_midnight() + dt.timedelta(days=1)
        return too_many("quota_exceeded",
                        f"this key's daily quota of {key.daily_quota} messages is used up ({max(left, 0)} left)",
                        (tomorrow - dt.datetime.now(dt.UTC)).total_seconds())
    depth = await request.app[QUEUE_DEPTH].get(svc.store)
    if depth + n > svc.cfg.api.max_queue_depth:
        request.app[METRICS].rejected.labels("queue_full").inc()
        return too_many("queue_full", "the outbound queue is full; retry later", 30.0)
    return None


async def enqueue_messages(request: web.Request, key: ApiKey, items: list[NewMessage],
                           idempotency_key: str | None) -> EnqueueResult:
    """The one durable commit of validated messages (native and compatible APIs alike)."""
    svc = request.app[SERVICES]
    result = await svc.store.call(
        svc.store.messages.enqueue,
        items,
        api_key_id=key.id,
        idempotency_key=idempotency_key,
        default_ttl_s=svc.cfg.dispatch.default_ttl_s,
        sticky_s=svc.cfg.dispatch.sticky_s,
        sticky_fallback_s=svc.cfg.dispatch.sticky_fallback_s,
    )
    svc.notify_work()
    if not result.replayed:
        request.app[QUEUE_DEPTH].add(len(result.message_ids))
        request.app[LIMITER].add_messages(key, len(result.message_ids))
        request.app[METRICS].accepted.inc(len(result.message_ids))
    return result


def _check_callback(svc: Services, url: Any) -> None:
    from urllib.parse import urlsplit

    if not isinstance(url, str):
        raise ValidationError("invalid_callback", "callback_url must be a string", field="callback_url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("invalid_callback", "callback_url must be an http(s) URL", field="callback_url")
    if parts.hostname not in svc.cfg.webhooks.allowed_hosts:
        raise ValidationError(
            "callback_not_allowed",
            f"host {parts.hostname!r} is not in webhooks.allowed_hosts",
            field="callback_url",
        )


async def post_preview(request: web.Request) -> web.Response:
    require_scope(request, "send")
    svc = request.app[SERVICES]
    body = await _json_body(request)
    _text, pv = _text_and_preview(svc, body.get("text"))
    return web.json_response(_jsonable(dataclasses.asdict(pv) if dataclasses.is_dataclass(pv) else dict(pv)))


def _iso(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    return value


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, dt.datetime):
        return _iso(obj)
    if hasattr(obj, "value") and isinstance(getattr(obj, "value", None), str):
        return obj.value
    return obj


def message_view(row: dict[str, Any]) -> dict[str, Any]:
    err = {"code": row["error_code"], "message": row["error_text"]} if row.get("error_code") else None
    out = {
        "id": row["id"],
        "batch_id": row["batch_id"],
        "to": row["to_number"],
        "text": row["text"],
        "state": row["state"],
        "encoding": row["encoding"],
        "parts_total": row["parts_total"],
        "priority": row["priority"],
        "sim": row["modem_id"],
        "sim_requested": row["sim_requested"],
        "flash": row["flash"],
        "delivery_report": row["delivery_report"],
        "transactional": row["transactional"],
        "attempts": row["attempts"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "send_at": _iso(row["send_at"]),
        "valid_until": _iso(row["valid_until"]),
        "sent_at": _iso(row["sent_at"]),
        "delivered_at": _iso(row["delivered_at"]),
        "error": err,
    }
    if "parts" in row:
        out["parts"] = [
            {
                "seq": p["seq"],
                "state": p["state"],
                "sim": p["modem_id"],
                "tp_mr": p["tp_mr"],
                "sent_at": _iso(p["sent_at"]),
                "delivered_at": _iso(p["delivered_at"]),
                "report_status": p["report_status"],
                "error": {"code": p["error_code"], "message": p["error_text"]} if p["error_code"] else None,
            }
            for p in row["parts"]
        ]
    return out


async def get_message(request: web.Request) -> web.Response:
    require_scope(request, "read")
    svc = request.app[SERVICES]
    row = await svc.store.call(svc.store.messages.get_message, request.match_info["id"])
    if row is None:
        return error_response(404, "not_found", "no such message")
    return web.json_response(message_view(row))


async def delete_message(request: web.Request) -> web.Response:
    require_scope(request, "send")
    svc = request.app[SERVICES]
    done, state = await svc.store.call(svc.store.messages.cancel, request.match_info["id"])
    if state is None:
        return error_response(404, "not_found", "no such message")
    if not done:
        return error_response(409, "not_cancellable", f"the message is {state}; only queued messages can be cancelled",
                              state=state)
    return web.json_response({"id": request.match_info["id"], "state": state})


async def list_messages(request: web.Request) -> web.Response:
    require_scope(request, "read")
    svc = request.app[SERVICES]
    q = request.query
    try:
        limit = int(q.get("limit", "50"))
    except ValueError:
        raise ValidationError("invalid_query", "limit must be an integer", field="limit") from None
    if not 1 <= limit <= 500:
        raise ValidationError("invalid_query", "limit must be from 1 to 500", field="limit")
    state = q.get("state")
    if state is not None and state not in {s.value for s in MessageState}:
        raise ValidationError("invalid_query", f"unknown state {state!r}", field="state")
    to = normalise_number(q["to"], svc.cfg.api.default_region) if "to" in q else None
    rows = await svc.store.call(
        svc.store.messages.list_messages, state=state, to_number=to, before_id=q.get("cursor"), limit=limit
    )
    items = [message_view(r) for r in rows]
    next_cursor = items[-1]["id"] if len(items) == limit else None
    return web.json_response({"items": items, "next_cursor": next_cursor})


async def get_modems(request: web.Request) -> web.Response:
    require_scope(request, "read")
    svc = request.app[SERVICES]
    return web.json_response({"items": await all_modems(svc)})


async def patch_modem(request: web.Request) -> web.Response:
    require_scope(request, "admin")
    svc = request.app[SERVICES]
    body = await _json_body(request)
    if set(body) - {"enabled"} or not isinstance(body.get("enabled"), bool):
        raise ValidationError("invalid_field", "send {\"enabled\": true|false}")
    if not svc.set_modem_enabled(request.match_info["id"], body["enabled"]):
        return error_response(404, "not_found", "no such modem")
    return web.json_response({"id": request.match_info["id"], "enabled": body["enabled"]})


async def get_status(request: web.Request) -> web.Response:
    require_scope(request, "read")
    svc = request.app[SERVICES]
    counts = await svc.store.call(svc.store.messages.counts_by_state)
    modems = await all_modems(svc)
    uptime_s = time.time() - svc.started_at
    return web.json_response(
        {
            "version": __version__,
            "uptime_s": round(uptime_s, 1),
            "queue_depth": counts.get("queued", 0) + counts.get("sending", 0),
            "messages_by_state": counts,
            "sent_since_start": svc.sent_total(),
            "modems": [
                {k: m[k] for k in ("id", "host", "state", "enabled", "busy", "operator", "signal_csq",
                                   "sent_parts", "failed_parts", "last_error")}
                for m in modems
            ],
            "host": svc.host,
            "modems_ready": sum(1 for m in modems if m["state"] == "ready" and m["enabled"]),
        }
    )


async def get_metrics(request: web.Request) -> web.Response:
    require_scope(request, "read")
    svc = request.app[SERVICES]
    metrics = request.app[METRICS]
    metrics.pool.counts = await svc.store.call(svc.store.messages.counts_by_state)
    body = metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type()})


def create_app(services: Services) -> web.Application:
    app = web.Application(
        middlewares=[metrics_middleware, errors_middleware, auth_middleware],
        client_max_size=services.cfg.api.max_body_bytes,
    )
    app[SERVICES] = services
    app[METRICS] = Metrics(services.modems)
    app[LIMITER] = KeyLimiter()
    app[KEY_CACHE] = KeyCache()
    app[QUEUE_DEPTH] = QueueDepth()
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/api/v1/metrics", get_metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_post("/api/v1/messages", post_messages)
    app.router.add_post("/api/v1/messages/preview", post_preview)
    app.router.add_get("/api/v1/messages", list_messages)
    app.router.add_get("/api/v1/messages/{id}", get_message)
    app.router.add_delete("/api/v1/messages/{id}", delete_message)
    app.router.add_get("/api/v1/modems", get_modems)
    app.router.add_patch("/api/v1/modems/{id}", patch_modem)
    app.router.add_get("/api/v1/status", get_status)
    from gsmgw.api import compat_android, compat_kannel, inbound, openapi

    inbound.add_routes(app)
    openapi.add_routes(app)
    compat_android.add_routes(app)
    compat_kannel.add_routes(app)
    return app
