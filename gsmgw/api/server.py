"""Serving the app: runner, TCP site, optional TLS (kept here so that only gsmgw.api imports aiohttp.web)."""

from __future__ import annotations

import ssl

from aiohttp import web


class ApiServer:
    """One aiohttp application listening on one address."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._runner: web.AppRunner | None = None
        self.bound: list[tuple[str, int]] = []

    async def start(self, host: str, port: int, *, tls_cert_file: str = "", tls_key_file: str = "") -> None:
        ssl_ctx = None
        if tls_cert_file:
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.load_cert_chain(tls_cert_file, tls_key_file)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_ctx, reuse_address=True)
        await site.start()
        # Port 0 binds an ephemeral port: the runner knows which (IPv6 names have 4 fields).
        self.bound = [tuple(a[:2]) for a in self._runner.addresses]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
