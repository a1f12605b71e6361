"""Composition root: wires config, store, pool and API; signals; sd_notify."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import gc
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
from gsmgw.api.schedules import KEEPALIVE, SCHEDULES
from gsmgw.api.server import ApiServer
from gsmgw.campaigns import CampaignRunner  # issue 21
from gsmgw.config import Config, ConfigError, parse_listen
from gsmgw.config import load as load_config
from gsmgw.errors import ListenError
from gsmgw.health import Readiness, ReadinessTracker, evaluate
from gsmgw.housekeeping import Housekeeper
from gsmgw.intake import IntakeService
from gsmgw.pool import DriverFactory, Pool, default_driver_factory
from gsmgw.pool.routing import Router
from gsmgw.schedules import KeepAlive, Scheduler
from gsmgw.store import Store
from gsmgw.store.ownership import StoreOwner, check_expected
from gsmgw.webhooks import WebhookSender

log = logging.getLogger(__name__)


def freeze_startup_heap() -> None:
    """Keep what start-up made (modules, the config, the engine, the app: about 100k
    objects that live as long as the process) out of the cyclic collector's full
    collections. Under load those walked them every few seconds, 40-60 ms each with
    every request and send held meanwhile (issue 17: the intake's p99 spikes); now
    1-3 ms. Process-wide and for good, so ``gsmgw run`` calls it once the gateway is
    ready, not ``Gateway.serve`` (a test process must keep collecting its gateways)."""
    gc.collect()
    gc.freeze()


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
        command: str = "gsmgw run",
        create_store: bool = False,
    ) -> None:
        self.cfg = cfg
        self.host = host or cfg.store.host_id or socket.gethostname()
        self.store = Store(cfg.store.url, host=self.host, default_region=cfg.api.default_region)
        # The SQLite lock / PostgreSQL host lease this gateway holds while it runs.
        self.owner = StoreOwner(cfg.store.url, self.host, command=command)
        self.create_store = create_store
        self.readiness = Readiness("degraded", ("starting",))
        self._store_problem: str | None = None
        self._store_warning: str | None = None
        self._tracker = ReadinessTracker(time.monotonic())
        self._health_task: asyncio.Task[None] | None = None
        # Set when this gateway must stop by itself (its host id was taken over).
        self.fatal: str | None = None
        self._fatal_event = asyncio.Event()
        self._started: list[str] = []
        self.pool = Pool(cfg, self.store, driver_factory=driver_factory)
        self.webhooks = WebhookSender(lambda: self.cfg, self.store)  # issue 7: durable outbox
        # Issue 21: rollup, daily prune. On SQLite its batches go between the sends' results
        # (one writer thread: a settle would queue behind a batch); on PostgreSQL they need not.
        self.housekeeper = Housekeeper(lambda: self.cfg, self.store,
                                       quiet=self.pool.quiet_wait_s if self.store.is_sqlite else None)
        self.router = Router(cfg.dispatch.route)
        # The one intake path for every door; reads self.cfg on each call, so a reload applies.
        self.intake = IntakeService(self.store, lambda: self.cfg, notify_work=self.pool.notify_work,
                                    route=self._route, local_modems=self.pool.snapshot, host=self.host,
                                    store_problem=lambda: self._store_problem)
        # Recurring schedules and SIM keep-alive (issue 20); tests replace their .clock.
        self.scheduler = Scheduler(self.store, self.intake, lambda: self.cfg)
        self.keepalive = KeepAlive(self.store, lambda: self.cfg, modems=self.pool.snapshot,
                                   ussd=self.pool.inbound.ussd, notify_work=self.pool.notify_work)
        # Campaigns (issue 21): feeds running campaigns into the queue through intake.
        self.campaigns = CampaignRunner(self.store, self.intake, lambda: self.cfg.campaigns)
        self.api: ApiServer | None = None
        self.smpp: Any = None  # gsmgw.smpp.SmppServer when [smpp] listen is set
        # Issue 19: the e-mail door (forwarder, listener) and the inbound rules runner.
        self.mail_forwarder: Any = None
        self.mail_listener: Any = None
        self.rules: Any = None
        self.mqtt: Any = None  # gsmgw.mqtt.MqttDoor when [mqtt] url is set (issue 19)
        self.bound: list[tuple[str, int]] = []
        self.started_at = time.time()

    def _route(self, number: str) -> tuple[str | None, float | None]:
        r = self.router.route(number)
        return r.group, r.fallback_after_s

    def claim_store(self) -> None:
        """Refuse a missing store where one is expected, then take the store (blocking).

        Raises :class:`~gsmgw.errors.StoreMissing` or :class:`~gsmgw.errors.StoreInUse`
        with a one-line message; ``start`` calls it, ``gsmgw demo`` calls it first of
        all, before it touches its state folder.
        """
        check_expected(self.cfg.store.url, create=self.create_store)
        self.owner.acquire()

    def store_ok(self) -> bool:
        """False once the store was removed/replaced/is unwritable or the host lease is lost."""
        return self._store_problem is None

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self.claim_store)
            await self._start()
        except BaseException:
            await self.stop()  # whatever started stops; the store is let go
            raise

    async def _start(self) -> None:
        self._tracker = ReadinessTracker(time.monotonic())
        if self.cfg.store.migrate_on_start:
            await self.store.call(self.store.migrate)
        await asyncio.to_thread(self.owner.opened)
        # Settle what a previous run of this host left mid-send; holding the SQLite
        # lock proves every claim in the file is orphaned.
        await self.store.call(self.store.claims.recover, exclusive=self.owner.exclusive)
        if not self.cfg.modem:
            log.warning("no [[modem]] in %s: the API will queue messages but nothing will send them",
                        self.cfg.source)
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
            readiness=self.readiness_now,
            sim_care=self.pool.care_status,  # SIM care and cost in the status API (issue 20)
            wake_campaigns=self.campaigns.wake,
        )
        app = create_app(services)
        app[INBOUND] = self.pool.inbound  # USSD and balance routes (issue 7)
        app[SCHEDULES], app[KEEPALIVE] = self.scheduler, self.keepalive  # issue 20
        if self.cfg.console.enabled:
            self._mount_console(app)
        # Listen before the modems start: a port in use is then refused at once, before
        # any modem was opened (requests that come before the pool starts just queue).
        self.api = ApiServer(app, header_timeout_s=self.cfg.api.header_timeout_s,
                             max_connections=self.cfg.api.max_connections)
        host, port = parse_listen(self.cfg.api.listen)
        try:
            await self.api.start(host, port, tls_cert_file=self.cfg.api.tls_cert_file,
                                 tls_key_file=self.cfg.api.tls_key_file)
        except OSError as exc:
            raise ListenError(*listen_problem(self.cfg.api.listen, exc)) from None
        self.bound = self.api.bound
        self._started.append("pool")
        await self.pool.start()
        self._started.append("webhooks")
        await self.webhooks.start()
        self._started.append("schedules")
        await self.scheduler.start()
        await self.keepalive.start()
        if self.cfg.campaigns.enabled:
            self._started.append("campaigns")
            await self.campaigns.start()
        self._started.append("housekeeper")
        await self.housekeeper.start()
        log.info("API listening on %s", ", ".join(f"{h}:{p}" for h, p in self.bound))
        await self._start_mail_and_rules()
        if self.cfg.smpp.listen:
            try:
                await self._start_smpp()
            except OSError as exc:
                raise ListenError(*listen_problem(self.cfg.smpp.listen, exc, key="[smpp] listen")) from None
        if self.cfg.mqtt.url:
            await self._start_mqtt()
        await self.check_health()
        self._health_task = asyncio.create_task(self._health_loop(), name="gateway-health")

    # --- health (issue 15) ---------------------------------------------------------------

    async def check_health(self) -> Readiness:
        """Look at the store and the modems once; update ``readiness``."""
        problem = await asyncio.to_thread(self.owner.problem)
        warning = await asyncio.to_thread(self.owner.warning)
        if problem != self._store_problem:
            if problem:
                log.error("store not usable: %s", problem)
            else:
                log.info("store usable again")
        self._store_problem = problem
        self._store_warning = warning
        if problem and "lost its host_id lease to another process" in problem and self.fatal is None:
            # Another process now runs as this host and will recover "its" claims:
            # sending on would duplicate them. Stop at once.
            self.fatal = problem
            log.critical("stopping: %s", problem)
            self._fatal_event.set()
        self.readiness = self.readiness_now()
        return self.readiness

    def readiness_now(self) -> Readiness:
        """Readiness with the modems as they are now and the store as last checked."""
        views, none_ready_s = self._tracker.update(self.pool.snapshot(), time.monotonic())
        r = evaluate(modems=views, none_ready_s=none_ready_s, grace_s=self.cfg.health.modem_grace_s,
                     store_problem=self._store_problem,
                     store_warnings=[self._store_warning] if self._store_warning else [])
        if self.mqtt is not None:  # issue 19: a lost broker is "degraded" (SMS still go out)
            r = self.mqtt.readiness(r)
        return r

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.health.check_interval_s)
            try:
                await self.check_health()
            except Exception:
                log.exception("health check failed")

    # --- e-mail door and inbound rules (issue 19) ------------------------------------------

    async def _start_mail_and_rules(self, *, listener: bool = True) -> None:
        """Start what the config asks for and is not running yet (at start and on reload)."""
        cfg = self.cfg
        wants_mail = bool(cfg.email.smtp.host or any(r.email for r in cfg.rules) or cfg.email.listener.enabled)
        if wants_mail:
            try:
                import gsmgw.mail  # noqa: F401  (aiosmtpd, aiosmtplib: the optional "email" extra)
            except ModuleNotFoundError as exc:
                raise ConfigError(f"{cfg.source}: [email] needs the e-mail extra: pip install "
                                  f"'gsmgw[email]' ({exc})") from None
        if cfg.rules and self.rules is None:
            from gsmgw.rules import RulesRunner

            self.rules = RulesRunner(lambda: self.cfg, self.store, self.intake)
            await self.rules.start()
        if (cfg.email.smtp.host or any(r.email for r in cfg.rules)) and self.mail_forwarder is None:
            from gsmgw.mail import MailForwarder

            self.mail_forwarder = MailForwarder(lambda: self.cfg, self.store)
            await self.mail_forwarder.start()
        if listener and cfg.email.listener.enabled and self.mail_listener is None:
            from gsmgw.mail import MailListener

            self.mail_listener = MailListener(lambda: self.cfg, self.intake)
            lc = cfg.email.listener
            try:
                await self.mail_listener.start()
            except OSError as exc:
                self.mail_listener = None
                raise ListenError(*listen_problem(f"{lc.host}:{lc.port}", exc, key="[email.listener] port")) from None

    async def _stop_mail_and_rules(self) -> None:
        for name in ("mail_listener", "rules", "mail_forwarder"):
            part = getattr(self, name)
            if part is not None:
                await part.stop()
                setattr(self, name, None)

    async def _start_smpp(self) -> None:
        from gsmgw.smpp import SmppServer
        from gsmgw.smpp.intake_port import IntakePort

        self.smpp = SmppServer(lambda: self.cfg.smpp, self.store, IntakePort(self.intake))
        await self.smpp.start()

    async def _start_mqtt(self) -> None:
        """The MQTT door (issue 19); it connects in the background, so a broker that is
        down does not stop the gateway from starting and serving."""
        try:
            from gsmgw.mqtt import MqttDeps, MqttDoor
        except ImportError as exc:
            raise ConfigError(f"{self.cfg.source}: mqtt.url is set but the MQTT client is not installed "
                              f"({exc.name}): pip install 'gsmgw[mqtt]'") from None
        inbound = self.pool.inbound
        self.mqtt = MqttDoor(MqttDeps(
            config=lambda: self.cfg, store=self.store, intake=self.intake, modems=self.pool.snapshot,
            ussd=inbound.ussd, balances=lambda: inbound.balances, readiness=self.readiness_now, host=self.host))
        await self.mqtt.start()

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
        if self._health_task is not None:
            self._health_task.cancel()
            await asyncio.gather(self._health_task, return_exceptions=True)
            self._health_task = None
        if self.smpp is not None:  # first: no new submits while the rest stops
            await self.smpp.stop()
            self.smpp = None
        await self._stop_mail_and_rules()
        if self.mqtt is not None:  # likewise; says "offline" on its availability topic
            await self.mqtt.stop()
            self.mqtt = None
        if "schedules" in self._started:  # before the pool: nothing new is queued while it drains
            await self.keepalive.stop()
            await self.scheduler.stop()
        if "campaigns" in self._started:  # before the pool: no new submits while it stops
            await self.campaigns.stop()
        if "pool" in self._started:
            await self.pool.stop()
        if "webhooks" in self._started:
            await self.webhooks.stop()
        if "housekeeper" in self._started:
            await self.housekeeper.stop()
        self._started.clear()
        if self.api is not None:
            await self.api.stop()
            self.api = None
        self.store.close()
        # Last: the next gateway may take the store only once this one wrote its last.
        await asyncio.to_thread(self.owner.release)

    async def serve(self, stop: asyncio.Event, *, on_ready: Callable[[Gateway], None] | None = None) -> None:
        """Run until ``stop`` is set; speaks sd_notify when run under systemd."""
        await self.start()
        sd_notify("READY=1\nSTATUS=serving")
        if on_ready:
            on_ready(self)
        interval = watchdog_interval_s()
        try:
            while not stop.is_set() and not self._fatal_event.is_set():
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._fatal_event.wait())]
                await asyncio.wait(waiters, timeout=interval or 3600, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
                await asyncio.gather(*waiters, return_exceptions=True)
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
        if new.mqtt != self.cfg.mqtt:  # issue 19: the MQTT connection is set up at start
            log.warning("config reload: [mqtt] changed in %s; that applies at the next restart", new.source)
            new = dataclasses.replace(new, mqtt=self.cfg.mqtt)
        changes = await self.pool.apply_config(new)
        self.router = Router(new.dispatch.route)
        if self.api is not None:
            self.api.app[SERVICES].cfg = new
        if new.email.listener != self.cfg.email.listener:
            log.warning("config reload: [email.listener] changed in %s; its host, port and TLS apply at the "
                        "next restart (senders, domain and limits at once)",
                        new.source)
        self.cfg = new
        await self._start_mail_and_rules(listener=False)  # rules and forwarding read the config live
        return changes

    async def reload_from(self, path: str | Path) -> bool:
        """Re-read and validate ``path``; a bad file is logged and the running config stays."""
        try:
            new = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            log.error("config reload refused, the running config stays: %s", exc)
            return False
        changes = await self.reload(new)
        log.info("config reloaded from %s", path)
        try:  # issue 21: config reloads are audited
            await self.store.call(self.store.audit.record, "daemon", "config.reload", str(path),
                                  {"changes": changes})
        except Exception:
            log.exception("could not write the audit entry of the config reload")
        return True


def listen_problem(listen: str, exc: OSError, *, key: str = "[api] listen") -> tuple[str, str]:
    """(what went wrong, how to fix it) when a server cannot listen on ``listen``."""
    host, port = parse_listen(listen)
    if exc.errno == errno.EADDRINUSE:
        return (f"cannot listen on {listen}: the port is in use (another gsmgw? "
                f"`ss -ltnp 'sport = :{port}'` shows who)", f"stop it, or set another {key}")
    if exc.errno == errno.EACCES:
        return (f"cannot listen on {listen}: ports below 1024 need privileges",
                "use a port >= 1024, or add CAP_NET_BIND_SERVICE")
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(exc, socket.gaierror):
        return f"cannot listen on {listen}: {host} is not an address of this machine", f"fix {key}"
    return f"cannot listen on {listen}: {exc.strerror or exc}", f"fix {key}"


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
