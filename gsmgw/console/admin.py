"""Modems (drain/enable, USSD, balance, restart, what the probe found), webhook
deliveries with retry, and API keys (create, shown once; revoke)."""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web

from gsmgw.console.core import (
    PREFIX,
    SESSION_COOKIE,
    console_of,
    error_page,
    flash,
    needs,
    render,
    request_session,
    see_other,
)
from gsmgw.console.live import tile
from gsmgw.errors import ATTimeout, ModemError

log = logging.getLogger(__name__)

USSD_RE = re.compile(r"[0-9*#+]{1,64}")
KEY_NAME_RE = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
SCOPES = ("read", "send", "admin")
DELIVERY_STATES = ("pending", "delivered", "failed")


# --- modems -----------------------------------------------------------------------------


@needs("read")
async def modems(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    rows = await c.q.modems()
    counts = await c.q.sim_counts_today()
    balances = c.deps.balances()
    notes = request_session(request).notes
    items = []
    for m in rows:
        items.append({"m": m, "t": tile(m, counts.get(m["id"]), balances.get(m["id"])),
                      "note": notes.pop(m["id"], "")})
    return render(request, "modems.html", {
        "section": "modems",
        "items": items,
        "can_ussd": c.deps.ussd is not None,
        "can_balance": c.deps.check_balance is not None and bool(c.deps.config().inbound.balance_ussd),
        "can_restart": c.deps.restart_modem is not None,
    })


def _local_modem(request: web.Request) -> str | None:
    c = console_of(request)
    modem_id = request.match_info["id"]
    return modem_id if modem_id in {m["id"] for m in c.deps.modems()} else None


def _back(modem_id: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{PREFIX}modems#modem-{modem_id}")


async def _set_enabled(request: web.Request, enabled: bool) -> web.StreamResponse:
    c = console_of(request)
    modem_id = _local_modem(request)
    if modem_id is None or not c.deps.set_modem_enabled(modem_id, enabled):
        return error_page(request, 404, "Not found", "There is no such modem on this host.")
    who = request_session(request).caller.name
    log.info("console: %s %s modem %s", who, "enabled" if enabled else "drained", modem_id)
    await c.q.audit(f"console:key:{request_session(request).caller.id}", "modem.patch", modem_id,
                    {"enabled": enabled})
    flash(request, "ok", f"{modem_id} {'enabled' if enabled else 'drained: it finishes what it sends and takes nothing new'}.")
    raise _back(modem_id)


@needs("admin")
async def drain(request: web.Request) -> web.StreamResponse:
    return await _set_enabled(request, False)


@needs("admin")
async def enable(request: web.Request) -> web.StreamResponse:
    return await _set_enabled(request, True)


@needs("admin")
async def ussd(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    modem_id = _local_modem(request)
    if modem_id is None or c.deps.ussd is None:
        return error_page(request, 404, "Not found", "There is no such modem on this host.")
    form = await request.post()
    code = str(form.get("code", "")).strip()
    if not USSD_RE.fullmatch(code):
        flash(request, "error", "A USSD code is 1-64 of 0-9 * # + (for example *100#).")
        raise _back(modem_id)
    try:
        answer = await c.deps.ussd(modem_id, code, None)
    except ATTimeout as exc:
        flash(request, "error", f"{modem_id}: no USSD answer ({exc}).")
    except (ModemError, KeyError, ValueError) as exc:
        flash(request, "error", f"{modem_id}: USSD failed: {exc}")
    else:
        request_session(request).notes[modem_id] = f"{code} → {answer}"
        flash(request, "ok", f"{modem_id}: USSD {code} answered.")
    raise _back(modem_id)


@needs("admin")
async def balance(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    modem_id = _local_modem(request)
    if modem_id is None or c.deps.check_balance is None:
        return error_page(request, 404, "Not found", "There is no such modem on this host.")
    try:
        info = await c.deps.check_balance(modem_id)
    except ATTimeout as exc:
        flash(request, "error", f"{modem_id}: no answer to the balance request ({exc}).")
    except (ModemError, KeyError, ValueError) as exc:
        flash(request, "error", f"{modem_id}: balance check failed: {exc}")
    else:
        flash(request, "ok", f"{modem_id}: balance {info.get('value', '?')} ({info.get('text', '')}).")
    raise _back(modem_id)


@needs("admin")
async def restart(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    modem_id = _local_modem(request)
    if modem_id is None or c.deps.restart_modem is None:
        return error_page(request, 404, "Not found", "There is no such modem on this host.")
    log.info("console: %s restarts modem %s", request_session(request).caller.name, modem_id)
    ok = await c.deps.restart_modem(modem_id)
    flash(request, "ok" if ok else "error", f"{modem_id}: {'restarting' if ok else 'could not restart'}.")
    raise _back(modem_id)


# --- webhooks ------------------------------------------------------------------------------


@needs("admin")
async def webhooks(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    state = request.query.get("state", "")
    if state not in DELIVERY_STATES:
        state = ""
    w = c.deps.config().webhooks
    return render(request, "webhooks.html", {
        "section": "webhooks",
        "subscriptions": [{"url": s.url, "events": list(s.events)} for s in w.subscription],
        "signed": bool(w.signing_secret),
        "counts": await c.q.delivery_counts(),
        "deliveries": await c.q.deliveries(state or None),
        "state": state,
        "states": DELIVERY_STATES,
    })


@needs("admin")
async def webhooks_retry(request: web.Request) -> web.StreamResponse:
    n = await console_of(request).q.retry_failed_webhooks()
    flash(request, "ok", f"{n} failed deliver{'y' if n == 1 else 'ies'} will be tried again.")
    raise web.HTTPSeeOther(f"{PREFIX}webhooks")


# --- keys -----------------------------------------------------------------------------------


async def _keys_context(request: web.Request, **extra: Any) -> dict[str, Any]:
    keys = await console_of(request).q.keys()
    return {"section": "keys", "keys": keys, "scopes": SCOPES, "created": None, "error": "",
            "v": {"name": "", "scopes": ["read"], "rate_per_s": "0", "daily_quota": "0"}, **extra}


@needs("admin")
async def keys(request: web.Request) -> web.StreamResponse:
    return render(request, "keys.html", await _keys_context(request))


def _count(raw: Any, field: str, maximum: int) -> int:
    text = str(raw or "0").strip()
    if not text.isdigit() or int(text) > maximum:
        raise ValueError(f"{field}: a whole number from 0 to {maximum}")
    return int(text)


@needs("admin")
async def create_key(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    form = await request.post()
    name = str(form.get("name", "")).strip()
    scopes = [s for s in SCOPES if s in form.getall("scope", [])]
    v = {"name": name[:100], "scopes": scopes, "rate_per_s": str(form.get("rate_per_s", "0"))[:12],
         "daily_quota": str(form.get("daily_quota", "0"))[:12]}
    try:
        if not KEY_NAME_RE.fullmatch(name):
            raise ValueError("name: 1-100 characters, no control characters")
        if not scopes:
            raise ValueError("scopes: choose at least one")
        rate = _count(v["rate_per_s"], "rate per second", 1_000_000)
        quota = _count(v["daily_quota"], "daily quota", 1_000_000_000)
    except ValueError as exc:
        return render(request, "keys.html", await _keys_context(request, error=str(exc), v=v), status=422)
    key_id, secret = await c.q.create_key(name, scopes, rate, quota,
                                          actor=f"console:key:{request_session(request).caller.id}")
    log.info("console: %s created key %s (%s) with scopes %s", request_session(request).caller.name, key_id,
             name, ",".join(scopes))
    # Shown in this response only: not kept by the console, not in a redirect, not cached.
    return render(request, "keys.html", await _keys_context(request, created={"id": key_id, "secret": secret,
                                                                              "name": name}))


@needs("admin")
async def revoke_key(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    key_id = request.match_info["id"]
    actor = f"console:key:{request_session(request).caller.id}"
    if not re.fullmatch(r"[0-9A-Za-z]{1,16}", key_id) or not await c.q.revoke_key(key_id, actor=actor):
        flash(request, "error", "No such key, or it was already revoked.")
        raise web.HTTPSeeOther(f"{PREFIX}keys")
    me = request_session(request).caller
    c.sessions.drop_key(key_id)  # sessions signed in with it end now
    log.info("console: %s revoked key %s", me.name, key_id)
    if key_id == me.id:
        resp = see_other(f"{PREFIX}login?why=revoked")
        resp.del_cookie(SESSION_COOKIE, path=PREFIX)
        return resp
    flash(request, "ok", f"Key {key_id} revoked: its console sessions ended, and every door refuses it within 10 s.")
    raise web.HTTPSeeOther(f"{PREFIX}keys")


def add_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/modems", modems)
    r.add_post("/modems/{id}/drain", drain)
    r.add_post("/modems/{id}/enable", enable)
    r.add_post("/modems/{id}/ussd", ussd)
    r.add_post("/modems/{id}/balance", balance)
    r.add_post("/modems/{id}/restart", restart)
    r.add_get("/webhooks", webhooks)
    r.add_post("/webhooks/retry", webhooks_retry)
    r.add_get("/keys", keys)
    r.add_post("/keys", create_key)
    r.add_post("/keys/{id}/revoke", revoke_key)


__all__ = ["add_routes"]
