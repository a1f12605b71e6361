"""JSON error replies of the native API, and the middleware that turns errors into them.

Every error is ``{"error": {"code", "message", "field"?, ...}}`` with a stable code.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gsmgw.api.context import SERVICES
from gsmgw.errors import AdmissionError, ConflictError, UnavailableError, ValidationError

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
    except UnavailableError as exc:
        resp = error_response(503, exc.code, exc.message, retry_after_s=round(exc.retry_after_s, 3))
        resp.headers["Retry-After"] = retry_after_header(exc.retry_after_s)
        return resp
    except AdmissionError as exc:
        return too_many(exc.code, exc.message, exc.retry_after_s)
    except ConflictError as exc:
        return error_response(409, exc.code, exc.message)
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
    except ConnectionError:
        # The client went away (closed the connection mid-request): nothing to answer,
        # nothing wrong here. aiohttp drops the connection quietly.
        log.debug("client disconnected during %s %s", request.method, request.path)
        raise
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; see the gateway log")


# A handler with this attribute reads query parameters (through a schemas.Query model,
# which refuses unknown ones); any other /api/v1 route refuses a query string.
TAKES_QUERY_ATTR = "gsmgw_takes_query"


def takes_query(handler: Handler) -> Handler:
    setattr(handler, TAKES_QUERY_ATTR, True)
    return handler


@web.middleware
async def unknown_query_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown query parameters are refused as unknown body fields are: a typo
    (``?stat=queued``) must not silently return everything."""
    if (request.query and request.path.startswith("/api/v1/") and request.match_info.http_exception is None
            and not getattr(request.match_info.handler, TAKES_QUERY_ATTR, False)):
        names = ", ".join(sorted(set(request.query)))
        return error_response(422, "unknown_parameter", f"this route takes no query parameters (got {names})")
    return await handler(request)


async def read_body(request: web.Request) -> bytes:
    """The whole body, within ``[api] body_timeout_s`` of the headers (else 408)."""
    timeout_s = request.app[SERVICES].cfg.api.body_timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text=json.dumps({"error": {"code": "body_timeout",
                                       "message": f"the request body did not arrive within {timeout_s:g} s"}}),
            content_type="application/json", headers={"Connection": "close"}) from None


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (422 ``invalid_json`` for anything else).

    Refused as ``invalid_json`` too: nesting that exhausts the parser's recursion
    (100,000 ``[``), integers of more digits than Python converts (4,300), and strings that are not valid Unicode (a lone surrogate such
    as ``\\ud800`` cannot be stored or sent).
    """
    if request.content_type != "application/json":
        raise ValidationError("invalid_json", "send a JSON object with Content-Type: application/json")
    raw = await read_body(request)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, a 5,000-digit number
        raise ValidationError("invalid_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ValidationError("invalid_json", "the body must be a JSON object")
    if (where := _ill_formed_text(body)) is not None:
        raise ValidationError("invalid_json", f"{where} is not valid Unicode text (a lone surrogate)", field=where)
    return body


def _ill_formed_text(value: Any) -> str | None:
    """The path of the first string (or key) that is not valid Unicode, or None."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, v = stack.pop()
        if isinstance(v, str):
            if not _encodable(v):
                return path or "body"
        elif isinstance(v, dict):
            for k, item in v.items():
                name = f"{path}.{k}" if path else str(k)
                if not _encodable(k):
                    return path or "body"
                stack.append((name, item))
        elif isinstance(v, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(v))
    return None


def _encodable(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
