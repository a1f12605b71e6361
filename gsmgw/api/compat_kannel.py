"""Kannel's ``/cgi-bin/sendsms`` (smsbox HTTP interface), for the scripts and
monitoring tools that speak it.

Requests (``GET``, or ``POST`` form-encoded, or Kannel's ``POST`` with the text
as a ``text/plain`` body and ``X-Kannel-*`` headers)::

    curl 'http://gw:8080/cgi-bin/sendsms?username=ops&password=gsk_...&to=%2B447700900123&text=disk+full'

Parameters: ``username``/``user`` (any non-empty name) and ``password``/``pass``
(a gsmgw API key with the ``send`` scope), ``to`` (numbers separated by spaces,
which is ``+`` in a URL: write a leading ``+`` as ``%2B``), ``text``, ``from``
(accepted and ignored: the SIM's number is the sender), ``coding`` (0 = GSM
text, 2 = UCS-2 text; 1 = 8-bit binary is refused), ``charset`` (of ``text``;
UTF-8 by default, UTF-16BE with ``coding=2``), ``mclass`` (0 = flash),
``validity`` and ``deferred`` (minutes), ``priority`` (0-3), ``dlr-mask`` and
``dlr-url``. gsmgw picks the air encoding itself: GSM 7-bit when the text fits
it, else UCS-2.

Replies are Kannel's: ``202 0: Accepted for delivery``, ``202 3: Queued for later
delivery`` (deferred, or no modem ready now), ``403 Authorization failed for
sendsms``, ``400 ... rejected`` for bad fields, ``503 Temporal failure, try
again later.`` (rate limit, quota, queue full; with ``Retry-After``). Numbers that
are not valid or opted out are "denied receivers": the rest are sent, and the
reply lists the denied ones.

``dlr-url`` (to a host in ``webhooks.allowed_hosts``) is requested with ``GET``
when a state in ``dlr-mask`` is reached: 1 delivered, 2 undelivered (failed
after it left the modem, or expired), 8 accepted by the SMSC (sent), 16 refused
before it left (failed on submit, expired or cancelled in the queue). The URL's
escapes are replaced (values URL-encoded): ``%d`` the DLR type, ``%A`` its text
(``ACK/``, ``NACK/reason``, ``Delivered``, ``Undelivered: reason``), ``%p``/``%q``
the recipient, ``%P``/``%Q`` the ``from`` given, ``%t``/``%T`` the time (UTC, and
Unix seconds), ``%i`` the modem id, ``%I`` the gsmgw message id, ``%F`` the
TP-MRs sent, ``%n`` the username, ``%o`` the account, ``%c`` coding, ``%m``
mclass, ``%C`` charset, ``%b``/``%a`` the text, ``%%`` a percent sign; others
are empty. The request is kept with the message (so it survives a restart) and
made once per state, a few tries at most.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from urllib.parse import parse_qsl, quote

from aiohttp import web

from gsmgw.api.auth import own_auth
from gsmgw.api.context import INTAKE, SERVICES, Services
from gsmgw.api.errors import read_body, retry_after_header
from gsmgw.api.event_follower import follower
from gsmgw.domain import EventType, event_family
from gsmgw.errors import AdmissionError, ValidationError
from gsmgw.intake import Caller, IntakeService, SendRequest
from gsmgw.urls import host_allowed, target

DOOR = "kannel"
MAX_DLR_URL_CHARS = 2000
PRIORITY = {0: 0, 1: 3, 2: 6, 3: 9}  # Kannel 0 (lowest) .. 3 (highest) -> gsmgw -10..10
DLR_DELIVERED, DLR_UNDELIVERED, DLR_BUFFERED, DLR_SMSC_ACK, DLR_SMSC_NACK = 1, 2, 4, 8, 16

ACCEPTED = "0: Accepted for delivery"
QUEUED = "3: Queued for later delivery"
AUTH_FAILED = "Authorization failed for sendsms"
TEMPORAL = "Temporal failure, try again later."

HEADER_FIELDS = {
    "X-Kannel-Username": "username", "X-Kannel-Password": "password", "X-Kannel-From": "from",
    "X-Kannel-To": "to", "X-Kannel-Coding": "coding", "X-Kannel-DLR-Mask": "dlr-mask",
    "X-Kannel-DLR-Url": "dlr-url", "X-Kannel-Validity": "validity", "X-Kannel-Deferred": "deferred",
    "X-Kannel-Priority": "priority", "X-Kannel-MClass": "mclass", "X-Kannel-Account": "account",
}


class Rejected(Exception):
    def __init__(self, status: int, text: str, retry_after: str | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.retry_after = retry_after


def reply(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain", charset="utf-8")


async def _raw_args(request: web.Request) -> dict[str, str]:
    """CGI variables as latin-1 strings holding the raw bytes (``text`` may be in
    any charset, e.g. UTF-16BE with coding=2); the first of a repeated name wins."""
    args: dict[str, str] = {}

    def add(pairs: list[tuple[str, str]]) -> None:
        for k, v in pairs:
            args.setdefault(k, v)

    add(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True, encoding="latin-1"))
    if request.method == "POST":
        body = await read_body(request)
        ctype = request.content_type
        if ctype == "application/x-www-form-urlencoded":
            add(parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="latin-1"))
        elif ctype == "text/plain" and body:
            for header, name in HEADER_FIELDS.items():
                if header in request.headers:
                    args.setdefault(name, request.headers[header].encode("utf-8", "surrogateescape")
                                    .decode("latin-1"))
            args.setdefault("text", body.decode("latin-1"))
            if request.charset:
                args.setdefault("charset", request.charset)
        elif body:
            raise Rejected(400, "Invalid content-type")
    return args


def _str(args: dict[str, str], *names: str) -> str | None:
    for n in names:
        if n in args:
            try:
                return args[n].encode("latin-1").decode("utf-8")
            except UnicodeDecodeError:
                raise Rejected(400, f"{n} field misformed, rejected") from None
    return None


def _int(args: dict[str, str], name: str, label: str, lo: int, hi: int) -> int | None:
    raw = _str(args, name, name.replace("-", ""))
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise Rejected(400, f"{label} field misformed, rejected") from None
    if value == -1:  # Kannel's "undefined"
        return None
    if not lo <= value <= hi:
        raise Rejected(400, f"{label} field misformed, rejected")
    return value


def _text(args: dict[str, str], coding: int) -> str:
    if "text" not in args or args["text"] == "":
        raise Rejected(400, "Empty text not allowed, rejected.")
    charset = _str(args, "charset") or ("UTF-16BE" if coding == 2 else "UTF-8")
    try:
        return args["text"].encode("latin-1").decode(charset)
    except (LookupError, UnicodeDecodeError, ValueError, TypeError):
        raise Rejected(400, "Charset or body misformed, rejected") from None


def _dlr(args: dict[str, str], svc: Services) -> tuple[int, str | None]:
    mask = _int(args, "dlr-mask", "DLR-Mask", 0, 31) or 0
    url = _str(args, "dlr-url", "dlrurl")
    if not url:
        return mask, None
    if len(url) > MAX_DLR_URL_CHARS or not url.isprintable():
        raise Rejected(400, "DLR-URL field misformed, rejected")
    where = target(url)
    if where is None:
        raise Rejected(400, "DLR-URL field misformed, rejected")
    if not host_allowed(url, svc.cfg.webhooks.allowed_hosts):
        raise Rejected(400, f"DLR-URL host {where[0]}:{where[1]} is not in webhooks.allowed_hosts, rejected")
    return mask, url


async def sendsms(request: web.Request) -> web.Response:
    try:
        return await _sendsms(request)
    except Rejected as exc:
        resp = reply(exc.status, exc.text)
        if exc.retry_after:
            resp.headers["Retry-After"] = exc.retry_after
        return resp


async def _authorise(intake: IntakeService, args: dict[str, str]) -> tuple[Caller, str]:
    user = _str(args, "username", "user")
    password = _str(args, "password", "pass")
    if not user or not password:
        raise Rejected(403, AUTH_FAILED)
    caller = await intake.authenticate(password)
    if caller is None:
        raise Rejected(403, AUTH_FAILED)
    wait_s = intake.take_request(caller)
    if wait_s > 0:
        raise Rejected(503, TEMPORAL, retry_after_header(wait_s))
    if not caller.may("send"):
        raise Rejected(403, AUTH_FAILED)
    return caller, user


async def _sendsms(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    intake = request.app[INTAKE]
    args = await _raw_args(request)
    caller, user = await _authorise(intake, args)
    to = _str(args, "to")
    if to is None:
        raise Rejected(400, "Missing receiver number, rejected")
    if to.strip() == "":
        raise Rejected(400, "Empty receiver number not allowed, rejected")
    coding = _int(args, "coding", "Coding", 0, 2) or 0
    if coding == 1:
        raise Rejected(400, "Coding field misformed, rejected: 8-bit binary messages (coding=1) are not supported")
    mclass = _int(args, "mclass", "MClass", 0, 3)
    validity_min = _int(args, "validity", "Validity", 0, 30 * 24 * 60)
    deferred_min = _int(args, "deferred", "Deferred", 0, 365 * 24 * 60)
    priority = _int(args, "priority", "Priority", 0, 3)
    account = _str(args, "account") or ""
    if len(account) > 64 or any(c in account for c in "[]\n\r"):
        raise Rejected(400, "Account field misformed or too long, rejected")
    mask, dlr_url = _dlr(args, svc)
    text = _text(args, coding)
    try:
        intake.preview(text)
    except ValidationError as exc:
        raise Rejected(400, f"{exc.message}, rejected") from None

    # Kannel sends to the receivers it can and names the others ("denied receivers").
    allowed: list[str] = []
    denied: list[str] = []
    for raw in to.split():
        try:
            n = intake.number(raw)
        except ValidationError:
            denied.append(raw)
            continue
        if n not in allowed:
            allowed.append(n)
    blocked = await intake.opted_out(allowed)
    denied += [n for n in allowed if n in blocked]
    allowed = [n for n in allowed if n not in blocked]
    if not allowed:
        raise Rejected(400, "Number(s) has/have been denied by white- and/or black-lists.")

    send_at = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=deferred_min) if deferred_min else None
    door_data = None
    if dlr_url and mask:
        # Kept with each message: the dlr-url request survives a restart.
        door_data = {"mask": mask, "url": dlr_url, "user": user, "from": _str(args, "from") or "",
                     "account": account, "coding": coding, "mclass": mclass, "charset": _str(args, "charset") or "",
                     "host": svc.host}
    req = SendRequest(
        to=allowed, text=text, priority=PRIORITY[priority or 0], send_at=send_at,
        ttl_s=validity_min * 60 if validity_min else None, flash=mclass == 0,
        delivery_report=True if mask & (DLR_DELIVERED | DLR_UNDELIVERED | DLR_BUFFERED) else None,
        door=DOOR, door_data=door_data,
    )
    try:
        await intake.submit(caller, req)
    except AdmissionError as exc:
        raise Rejected(503, TEMPORAL, retry_after_header(exc.retry_after_s)) from None
    except ValidationError as exc:
        raise Rejected(400, f"{exc.message}, rejected") from None
    ready = any(m.get("state") == "ready" and m.get("enabled") for m in svc.modems())
    text_out = QUEUED if deferred_min or not ready else ACCEPTED
    if denied:
        text_out += " Denied receivers are: " + " ".join(denied)
    return reply(202, text_out)


# --- delivery reports -------------------------------------------------------------------

_ESCAPE = re.compile(r"%(.)", re.DOTALL)


def expand(template: str, values: dict[str, str]) -> str:
    """Kannel's URL escapes: ``%X`` → the URL-encoded value of X (empty if unknown)."""

    def sub(m: re.Match[str]) -> str:
        ch = m.group(1)
        if ch == "%":
            return "%25"
        return quote(values.get(ch, ""), safe="")

    return _ESCAPE.sub(sub, template)


def dlr_type(event_type: str, row: dict[str, Any]) -> tuple[int, str] | None:
    """(Kannel DLR type, its %A text) for a message event, or None for none."""
    reason = row.get("error_text") or row.get("error_code") or ""
    left_modem = row.get("sent_at") is not None
    if event_type == EventType.SMS_SENT:
        return DLR_SMSC_ACK, "ACK/"
    if event_type == EventType.SMS_DELIVERED:
        return DLR_DELIVERED, "Delivered"
    if event_type in (EventType.SMS_FAILED, EventType.SMS_EXPIRED, EventType.SMS_CANCELLED):
        if left_modem:
            return DLR_UNDELIVERED, f"Undelivered: {reason or event_type[4:]}"
        return DLR_SMSC_NACK, f"NACK/{reason or event_type[4:]}"
    return None


def dlr_values(row: dict[str, Any], info: dict[str, Any], dlr: int, text: str, at: dt.datetime) -> dict[str, str]:
    at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    to = row["to_number"]
    sender = str(info.get("from") or "")
    tp_mrs = ",".join(str(p["tp_mr"]) for p in row.get("parts", []) if p.get("tp_mr") is not None)
    return {
        "d": str(dlr), "A": text, "p": to, "q": to, "P": sender,
        "Q": "+" + sender[2:] if sender.startswith("00") else sender,
        "t": at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"), "T": str(int(at.timestamp())),
        "i": str(row.get("modem_id") or ""), "I": row["id"], "F": tp_mrs, "n": str(info.get("user") or ""),
        "o": str(info.get("account") or ""), "c": str(info.get("coding") or 0),
        "m": "" if info.get("mclass") is None else str(info["mclass"]), "C": str(info.get("charset") or ""),
        "b": row["text"], "a": row["text"],
    }


def _event_handler(app: web.Application) -> Any:
    async def on_event(event: dict[str, Any]) -> None:
        if event_family(event["type"]) != "sms" or not event.get("message_id"):
            return
        svc = app[SERVICES]
        # Every message's events come here: the door first (the follower reads it with the
        # event), the message only if it is ours.
        door = event["door"] if "door" in event else await svc.store.call(svc.store.messages.door_of,
                                                                          event["message_id"])
        if door != DOOR:
            return
        row = await svc.store.call(svc.store.messages.get_message, event["message_id"])
        if row is None or row.get("door") != DOOR or not row.get("door_data"):
            return
        try:
            info = json.loads(row["door_data"])
            mask, template = int(info["mask"]), str(info["url"])
        except (ValueError, KeyError, TypeError):
            return
        if info.get("host", svc.host) != svc.host:
            return  # several gateways on one store: the one that took the request calls back, once
        kind = dlr_type(event["type"], row)
        if kind is None or not mask & kind[0]:
            return
        url = expand(template, dlr_values(row, info, kind[0], kind[1], event["created_at"]))
        # The host was checked at intake; check the expanded URL too, and against
        # today's list (an admin may have removed the host since).
        if not host_allowed(url, svc.cfg.webhooks.allowed_hosts):
            return
        follower(app).post("GET", url, what="kannel-dlr")

    return on_event


def add_routes(app: web.Application) -> None:
    follower(app).subscribe(_event_handler(app))
    handler = own_auth(sendsms)
    app.router.add_route("GET", "/cgi-bin/sendsms", handler)
    app.router.add_route("POST", "/cgi-bin/sendsms", handler)


__all__ = ["add_routes", "dlr_type", "expand"]
