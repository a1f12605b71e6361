"""Composition root: wires config, store, pool and API; signals; sd_notify."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gsmgw.api import Services, create_app
from gsmgw.api.context import SERVICES
from gsmgw.api.inbound import INBOUND
from gsmgw.api.server import ApiServer
from gsmgw.config import Config, ConfigError, parse_listen
from gsmgw.config import load as load_config
from gsmgw.intake import IntakeService
from gsmgw.pool import DriverFactory, Pool, default_driver_factory
from gsmgw.pool.routing import Router
from gsmgw.store import Store
from gsmgw.webhooks import WebhookSender

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
        self.host = host or cfg.store.host_id or socket.gethostname()
        self.store = Store(cfg.store.url, host=self.host, default_region=cfg.api.default_region)
        self.pool = Pool(cfg, self.store, driver_factory=driver_factory)
        self.webhooks = WebhookSender(lambda: self.cfg, self.store)  # issue 7: durable outbox
        self.router = Router(cfg.dispatch.route)
        # The one intake path for every door; reads self.cfg on each call, so a reload applies.
        self.intake = IntakeService(self.store, lambda: self.cfg, notify_work=self.pool.notify_work,
                                    route=self._route, local_modems=self.pool.snapshot, host=self.host)
        self.api: ApiServer | None = None
        self.smpp: Any = None  # gsmgw.smpp.SmppServer when [smpp] listen is set
        self.bound: list[tuple[str, int]] = []
        self.started_at = time.time()

    def _route(self, number: str) -> tuple[str | None, float | None]:
        r = self.router.route(number)
        return r.group, r.fallback_after_s

    async def start(self) -> None:
        if self.cfg.store.migrate_on_start:
            await self.store.call(self.store.migrate)
        # Settle what a previous run of this host left mid-send.
        await self.store.call(self.store.claims.recover)
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
            host=self.host,
            intake=self.intake,
        )
        app = create_app(services)
        app[INBOUND] = self.pool.inbound  # USSD and balance routes (issue 7)
        if self.cfg.console.enabled:
            self._mount_console(app)
        await self.webhooks.start()
        self.api = ApiServer(app)
        host, port = parse_listen(self.cfg.api.listen)
        await self.api.start(host, port, tls_cert_file=self.cfg.api.tls_cert_file,
                             tls_key_file=self.cfg.api.tls_key_file)
        self.bound = self.api.bound
        log.info("API listening on %s", ", ".join(f"{h}:{p}" for h, p in self.bound))
        if self.cfg.smpp.listen:
            await self._start_smpp()

    async def _start_smpp(self) -> None:
        from gsmgw.smpp import SmppServer
        from gsmgw.smpp.intake_port import IntakePort

        self.smpp = SmppServer(lambda: self.cfg.smpp, self.store, IntakePort(self.intake))
        await self.smpp.start()

    def _mount_console(self, app: Any) -> None:
        """The admin console at /ui/ on the API port (issue 18); a door like the others."""
        from gsmgw.console import ConsoleDeps, mount

        inbound = self.pool.inbound

        async def check_balance(modem_id: str) -> dict[str, Any]:
            info: dict[str, Any] = await inbound.check_balance(self.pool.slots[modem_id])
            return info

        mount(app, ConsoleDeps(
            config=lambda: self.cfg,
            intake=self.intake,
            store=self.store,
            modems=self.pool.snapshot,
            set_modem_enabled=self.pool.set_enabled,
            ussd=inbound.ussd,
            balances=lambda: inbound.balances,
            check_balance=check_balance,
            restart_modem=self.pool.restart,
            host=self.host,
            started_at=self.started_at,
        ))

    @property
    def base_url(self) -> str:
        host, port = self.bound[0]
        scheme = "https" if self.cfg.api.tls_cert_file else "http"
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{port}"

    async def stop(self) -> None:
        if self.smpp is not None:  # first: no new submits while the rest stops
            await self.smpp.stop()
            self.smpp = None
        await self.pool.stop()
        await self.webhooks.stop()
        if self.api is not None:
            await self.api.stop()
            self.api = None
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


    # --- reload (issue 9) --------------------------------------------------------------

    async def reload(self, new: Config) -> dict[str, list[str]]:
        """Apply a re-read config to the running gateway; the queue is untouched.

        Modems added/removed/changed, limits, enabled flags, dispatch settings,
        routing rules and webhooks apply at once. [api], [store], [logging], [console] and
        [discovery] need a restart (the socket and the database stay open, logging was
        set up by the command line): a change there is logged and waits for the next start.
        """
        later = {name: getattr(self.cfg, name) for name in ("api", "store", "logging", "discovery", "console")
                 if hasattr(new, name) and getattr(new, name) != getattr(self.cfg, name)}
        if later:
            log.warning("config reload: [%s] changed in %s; that applies at the next restart",
                        "], [".join(later), new.source)
            new = dataclasses.replace(new, **later)
        old_smpp = self.cfg.smpp
        if (new.smpp.listen, new.smpp.tls_cert_file, new.smpp.tls_key_file) != (
                old_smpp.listen, old_smpp.tls_cert_file, old_smpp.tls_key_file):
            log.warning("config reload: [smpp] listen/TLS changed in %s; that applies at the next restart",
                        new.source)
            new = dataclasses.replace(new, smpp=dataclasses.replace(
                new.smpp, listen=old_smpp.listen, tls_cert_file=old_smpp.tls_cert_file,
                tls_key_file=old_smpp.tls_key_file))
        changes = await self.pool.apply_config(new)
        self.router = Router(new.dispatch.route)
        if self.api is not None:
            self.api.app[SERVICES].cfg = new
        self.cfg = new
        return changes

    async def reload_from(self, path: str | Path) -> bool:
        """Re-read and validate ``path``; a bad file is logged and the running config stays."""
        try:
            new = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            log.error("config reload refused, the running config stays: %s", exc)
            return False
        await self.reload(new)
        log.info("config reloaded from %s", path)
        return True


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def serve_reloadable(
    gw: Gateway,
    stop: asyncio.Event,
    config_path: str | Path,
    *,
    on_ready: Callable[[Gateway], None] | None = None,
    reload: asyncio.Event | None = None,
) -> None:
    """``gw.serve(stop)``, plus a config reload from ``config_path`` on SIGHUP.

    Reloads run one at a time, only once the gateway is ready, and a shutdown
    waits for a reload in progress so that the two never interleave. ``reload``
    (set to ask for one) replaces the SIGHUP handler in tests.
    """
    loop = asyncio.get_running_loop()
    hup = reload or asyncio.Event()
    if reload is None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, hup.set)
    ready = asyncio.Event()
    serve_stop = asyncio.Event()

    def _ready(g: Gateway) -> None:
        ready.set()
        if on_ready:
            on_ready(g)

    serving = asyncio.create_task(gw.serve(serve_stop, on_ready=_ready), name="gateway-serve")
    try:
        while True:
            want = [stop.wait(), hup.wait() if ready.is_set() else ready.wait()]
            waiters = [asyncio.ensure_future(w) for w in want]
            done, _ = await asyncio.wait([*waiters, serving], return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
            if serving in done or stop.is_set():
                break
            if ready.is_set() and hup.is_set():
                hup.clear()
                sd_notify("RELOADING=1\nSTATUS=reloading config")
                try:
                    await gw.reload_from(config_path)
                except Exception:  # a failed apply must not take the gateway down
                    log.exception("config reload failed")
                sd_notify("READY=1\nSTATUS=serving")
    finally:
        serve_stop.set()
        if reload is None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGHUP)
        await serving
