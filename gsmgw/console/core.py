"""What every console page shares: the console's state, the route policies
(``public``, ``needs``), rendering, error pages, security headers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from gsmgw import __version__
from gsmgw.console.deps import ConsoleDeps, may
from gsmgw.console.live import Live
from gsmgw.console.queries import Queries
from gsmgw.console.session import Session, Sessions, SignInThrottle
from gsmgw.console.static import Assets

if TYPE_CHECKING:
    import jinja2

log = logging.getLogger(__name__)

PREFIX = "/ui/"
SESSION_COOKIE = "gsmgw_session"
LOGIN_COOKIE = "gsmgw_signin"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
# How often a session re-checks that its key was not revoked (seconds).
KEY_RECHECK_S = 10.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# script-src 'self' only: no inline script, no eval, no inline event handler. htmx
# is configured (meta htmx-config) not to evaluate anything and to add no <style>.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'; manifest-src 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: under no-referrer a browser sends "Origin: null" on a POST.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


class Templates:
    """The console's Jinja2 environment, made when the first page is rendered.

    Jinja2 (its lexer, parser and compiler) is about 1 MB of a running gateway;
    a gateway whose console no admin opens does not load it (issue 17: the RSS
    at 64 modems on a Pi). Every template is autoescaped: every SMS text and
    every caller's value shown is someone else's input."""

    def __init__(self) -> None:
        self._env: jinja2.Environment | None = None

    @property
    def loaded(self) -> bool:
        return self._env is not None

    @property
    def env(self) -> jinja2.Environment:
        if self._env is None:
            import jinja2

            from gsmgw.console.fmt import FILTERS

            env = jinja2.Environment(
                loader=jinja2.PackageLoader("gsmgw.console", "templates"),
                autoescape=True,
                undefined=jinja2.StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.filters.update(FILTERS)
            self._env = env
        return self._env

    def render(self, name: str, context: dict[str, Any]) -> str:
        return self.env.get_template(name).render(context)


class Console:
    """The console's state: sessions, assets, templates, the live overview."""

    def __init__(self, deps: ConsoleDeps) -> None:
        cfg = deps.config().console
        self.deps = deps
        self.q = Queries(deps)
        self.sessions = Sessions(idle_s=cfg.session_idle_s, max_s=cfg.session_max_s)
        self.throttle = SignInThrottle()
        self.assets = Assets()
        self.templates = Templates()
        self.live = Live(self.q, deps)
        # Set at shutdown: live streams end at once instead of holding the server open.
        self.closing = asyncio.Event()


CONSOLE = web.AppKey("console", Console)
SESSION = web.RequestKey("console_session", Session)


# --- route attributes --------------------------------------------------------------

def public(handler: Handler) -> Handler:
    """No session needed (sign-in page, static files)."""
    handler.console_public = True  # type: ignore[attr-defined]
    return handler


def needs(scope: str, *, rate: bool = True) -> Callable[[Handler], Handler]:
    """A session whose key has ``scope`` (admin has every scope); ``rate=False`` for
    live-feed endpoints that a page polls and that change nothing."""

    def deco(handler: Handler) -> Handler:
        handler.console_scope = scope  # type: ignore[attr-defined]
        handler.console_rate = rate  # type: ignore[attr-defined]
        return handler

    return deco


# --- rendering -----------------------------------------------------------------------

def console_of(request: web.Request) -> Console:
    return request.app[CONSOLE]


def base_context(request: web.Request, *, consume_flash: bool = True) -> dict[str, Any]:
    c = console_of(request)
    session = request.get(SESSION)
    caller = session.caller if session else None

    def asset(name: str) -> str:
        return c.assets.url(PREFIX, name)

    def can(scope: str) -> bool:
        return caller is not None and may(caller, scope)

    return {
        "prefix": PREFIX,
        "version": __version__,
        "asset": asset,
        "caller": caller,
        "can": can,
        "csrf": session.csrf if session else "",
        "flash": session.pop_flash() if session and consume_flash else None,
        "host": c.deps.host,
        "section": "",
    }


def render(request: web.Request, template: str, context: dict[str, Any] | None = None, *,
           status: int = 200) -> web.Response:
    """A page, or a fragment (a template whose name starts with "_", for htmx):
    a fragment leaves the one-time message for the next page."""
    ctx = base_context(request, consume_flash=not template.startswith("_"))
    ctx.update(context or {})
    return web.Response(text=console_of(request).templates.render(template, ctx), status=status,
                        content_type="text/html", charset="utf-8")


def render_fragment(request: web.Request, template: str, context: dict[str, Any]) -> str:
    ctx = base_context(request, consume_flash=False)  # the next page's message stays
    ctx.update(context)
    return console_of(request).templates.render(template, ctx)


def error_page(request: web.Request, status: int, title: str, message: str,
               headers: dict[str, str] | None = None) -> web.Response:
    if request.headers.get("HX-Request") == "true":
        resp = web.Response(status=status, text=f"{title}: {message}", content_type="text/plain")
    else:
        resp = render(request, "error.html", {"status": status, "title": title, "message": message},
                      status=status)
    resp.headers.update(headers or {})
    return resp


def secure(resp: web.StreamResponse, *, cache: bool = False) -> None:
    for k, v in SECURITY_HEADERS.items():
        resp.headers.setdefault(k, v)
    if not cache:
        # Pages hold messages and numbers: not for the browser's disk or a shared cache.
        resp.headers.setdefault("Cache-Control", "no-store")


def flash(request: web.Request, kind: str, text: str) -> None:
    session = request.get(SESSION)
    if session is not None:
        session.flash = (kind, text)


def see_other(location: str) -> web.Response:
    """A 303 to return (aiohttp wants HTTPException objects raised, not returned)."""
    return web.Response(status=303, headers={"Location": location})


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: only a console path of this site."""
    if not raw or len(raw) > 500:
        return PREFIX
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or not parts.path.startswith(PREFIX) or "\\" in raw:
        return PREFIX
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        return PREFIX
    return raw


def set_cookie(resp: web.StreamResponse, request: web.Request, name: str, value: str, *,
            max_age: int | None = None) -> None:
    resp.set_cookie(name, value, path=PREFIX, httponly=True, samesite="Strict", secure=request.secure,
                    max_age=max_age)


def client_address(request: web.Request) -> str:
    return request.remote or "?"


def request_session(request: web.Request) -> Session:
    return request[SESSION]


def owner_filter(request: web.Request) -> str | None:
    """Whose messages this session may see: an admin key all (None), any other key
    only the messages it queued itself (as through the API)."""
    caller = request[SESSION].caller
    return None if "admin" in caller.scopes else str(caller.id)


__all__ = [
    "CONSOLE", "CSRF_FIELD", "CSRF_HEADER", "KEY_RECHECK_S", "LOGIN_COOKIE", "PREFIX", "SESSION",
    "SESSION_COOKIE", "Console", "base_context", "client_address", "console_of", "error_page", "flash",
    "needs", "owner_filter", "public", "render", "render_fragment", "request_session", "safe_next", "secure", "see_other",
    "set_cookie",
]
