"""Composition root: wires config, store, pool and API; signals; sd_notify."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import time
from collections.abc import Callable

from aiohttp import web

from gsmgw.api import Services, create_app
from gsmgw.config import Config, parse_listen
from gsmgw.pool.dispatcher import DriverFactory, Pool, default_driver_factory
from gsmgw.pool.routing import Router
from gsmgw.store import Store

log = logging.getLogger(__name__)


def sd_notify(message: str) -> bool:
    """Send one datagram to $NOTIFY_SOCKET (systemd's notify protocol); False if none."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]  # abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(path)
            sock.sendall(message.encode())
        except OSError as exc:
            log.warning("sd_notify(%r) failed: %s", message, exc)
            return False
    return True


def watchdog_interval_s() -> float | None:
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec or not usec.isdigit():
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 1_000_000 / 2  # ping at half the timeout


class Gateway:
    """One gsmgw host: store + pool + HTTP API."""

    def __init__(
        self,
        cfg: Config,
        *,
        host: str | None = None,
        driver_factory: DriverFactory = default_driver_factory,
    ) -> None:
        self.cfg = cfg
        self.host = host or socket.gethostname()
        self.store = Store(cfg.store.url, host=self.host)
        self.pool = Pool(cfg, self.store, driver_factory=driver_factory)
        self.router = Router(cfg.dispatch.route)
        self._runner: web.AppRunner | None = None
        self.bound: list[tuple[str, int]] = []
        self.started_at = time.time()

    def _route(self, number: str) -> tuple[str | None, float | None]:
        r = self.router.route(number)
        return r.group, r.fallback_after_s

    async def start(self) -> None:
        if self.cfg.store.migrate_on_start:
            await self.store.call(self.store.migrate)
        # Settle what a previous run of this host left mid-send.
        await self.store.call(self.store.recover)
        await self.pool.start()
        services = Services(
            cfg=self.cfg,
            store=self.store,
            notify_work=self.pool.notify_work,
            modems=self.pool.snapshot,
            set_modem_enabled=self.pool.set_enabled,
            started_at=self.started_at,
            sent_total=lambda: self.pool.sent_total,
            route=self._route,
        )
        app = create_app(services)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        host, port = parse_listen(self.cfg.api.listen)
        ssl_ctx = None
        if self.cfg.api.tls_cert_file:
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.load_cert_chain(self.cfg.api.tls_cert_file, self.cfg.api.tls_key_file)
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_ctx, reuse_address=True)
        await site.start()
        server = site._server
        if server is not None:
            sockets = getattr(server, "sockets", None) or []
            self.bound = [s.getsockname()[:2] for s in sockets]
        log.info("API listening on %s", ", ".join(f"{h}:{p}" for h, p in self.bound))

    @property
    def base_url(self) -> str:
        host, port = self.bound[0]
        scheme = "https" if self.cfg.api.tls_cert_file else "http"
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{port}"

    async def stop(self) -> None:
        await self.pool.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.store.close()

    async def serve(self, stop: asyncio.Event, *, on_ready: Callable[[Gateway], None] | None = None) -> None:
        """Run until ``stop`` is set; speaks sd_notify when run under systemd."""
        await self.start()
        sd_notify("READY=1\nSTATUS=serving")
        if on_ready:
            on_ready(self)
        interval = watchdog_interval_s()
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval or 3600)
                if interval:
                    sd_notify("WATCHDOG=1")
        finally:
            sd_notify("STOPPING=1")
            await self.stop()


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
