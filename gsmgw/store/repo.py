"""The ``Store`` facade: one engine, one executor, a repository per aggregate.

Callers run a repository's blocking method off the event loop with
``await store.call(store.messages.enqueue, ...)``; on SQLite the executor
group-commits the calls that queue up together (``gsmgw.store.executor``).

    store.messages   enqueue (the one durable commit), cancel, idempotency, get/list, expiry
    store.claims     claim_next, mark sending, settle, renew, recover, claims of a modem
    store.reports    status reports and their matching
    store.inbound    inbound parts, reassembly, inbound messages
    store.optouts    the opt-out list
    store.keys       API keys
    store.events     the outbox: events, consumers' cursors (read_after / advance)
    store.webhooks   webhook deliveries (the native webhooks' consumer of the outbox)
    store.modems     modem status rows
    store.views      read models for the console (per-SIM figures, search, batches, threads)
    store.smpp       the SMPP door: accounts, held parts, deliver_sm owed
    store.rules      inbound rules: what each rule did, tags, the auto-reply window
    store.simcare    SIM care counters (pacing, calendar caps, warm-up) and cost sums
    store.schedules  recurring schedules and their claims; SIM keep-alive state, runs, alerts
    store.contacts   contacts, groups, tags (opt-out status joined from store.optouts)
    store.campaigns  campaigns, their recipients and progress
    store.rollup     report aggregates (daily rollup from the outbox) and reports
    store.retention  pruning in batches, the pruner's lease
    store.erasure    erasing a number from every registered table
    store.audit      the audit log of admin actions
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from gsmgw.errors import StoreError
from gsmgw.store.audit import AuditRepo
from gsmgw.store.campaigns import CampaignsRepo
from gsmgw.store.claims import ClaimsRepo
from gsmgw.store.contacts import ContactsRepo
from gsmgw.store.erasure import ErasureRepo
from gsmgw.store.events import EventsRepo
from gsmgw.store.executor import Executor, install_events_signal
from gsmgw.store.inbound import InboundRepo
from gsmgw.store.keys import KeysRepo
from gsmgw.store.messages import WORK_CHANNEL, MessagesRepo
from gsmgw.store.modems import ModemsRepo
from gsmgw.store.optouts import OptoutsRepo
from gsmgw.store.reports import ReportsRepo
from gsmgw.store.retention import RetentionRepo
from gsmgw.store.rollup import RollupRepo
from gsmgw.store.rules_repo import RulesRepo
from gsmgw.store.schedules_repo import SchedulesRepo
from gsmgw.store.simcare import SimCareRepo
from gsmgw.store.smpp_repo import SmppRepo
from gsmgw.store.tables import postgresql_options
from gsmgw.store.views import ViewsRepo
from gsmgw.store.webhooks import WebhooksRepo

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


MIGRATION_VERSIONS = Path(__file__).with_name("migrations") / "versions"
_REVISION = re.compile(r"^revision(?:\s*:[^=]*)?\s*=\s*[\"']([^\"']+)[\"']", re.M)
_DOWN = re.compile(r"^down_revision(?:\s*:[^=]*)?\s*=\s*(.*)$", re.M)


def script_heads() -> set[str] | None:
    """The head revisions of the shipped migrations, read from their files without
    importing alembic (``tests/store`` checks it against alembic's own answer); None
    when a file does not read as expected (then alembic decides)."""
    revisions: set[str] = set()
    downs: set[str] = set()
    for path in MIGRATION_VERSIONS.glob("*.py"):
        src = path.read_text(encoding="utf-8")
        rev, down = _REVISION.search(src), _DOWN.search(src)
        if rev is None or down is None:
            return None
        revisions.add(rev.group(1))
        downs.update(re.findall(r"[\"']([^\"']+)[\"']", down.group(1)))
    return revisions - downs


def open_engine(url: str, *, sqlite_synchronous: str = "FULL") -> tuple[Engine, bool]:
    """The engine for ``url`` and whether it is SQLite (WAL, foreign keys on)."""
    try:
        u = make_url(url)
    except ArgumentError:
        raise StoreError(f"{url!r} is not a database URL: write sqlite:////ABSOLUTE/PATH.db or "
                         "postgresql+psycopg://USER@HOST/DB") from None
    if u.get_backend_name() == "sqlite":
        # The folder is not created here: a missing folder is a mistyped path or a
        # state folder nobody made (store.ownership.check_expected says which).
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine, True
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    postgresql_options()
    try:
        return create_engine(u, pool_size=8, max_overflow=4, pool_pre_ping=True), False
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"{u.drivername} needs the PostgreSQL driver: pip install 'gsmgw[postgres]' ({exc})"
        ) from None


class Store:
    """Owns the engine and the executor; holds the repositories."""

    def __init__(
        self,
        url: str,
        *,
        host: str = "local",
        sqlite_synchronous: str = "FULL",
        default_region: str | None = None,
    ) -> None:
        """``host`` names this gateway in leases; ``default_region`` (ISO 3166, the
        API's ``default_region``) is where national renderings of numbers are read
        when a status report, an inbound sender or an opt-out is matched."""
        self.url = url
        self.host = host
        self.engine, self.is_sqlite = open_engine(url, sqlite_synchronous=sqlite_synchronous)
        self.db = Executor(self.engine, is_sqlite=self.is_sqlite)
        install_events_signal(self.engine, self.db.signal_events)
        self._closed = False
        self.keys = KeysRepo(self.db)
        self.messages = MessagesRepo(self.db)
        self.reports = ReportsRepo(self.db, region=default_region)
        self.claims = ClaimsRepo(self.db, host, self.reports)
        self.optouts = OptoutsRepo(self.db, region=default_region)
        self.inbound = InboundRepo(self.db, self.optouts, region=default_region)
        self.events = EventsRepo(self.db)
        self.webhooks = WebhooksRepo(self.db, host)
        self.modems = ModemsRepo(self.db, host)
        self.views = ViewsRepo(self.db)
        self.smpp = SmppRepo(self.engine, host)  # the SMPP door's tables (issue 22)
        self.rules = RulesRepo(self.engine)  # inbound rules: runs, tags, reply window (issue 19)
        self.simcare = SimCareRepo(self.db)  # SIM care counters and cost (issue 20)
        self.schedules = SchedulesRepo(self.db, host)  # recurring schedules, SIM keep-alive (issue 20)
        # Contacts, groups and campaigns (issue 21 parts 1-2).
        self.contacts = ContactsRepo(self.db, self.optouts)
        self.campaigns = CampaignsRepo(self.db)
        # Reports, retention, erasure and audit (issue 21).
        self.rollup = RollupRepo(self.db)
        self.retention = RetentionRepo(self.db, host)
        self.erasure = ErasureRepo(self.db, region=default_region)
        self.audit = AuditRepo(self.db, host)

    async def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a blocking store method off the event loop.

        On SQLite, calls go to the one writer thread, and the calls that queue up
        while a transaction commits are run together in the next one (group
        commit): one fsync for many sends' bookkeeping, which keeps a busy pool's
        modems from waiting on the disk. On PostgreSQL each call runs on its own.
        """
        return await self.db.call(fn, *args, **kwargs)

    def hot_waiting(self) -> bool:
        """Whether hot-path calls wait for the writer thread (SQLite): background batches
        (the prune's, the rollup's) pass this as their ``stop`` and end early."""
        return self.db.hot_waiting()

    async def call_read(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``call`` for a method that only reads (counts, reports, dashboards): on SQLite
        it runs beside the writer thread, on a connection that cannot write, so a long
        read never holds the send pipeline's commits back. On PostgreSQL it is ``call``."""
        return await self.db.call_read(fn, *args, **kwargs)

    async def call_idle(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``call`` at low priority (background work such as the prune's batches): on
        SQLite it runs only when no other store call is queued, in a transaction of
        its own, never in a group commit with the hot path's calls."""
        return await self.db.call_idle(fn, *args, **kwargs)

    async def synced(self) -> None:
        """Return once the lax commits of calls already returned are on disk (see
        ``Executor.synced``): what must follow their durability awaits this."""
        await self.db.synced()

    def on_events_committed(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Wake ``callback`` (on the running loop) after this process commits outbox
        events; returns the function that unregisters it. Other processes' events
        (PostgreSQL hosts) are not signalled: consumers still poll for those."""
        return self.db.on_events_committed(callback)

    @property
    def events_signalled(self) -> bool:
        """Whether every event of this store is committed by this process, so the
        signal above tells of each one: SQLite, whose file this gateway holds
        exclusively (store.ownership). Consumers then poll only as a safety net."""
        return self.is_sqlite

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.db.shutdown()
        self.engine.dispose()

    def migrate(self) -> None:
        """Upgrade to the newest schema; a store already there is left alone without
        importing alembic (which, with its PostgreSQL impl, costs every start ~11 MB
        resident: issue 17)."""
        if self.at_head():
            return
        from gsmgw.store.migrate import upgrade

        upgrade(self.engine)

    def at_head(self) -> bool:
        """True if the store's alembic revision is the one head of the shipped migrations."""
        heads = script_heads()
        if heads is None or len(heads) != 1:
            return False
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        except DBAPIError:  # no alembic_version yet: a new store
            return False
        return set(rows) == heads

    async def listen_for_work(self, on_work: Callable[[], None]) -> None:
        """PostgreSQL LISTEN: call ``on_work`` whenever any host queues messages.

        Runs until cancelled; reconnects with backoff if the connection drops. On
        SQLite (one host) it returns at once: the API wakes the pool directly.
        """
        if self.is_sqlite:
            return
        import psycopg  # the driver SQLAlchemy uses for PostgreSQL here

        dsn = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        delay_s = 1.0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {WORK_CHANNEL}")
                    delay_s = 1.0
                    on_work()  # anything queued while we were not listening
                    async for _note in conn.notifies():
                        on_work()
            except (psycopg.Error, OSError) as exc:
                log.warning("LISTEN %s lost (%s); reconnecting in %.0f s", WORK_CHANNEL, exc, delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, 30.0)


__all__ = ["Store", "open_engine"]
