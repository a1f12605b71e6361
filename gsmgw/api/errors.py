"""JSON error replies of the native API, and the middleware that turns errors into them.

Every error is ``{"error": {"code", "message", "field"?, ...}}`` with a stable code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gsmgw.errors import AdmissionError, ValidationError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body = {"error": {"code": code, "message": message, **extra}}
    return web.json_response(body, status=status)


def retry_after_header(retry_after_s: float) -> str:
    """Whole seconds, at least 1 (RFC 9110 Retry-After)."""
    return str(max(1, int(retry_after_s + 0.999)))


def too_many(code: str, message: str, retry_after_s: float) -> web.Response:
    resp = error_response(429, code, message, retry_after_s=round(retry_after_s, 3))
    resp.headers["Retry-After"] = retry_after_header(retry_after_s)
    return resp


def unauthorized(message: str) -> web.Response:
    resp = error_response(401, "unauthorized", message)
    # RFC 9110: a 401 names the schemes; Basic clients that wait for a challenge need it.
    resp.headers["WWW-Authenticate"] = 'Bearer realm="gsmgw", Basic realm="gsmgw", charset="UTF-8"'
    return resp


def forbidden(message: str) -> web.HTTPForbidden:
    """An exception to raise: the middleware passes JSON HTTP errors through as they are."""
    return web.HTTPForbidden(text=json.dumps({"error": {"code": "forbidden", "message": message}}),
                             content_type="application/json")


def another_door(request: web.Request) -> bool:
    """Whether the route belongs to a sub-application mounted on this port (the
    console at /ui/): a door of its own, with its own sign-in and error pages."""
    return request.match_info.apps[-1] is not request.app


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if another_door(request):  # the console renders its own error pages
        return await handler(request)
    try:
        return await handler(request)
    except ValidationError as exc:
        extra = {"field": exc.field} if exc.field else {}
        return error_response(422, exc.code, exc.message, **extra)
    except AdmissionError as exc:
        return too_many(exc.code, exc.message, exc.retry_after_s)
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


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (422 ``invalid_json`` for anything else)."""
    if request.content_type != "application/json":
        raise ValidationError("invalid_json", "send a JSON object with Content-Type: application/json")
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValidationError("invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ValidationError("invalid_json", "the body must be a JSON object")
    return body
