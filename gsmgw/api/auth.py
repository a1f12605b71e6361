"""Who is calling: API keys from the request headers, checked through the intake
service (with its key cache and per-key rate), and scopes."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from gsmgw.api.context import INTAKE
from gsmgw.api.errors import Handler, another_door, forbidden, too_many, unauthorized
from gsmgw.intake import Caller, plausible_secret

# "/" only redirects to the console's sign-in page (when the console is mounted).
PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz", "/api/v1/openapi.json", "/health"})

# A route handler with this attribute set checks credentials itself (Kannel's
# username/password parameters) through the intake service; the middleware lets it by.
OWN_AUTH_ATTR = "gsmgw_own_auth"

CALLER = web.RequestKey("caller", Caller)


def own_auth(handler: Handler) -> Handler:
    setattr(handler, OWN_AUTH_ATTR, True)
    return handler


def presented_key(request: web.Request) -> str | None:
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


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (request.path in PUBLIC_PATHS or getattr(request.match_info.handler, OWN_AUTH_ATTR, False)
            or another_door(request)):
        return await handler(request)
    presented = presented_key(request)
    if not presented:
        return unauthorized("an API key is required (Authorization: Bearer KEY)")
    intake = request.app[INTAKE]
    caller = await intake.authenticate(presented)
    if caller is None:
        return unauthorized("invalid or revoked API key" if plausible_secret(presented) else "invalid API key")
    request[CALLER] = caller
    wait_s = intake.take_request(caller)
    if wait_s > 0:
        return too_many("rate_limited", f"this key may make {caller.rate_per_s} requests per second", wait_s)
    return await handler(request)


def require_scope(request: web.Request, scope: str) -> Caller:
    """The caller, if its key has ``scope`` (or admin); else a JSON 403."""
    caller = request[CALLER]
    if not caller.may(scope):
        raise forbidden(f"this key lacks the {scope!r} scope")
    return caller
