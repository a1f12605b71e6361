"""Serving the app: runner, TCP listener, optional TLS, connection hygiene (kept here
so that only gsmgw.api imports aiohttp.web).

Hygiene (#15): a connection must send its request headers within
``header_timeout_s`` (and, between requests, say something within it again), or
it is closed: half-open connections that never finish their headers do not pile
up. At most ``max_connections`` are open at once; one more is answered 503 and
closed at once. A malformed request (a request line or header over 8 KB, bad
syntax) gets a 400 that never echoes what was sent: a Kannel URL carries
``password=<API key>``, and it is not logged either.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger(__name__)

# The parser's limits (aiohttp's defaults, named here because the 400 says them).
MAX_LINE_BYTES = 8190
MAX_FIELD_BYTES = 8190


class SafeRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, with a 400 for a malformed request that quotes nothing of it."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if status < 500 and isinstance(exc, HttpProcessingError):
            log.info("refused a malformed HTTP request from %s: %s (status %d)", request.remote,
                     type(exc).__name__, status)
            body = {"error": {"code": "bad_request",
                              "message": f"malformed HTTP request (a request line or header over "
                                         f"{MAX_LINE_BYTES} bytes, or bad syntax); send long texts in a POST "
                                         "body"}}
            resp = web.Response(status=status, text=json.dumps(body), content_type="application/json")
            resp.force_close()
            return resp
        if isinstance(exc, ConnectionError):
            # The client closed the connection mid-request: nobody to answer, nothing
            # wrong with the gateway, no traceback in the log.
            log.debug("client %s disconnected during %s %s", request.remote, request.method, request.path)
            resp = web.Response(status=400, text="client closed the connection")
            resp.force_close()
            return resp
        return super().handle_error(request, status, exc, message)


class _Refuse(asyncio.Protocol):
    """A connection over the cap: one 503, then closed."""

    BODY = json.dumps({"error": {"code": "too_many_connections",
                                 "message": "too many open connections; retry shortly"}}).encode()
    REPLY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
             b"Connection: close\r\nContent-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.REPLY)
        transport.close()


class ApiServer:
    """One aiohttp application listening on one address."""

    def __init__(self, app: web.Application, *, header_timeout_s: float = 15.0,
                 max_connections: int = 512) -> None:
        self.app = app
        self.header_timeout_s = header_timeout_s
        self.max_connections = max_connections
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self.bound: list[tuple[str, int]] = []
        self.refused_connections = 0

    async def start(self, host: str, port: int, *, tls_cert_file: str = "", tls_key_file: str = "") -> None:
        ssl_ctx = None
        if tls_cert_file:
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.load_cert_chain(tls_cert_file, tls_key_file)
        # keepalive_timeout runs from the moment a connection opens and after each
        # reply: a connection that has not sent a complete request by then is closed.
        handler_args: dict[str, Any] = {"access_log": None, "keepalive_timeout": self.header_timeout_s,
                                        "max_line_size": MAX_LINE_BYTES, "max_field_size": MAX_FIELD_BYTES}
        self._runner = web.AppRunner(self.app, handle_signals=False, **handler_args)
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.Protocol:
            if len(server.connections) >= self.max_connections:
                self.refused_connections += 1
                return _Refuse()
            return SafeRequestHandler(server, loop=loop, **handler_args)

        try:
            self._listener = await loop.create_server(protocol, host, port, ssl=ssl_ctx, reuse_address=True)
        except BaseException:
            await self._runner.cleanup()
            self._runner = None
            raise
        # Port 0 binds an ephemeral port: the sockets know which (IPv6 names have 4 fields).
        self.bound = [tuple(s.getsockname()[:2]) for s in self._listener.sockets]

    async def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._runner is not None:
            await self._runner.cleanup()  # closes the open connections, after their requests
            self._runner = None
        if listener is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(listener.wait_closed(), 5.0)
