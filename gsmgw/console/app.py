"""The console's aiohttp sub-application: the guard every request passes, sign-in,
sign-out, static files, and mounting on the API's application.

Every request but the sign-in page and the static files needs a session; every
change (POST) needs the session's CSRF token too, and must come from this origin.
Each page and action counts against the signed-in key's request rate, as an API
request would; the live feed (Server-Sent Events, chart data, a message's
timeline while it changes) does not.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from urllib.parse import quote

from aiohttp import web

from gsmgw.console.core import (
    CONSOLE,
    CSRF_FIELD,
    CSRF_HEADER,
    KEY_RECHECK_S,
    LOGIN_COOKIE,
    PREFIX,
    SESSION,
    SESSION_COOKIE,
    Console,
    Handler,
    client_address,
    console_of,
    error_page,
    needs,
    public,
    render,
    safe_next,
    secure,
    see_other,
    set_cookie,
)
from gsmgw.console.deps import ConsoleDeps, may

log = logging.getLogger(__name__)


# --- the guard --------------------------------------------------------------------------

def _to_login(request: web.Request, why: str = "") -> web.StreamResponse:
    target = PREFIX + "login"
    nxt = request.path_qs if request.method == "GET" and request.path != PREFIX else ""
    query = []
    if nxt and nxt != PREFIX:
        query.append("next=" + quote(nxt, safe=""))
    if why:
        query.append("why=" + why)
    if query:
        target += "?" + "&".join(query)
    if request.headers.get("HX-Request") == "true":
        resp = web.Response(status=401, text="signed out")
        resp.headers["HX-Redirect"] = target
        return resp
    if request.path == PREFIX + "events":
        return web.Response(status=401, text="signed out")
    return see_other(target)


def same_origin(request: web.Request) -> bool:
    """A browser names the page a POST came from; it must be this site."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser that names origins: the CSRF token decides
        return True
    return origin == f"{request.scheme}://{request.host}"


def same_token(presented: str, expected: str) -> bool:
    """Constant-time comparison; a caller's non-ASCII junk is simply unequal (as bytes)."""
    return bool(expected) and secrets.compare_digest(presented.encode("utf-8", "replace"),
                                                     expected.encode("utf-8", "replace"))


async def presented_csrf(request: web.Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    c = console_of(request)
    unmatched = getattr(request.match_info, "http_exception", None)
    if unmatched is not None:  # no such page (404), or not with this method (405)
        if request.path == PREFIX.rstrip("/"):
            raise web.HTTPFound(PREFIX)
        raise unmatched
    if getattr(handler, "console_public", False):
        return await handler(request)
    scope = getattr(handler, "console_scope", None)
    if scope is None:  # a route without a declared policy is a bug; refuse rather than expose
        return error_page(request, 404, "Not found", "There is no such page.")
    token = request.cookies.get(SESSION_COOKIE)
    session = c.sessions.get(token)
    if session is None:
        return _to_login(request, "expired" if token else "")
    if c.sessions.clock() - session.checked_at > KEY_RECHECK_S:
        if not await c.q.key_active(session.caller.id):
            c.sessions.drop_key(session.caller.id)
            return _to_login(request, "revoked")
        session.checked_at = c.sessions.clock()
    request[SESSION] = session
    if request.method not in ("GET", "HEAD"):
        if not same_origin(request):
            return error_page(request, 403, "Refused", "This change did not come from a page of this console.")
        if not same_token(await presented_csrf(request), session.csrf):
            return error_page(request, 403, "Refused",
                              "The form's security token is missing or stale. Reload the page and try again.")
    if scope != "signed-in" and not may(session.caller, scope):
        return error_page(request, 403, "Not allowed",
                          f"The key you signed in with ({session.caller.name}) lacks the {scope!r} scope.")
    if getattr(handler, "console_rate", True):
        wait_s = c.deps.intake.take_request(session.caller)
        if wait_s > 0:
            return error_page(request, 429, "Slow down",
                              f"This key may make {getattr(session.caller, 'rate_per_s', '?')} requests per "
                              f"second; try again in {wait_s:.1f} s.",
                              headers={"Retry-After": str(max(1, int(wait_s + 0.999)))})
    return await handler(request)


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        resp = await _guard(request, handler)
    except web.HTTPException as exc:
        if exc.status < 400:
            secure(exc)
            raise
        if exc.status == 413:
            resp = error_page(request, 413, "Too large", "The form is larger than the gateway accepts.")
        elif exc.status == 405:
            resp = error_page(request, 405, "Not allowed", "This page does not take that method.",
                              headers={"Allow": exc.headers.get("Allow", "")})
        elif exc.status == 404:
            resp = error_page(request, 404, "Not found", "There is no such page.")
        else:
            resp = error_page(request, exc.status, exc.reason, exc.text or exc.reason)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("console: internal error on %s %s", request.method, request.path)
        resp = error_page(request, 500, "Internal error", "Something went wrong; the gateway log has the details.")
    if not resp.prepared:
        secure(resp, cache=getattr(resp, "console_cacheable", False))
    return resp


# --- sign-in, sign-out, static ------------------------------------------------------------

WHY = {
    "expired": "Your session ended; sign in again.",
    "revoked": "The key this session used was revoked.",
    "signed-out": "You are signed out.",
}


@public
async def login_page(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    if c.sessions.get(request.cookies.get(SESSION_COOKIE), touch=False) is not None:
        return see_other(safe_next(request.query.get("next")))
    return _login_form(request, notice=WHY.get(request.query.get("why", ""), ""))


def _login_form(request: web.Request, *, error: str = "", notice: str = "", status: int = 200) -> web.Response:
    token = secrets.token_urlsafe(24)
    resp = render(request, "login.html", {"signin_token": token, "error": error, "notice": notice,
                                          "next": safe_next(request.query.get("next"))}, status=status)
    set_cookie(resp, request, LOGIN_COOKIE, token, max_age=3600)
    return resp


@public
async def login(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    form = await request.post()
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    field = form.get("signin", "")
    if not same_origin(request) or not cookie or not isinstance(field, str) \
            or not same_token(cookie, field):
        return _login_form(request, error="The sign-in form was stale; please try again.", status=403)
    client = client_address(request)
    wait_s = c.throttle.wait_s(client)
    if wait_s > 0:
        resp = _login_form(request, error=f"Too many failed attempts; wait {wait_s:.0f} s.", status=429)
        resp.headers["Retry-After"] = str(max(1, int(wait_s + 0.999)))
        return resp
    secret = form.get("key", "")
    caller = await c.deps.intake.authenticate(secret.strip() if isinstance(secret, str) else None)
    # The intake remembers good keys for a few seconds; a key revoked just now must not
    # open a session, so ask the store once more (one indexed read per sign-in).
    if caller is not None and not await c.q.key_active(caller.id):
        caller = None
    if caller is None:
        c.throttle.failed(client)
        log.info("console: failed sign-in from %s", client)
        return _login_form(request, error="That key is not valid (or was revoked).", status=401)
    wait_s = c.deps.intake.take_request(caller)
    if wait_s > 0:
        return _login_form(request, error=f"This key is rate limited; try again in {wait_s:.1f} s.", status=429)
    old = request.cookies.get(SESSION_COOKIE)
    c.sessions.drop(old)  # a new session id at every sign-in (no fixation)
    token, _session = c.sessions.create(caller)
    log.info("console: %s (key %s) signed in from %s", caller.name, caller.id, client)
    nxt = form.get("next")
    resp = see_other(safe_next(nxt if isinstance(nxt, str) else None))
    set_cookie(resp, request, SESSION_COOKIE, token)
    resp.del_cookie(LOGIN_COOKIE, path=PREFIX)
    return resp


@needs("read", rate=False)
async def logout(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    c.sessions.drop(request.cookies.get(SESSION_COOKIE))
    resp = see_other(PREFIX + "login?why=signed-out")
    resp.del_cookie(SESSION_COOKIE, path=PREFIX)
    return resp


def _logout_any_scope(handler: Handler) -> Handler:
    # Signing out needs a session and its CSRF token, but no particular scope:
    # a send-only key must be able to sign out too.
    handler.console_scope = "signed-in"  # type: ignore[attr-defined]
    handler.console_rate = False  # type: ignore[attr-defined]
    return handler


@public
async def static_file(request: web.Request) -> web.StreamResponse:
    c = console_of(request)
    if request.match_info["tag"] != c.assets.tag:
        # An old page asking for an old file: send it to the current one.
        name = request.match_info["name"]
        if c.assets.get(name) is None:
            raise web.HTTPNotFound()
        raise web.HTTPFound(c.assets.url(PREFIX, name))
    asset = c.assets.get(request.match_info["name"])
    if asset is None:
        raise web.HTTPNotFound()
    gz = "gzip" in request.headers.get("Accept-Encoding", "")
    resp = web.Response(body=asset.gzipped if gz else asset.body)
    resp.content_type = asset.content_type.split(";")[0]
    if "charset" in asset.content_type:
        resp.charset = "utf-8"
    if gz:
        resp.headers["Content-Encoding"] = "gzip"
    resp.headers["Vary"] = "Accept-Encoding"
    resp.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    resp.console_cacheable = True  # type: ignore[attr-defined]
    return resp


async def root_redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(PREFIX)


# --- the application ------------------------------------------------------------------------

def create_console(deps: ConsoleDeps) -> web.Application:
    from gsmgw.console import admin, campaigns, compose, conversations, messages, overview

    app = web.Application(middlewares=[console_middleware],
                          client_max_size=deps.config().api.max_body_bytes)
    # Its templates (Jinja2, autoescaped) load with the first page rendered: core.Templates.
    console = Console(deps)
    app[CONSOLE] = console

    async def on_shutdown(_app: web.Application) -> None:
        console.closing.set()

    app.on_shutdown.append(on_shutdown)
    r = app.router
    r.add_get("/login", login_page)
    r.add_post("/login", login)
    r.add_post("/logout", _logout_any_scope(logout))
    r.add_get("/static/{tag}/{name:.+}", static_file)
    overview.add_routes(r)
    messages.add_routes(r)
    conversations.add_routes(r)
    compose.add_routes(r)
    admin.add_routes(r)
    campaigns.add_routes(r)  # issue 21
    return app


def mount(root: web.Application, deps: ConsoleDeps) -> web.Application:
    """Serve the console at /ui/ of ``root`` (the API's application); ``/`` and
    ``/ui`` redirect to it."""
    console = create_console(deps)
    root.add_subapp(PREFIX.rstrip("/"), console)
    root.router.add_get("/", root_redirect)
    return console


__all__ = ["create_console", "mount"]
