"""All SQL of gsmgw. Synchronous methods, run off the event loop by ``Store.call``.

Every state change that matters is one transaction; ``enqueue`` returns only
after the commit, so an accepted message survives a crash (``kill -9``) that
comes after the HTTP reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from gsmgw.domain import EventType, MessageState
from gsmgw.errors import StoreError
from gsmgw.store import tables as t
from gsmgw.store.inbound_repo import InboundRepo

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

SCOPES = frozenset({"send", "read", "admin"})


WORK_CHANNEL = "gsmgw_work"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id() -> str:
    """Time-ordered id: 12 hex digits of milliseconds, then 12 random hex digits."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


def batchable(fn: Callable[P, R]) -> Callable[P, R]:
    """Mark a Store method safe to share a group-commit transaction.

    It must open its transactions with ``self._tx()`` / ``self._read()`` (never
    ``self.engine`` directly, which would wait on the batch's own write lock) and
    let every database error propagate.
    """
    fn.batchable = True  # type: ignore[attr-defined]
    return fn


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    name: str
    scopes: frozenset[str]
    rate_per_s: int = 0
    daily_quota: int = 0


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A validated message ready to be queued (one recipient)."""

    to_number: str
    text: str
    encoding: str
    parts_total: int
    priority: int = 0
    send_at: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    sim_requested: str | None = None
    flash: bool = False
    delivery_report: bool = True
    transactional: bool = False
    resend_unknown: bool = False
    callback_url: str | None = None
    # From the routing rules: the SIM group to use, and after how long any SIM may
    # (None = strict).
    route_group: str | None = None
    route_fallback_s: float | None = None


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    batch_id: str
    message_ids: tuple[str, ...]
    # True when the Idempotency-Key matched an earlier request: nothing new was queued.
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class PartResult:
    seq: int
    state: MessageState
    tp_mr: int | None = None
    error_code: str | None = None
    error_text: str | None = None


@dataclass(frozen=True, slots=True)
class ReportIn:
    """A decoded status report, as the store records and matches it."""

    modem_id: str
    tp_mr: int
    recipient: str
    status: int
    category: str
    meaning: str
    scts: dt.datetime | None
    discharge_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class ReportMatch:
    report_id: int
    message_id: str | None
    seq: int | None = None
    # Set when the report changed the message's state (delivered / failed).
    new_state: MessageState | None = None


@dataclass(slots=True)
class ClaimedMessage:
    id: str
    to_number: str
    text: str
    parts_total: int
    flash: bool
    delivery_report: bool
    resend_unknown: bool
    concat_ref: int
    attempts: int
    valid_until: dt.datetime
    # Sequence numbers (1-based) of the parts still to send, in order.
    pending_seqs: list[int] = field(default_factory=list)


class Store(InboundRepo):
    """Owns the engine and a worker thread pool for blocking database calls."""

    def __init__(
        self,
        url: str,
        *,
        host: str = "local",
        sqlite_synchronous: str = "FULL",
    ) -> None:
        self.url = url
        self.host = host
        u = make_url(url)
        self.is_sqlite = u.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if u.database and u.database != ":memory:":
                Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}
            )
            sync_mode = sqlite_synchronous

            @event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={sync_mode}")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

            # One writer thread: SQLite serialises writers anyway, and this keeps
            # "database is locked" out of the hot path.
            workers = 1
        else:
            if u.drivername == "postgresql":
                u = u.set(drivername="postgresql+psycopg")
            try:
                self.engine = create_engine(u, pool_size=8, max_overflow=4, pool_pre_ping=True)
            except ModuleNotFoundError as exc:
                raise StoreError(
                    f"{u.drivername} needs the PostgreSQL driver: pip install 'gsmgw[postgres]' ({exc})"
                ) from None
            workers = 6
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gsmgw-db")
        self._closed = False
        self._local = threading.local()
        self._queue_lock = threading.Lock()
        self._queue: list[tuple[Callable[[], Any], asyncio.Future[Any], asyncio.AbstractEventLoop, bool]] = []
        self._flushing = False

    # --- plumbing -----------------------------------------------------------

    async def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a blocking store method off the event loop.

        On SQLite, calls go to the one writer thread, and the calls that queue up
        while a transaction commits are run together in the next one (group
        commit): one fsync for many sends' bookkeeping, which keeps a busy pool's
        modems from waiting on the disk. On PostgreSQL each call runs on its own.
        """
        loop = asyncio.get_running_loop()
        if not self.is_sqlite:
            return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))
        fut: asyncio.Future[R] = loop.create_future()
        with self._queue_lock:
            self._queue.append((lambda: fn(*args, **kwargs), fut, loop, getattr(fn, "batchable", False)))
            start = not self._flushing
            self._flushing = True
        if start:
            self._executor.submit(self._flush)
        return await fut

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Connection]:
        """A transaction: the group's shared one inside a batch, else a new one."""
        shared = getattr(self._local, "conn", None)
        if shared is not None:
            yield shared
            return
        with self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        shared = getattr(self._local, "conn", None)
        if shared is not None:
            yield shared
            return
        with self.engine.connect() as conn:
            yield conn

    def _flush(self) -> None:
        """Writer thread: run queued calls, in order, until the queue is empty.

        Consecutive calls of ``@batchable`` methods share one transaction; any
        other call runs on its own.
        """
        while True:
            with self._queue_lock:
                queued, self._queue = self._queue, []
                if not queued:
                    self._flushing = False
                    return
            run: list[tuple[Callable[[], Any], asyncio.Future[Any], asyncio.AbstractEventLoop, bool]] = []
            for item in queued:
                if not item[3] and run:
                    self._run_batch([i[:3] for i in run])
                    run = []
                run.append(item)
                if not item[3]:
                    self._run_batch([i[:3] for i in run])
                    run = []
            if run:
                self._run_batch([i[:3] for i in run])

    def _run_batch(self, batch: list[tuple[Callable[[], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]]) -> None:
        """Run calls in one transaction. If one fails, the transaction is rolled back,
        that call is run on its own (for its own outcome), and the rest retried."""
        while len(batch) > 1:
            results: list[Any] = []
            try:
                with self.engine.begin() as conn:
                    self._local.conn = conn
                    try:
                        for fn, _fut, _loop in batch:
                            results.append(fn())
                    finally:
                        self._local.conn = None
            except Exception:
                failed = len(results)  # the call that raised
                if failed >= len(batch):  # the commit itself failed: no culprit, go one by one
                    break
                self._run_alone(batch[failed])
                batch = batch[:failed] + batch[failed + 1 :]
                continue
            for (_fn, fut, loop), result in zip(batch, results, strict=True):
                _hand_back(loop, fut, result, None)
            return
        for item in batch:
            self._run_alone(item)

    def _run_alone(self, item: tuple[Callable[[], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]) -> None:
        fn, fut, loop = item
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting coroutine, whatever it is
            _hand_back(loop, fut, None, exc)
        else:
            _hand_back(loop, fut, result, None)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._executor.shutdown(wait=True)
        self.engine.dispose()

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

    def migrate(self) -> None:
        from gsmgw.store.migrate import upgrade

        upgrade(self.engine)

    # --- API keys -----------------------------------------------------------

    @staticmethod
    def _hash_secret(secret: str) -> str:
        # API keys are 192-bit random strings, so a fast hash is safe here (no
        # dictionary to attack); what matters is that the database never holds them.
        return hashlib.sha256(secret.encode()).hexdigest()

    def create_api_key(
        self,
        name: str,
        scopes: Iterable[str],
        *,
        rate_per_s: int = 0,
        daily_quota: int = 0,
        key: str | None = None,
    ) -> tuple[str, str]:
        """Create a key; returns (key id, the full key). The key is shown once only."""
        scope_set = set(scopes)
        unknown = scope_set - SCOPES
        if unknown or not scope_set:
            raise ValueError(f"scopes must be a non-empty subset of {sorted(SCOPES)}")
        key_id = secrets.token_hex(4)
        full = key if key is not None else f"gsk_{key_id}_{secrets.token_urlsafe(24)}"
        if key is not None:
            # A caller-chosen key (gsmgw demo --api-key): stored hashed like any other.
            if len(key) < 16 or len(key) > 200 or not key.isprintable() or " " in key:
                raise ValueError("an API key must be 16-200 printable characters without spaces")
            key_id = _key_id_of(key) or hashlib.sha256(full.encode()).hexdigest()[:8]
        with self._tx() as conn:
            if key is not None:
                conn.execute(t.api_keys.delete().where(t.api_keys.c.id == key_id))
            conn.execute(
                insert(t.api_keys).values(
                    id=key_id,
                    name=name,
                    key_hash=self._hash_secret(full),
                    scopes=",".join(sorted(scope_set)),
                    rate_per_s=rate_per_s,
                    daily_quota=daily_quota,
                    created_at=utcnow(),
                )
            )
        return key_id, full

    @batchable
    def verify_api_key(self, presented: str) -> ApiKey | None:
        digest = self._hash_secret(presented)
        key_id = _key_id_of(presented) or hashlib.sha256(presented.encode()).hexdigest()[:8]
        with self._read() as conn:
            rows = conn.execute(select(t.api_keys).where(t.api_keys.c.id == key_id)).all()
        for row in rows:
            if row.revoked_at is None and hmac.compare_digest(row.key_hash, digest):
                return ApiKey(
                    id=row.id,
                    name=row.name,
                    scopes=frozenset(row.scopes.split(",")),
                    rate_per_s=row.rate_per_s,
                    daily_quota=row.daily_quota,
                )
        return None

    def revoke_api_key(self, key_id: str) -> bool:
        with self._tx() as conn:
            res = conn.execute(
                update(t.api_keys)
                .where(t.api_keys.c.id == key_id, t.api_keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        return res.rowcount == 1

    def list_api_keys(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(select(t.api_keys).order_by(t.api_keys.c.created_at)).all()
        return [
            {
                "id": r.id,
                "name": r.name,
                "scopes": r.scopes.split(","),
                "created_at": r.created_at,
                "revoked_at": r.revoked_at,
            }
            for r in rows
        ]

    # --- intake -------------------------------------------------------------

    @batchable
    def enqueue(
        self,
        items: Sequence[NewMessage],
        *,
        api_key_id: str | None = None,
        idempotency_key: str | None = None,
        default_ttl_s: float = 86400.0,
        sticky_s: float = 0.0,
        sticky_fallback_s: float = 60.0,
    ) -> EnqueueResult:
        """Queue messages in one transaction; returns once committed."""
        if not items:
            raise ValueError("nothing to enqueue")
        now = utcnow()
        batch_id = new_id()
        rows: list[dict[str, Any]] = []
        parts: list[dict[str, Any]] = []
        sticky: dict[str, str] = {}
        if sticky_s > 0:
            sticky = self._last_sims({m.to_number for m in items if m.sim_requested is None},
                                     now - dt.timedelta(seconds=sticky_s))
        for i, m in enumerate(items):
            mid = batch_id if len(items) == 1 else new_id()
            send_at = m.send_at or now
            preferred = sticky.get(m.to_number) if m.sim_requested is None else None
            rows.append(
                {
                    "id": mid,
                    "batch_id": batch_id,
                    "api_key_id": api_key_id,
                    # Only the first row carries the key: the unique constraint then
                    # makes a replayed request fail as a whole.
                    "idempotency_key": idempotency_key if i == 0 else None,
                    "to_number": m.to_number,
                    "text": m.text,
                    "encoding": m.encoding,
                    "parts_total": m.parts_total,
                    "state": MessageState.QUEUED.value,
                    "priority": m.priority,
                    "sim_requested": m.sim_requested,
                    "flash": m.flash,
                    "delivery_report": m.delivery_report,
                    "transactional": m.transactional,
                    "resend_unknown": m.resend_unknown,
                    "callback_url": m.callback_url,
                    "concat_ref": secrets.randbelow(256),  # 8-bit IEI: what every phone reassembles
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                    "send_at": send_at,
                    "valid_until": m.valid_until or now + dt.timedelta(seconds=default_ttl_s),
                    "route_group": m.route_group,
                    "group_until": send_at + dt.timedelta(seconds=m.route_fallback_s)
                    if m.route_group and m.route_fallback_s
                    else None,
                    "preferred_sim": preferred,
                    "prefer_until": send_at + dt.timedelta(seconds=sticky_fallback_s) if preferred else None,
                }
            )
            for seq in range(1, m.parts_total + 1):
                parts.append(
                    {
                        "message_id": mid,
                        "seq": seq,
                        "state": MessageState.QUEUED.value,
                        "recipient": m.to_number,
                    }
                )
        try:
            with self._tx() as conn:
                conn.execute(insert(t.messages), rows)
                conn.execute(insert(t.message_parts), parts)
                if not self.is_sqlite:
                    # Wakes idle dispatchers on every host at commit (LISTEN in listen_for_work).
                    conn.execute(text(f"NOTIFY {WORK_CHANNEL}"))
                # No event for "queued": the row records it, and a million-message bulk
                # would otherwise leave a million events for the webhook fan-out to walk.
        except IntegrityError:
            if idempotency_key is None or getattr(self._local, "conn", None) is not None:
                raise  # inside a group commit: let the batch fall back to one-by-one
            replay = self.find_by_idempotency_key(api_key_id, idempotency_key)
            if replay is None:
                raise
            return replay
        return EnqueueResult(batch_id=batch_id, message_ids=tuple(r["id"] for r in rows))

    def _last_sims(self, numbers: set[str], since: dt.datetime) -> dict[str, str]:
        """The SIM each number last got a message from, since ``since``."""
        if not numbers:
            return {}
        m = t.messages
        out: dict[str, str] = {}
        with self._read() as conn:
            rows = conn.execute(
                select(m.c.to_number, m.c.modem_id)
                .where(m.c.to_number.in_(numbers), m.c.sent_at >= since, m.c.modem_id.is_not(None))
                .order_by(m.c.sent_at)
            ).all()
        for r in rows:
            out[r.to_number] = r.modem_id  # newest wins
        return out

    @batchable
    def cancel(self, message_id: str) -> tuple[bool, str | None]:
        """Cancel a queued message. Returns (cancelled?, state now or None if absent)."""
        now = utcnow()
        m, p = t.messages, t.message_parts
        with self._tx() as conn:
            res = conn.execute(
                update(m)
                .where(m.c.id == message_id, m.c.state == MessageState.QUEUED)
                .values(state=MessageState.CANCELLED, updated_at=now, error_code="cancelled",
                        error_text="cancelled through the API")
            )
            if res.rowcount == 1:
                conn.execute(
                    update(p)
                    .where(p.c.message_id == message_id, p.c.state == MessageState.QUEUED)
                    .values(state=MessageState.CANCELLED)
                )
                self._events(conn, EventType.SMS_CANCELLED, [message_id], now)
                return True, MessageState.CANCELLED.value
            state = conn.execute(select(m.c.state).where(m.c.id == message_id)).scalar()
            return False, state

    def find_by_idempotency_key(self, api_key_id: str | None, key: str) -> EnqueueResult | None:
        with self._read() as conn:
            first = conn.execute(
                select(t.messages.c.batch_id).where(
                    t.messages.c.api_key_id == api_key_id, t.messages.c.idempotency_key == key
                )
            ).first()
            if first is None:
                return None
            ids = conn.execute(
                select(t.messages.c.id)
                .where(t.messages.c.batch_id == first.batch_id)
                .order_by(t.messages.c.id)
            ).scalars()
            return EnqueueResult(batch_id=first.batch_id, message_ids=tuple(ids), replayed=True)

    @batchable
    def count_accepted_since(self, api_key_id: str, since: dt.datetime) -> int:
        """Messages a key has had accepted since ``since`` (daily quotas)."""
        with self._read() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(t.messages)
                    .where(t.messages.c.api_key_id == api_key_id, t.messages.c.created_at >= since)
                ).scalar_one()
            )

    @batchable
    def queue_depth(self) -> int:
        with self._read() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(t.messages)
                    .where(t.messages.c.state.in_([MessageState.QUEUED, MessageState.SENDING]))
                ).scalar_one()
            )

    # --- reading ------------------------------------------------------------

    @batchable
    def get_message(self, message_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = conn.execute(select(t.messages).where(t.messages.c.id == message_id)).first()
            if row is None:
                return None
            parts = conn.execute(
                select(t.message_parts)
                .where(t.message_parts.c.message_id == message_id)
                .order_by(t.message_parts.c.seq)
            ).all()
        out = dict(row._mapping)
        out["parts"] = [dict(p._mapping) for p in parts]
        return out

    @batchable
    def list_messages(
        self,
        *,
        state: str | None = None,
        to_number: str | None = None,
        before_id: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        q = select(t.messages).order_by(t.messages.c.id.desc()).limit(limit)
        if state:
            q = q.where(t.messages.c.state == state)
        if to_number:
            q = q.where(t.messages.c.to_number == to_number)
        if before_id:
            q = q.where(t.messages.c.id < before_id)
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(q).all()]

    # --- dispatch -------------------------------------------------------------

    @batchable
    def expire_due(self, now: dt.datetime | None = None) -> list[str]:
        """Queued messages past their validity become ``expired``; returns their ids."""
        now = now or utcnow()
        with self._tx() as conn:
            ids = list(
                conn.execute(
                    select(t.messages.c.id)
                    .where(
                        t.messages.c.state == MessageState.QUEUED,
                        t.messages.c.valid_until <= now,
                    )
                    .limit(1000)
                ).scalars()
            )
            if ids:
                conn.execute(
                    update(t.messages)
                    .where(t.messages.c.id.in_(ids), t.messages.c.state == MessageState.QUEUED)
                    .values(
                        state=MessageState.EXPIRED,
                        updated_at=now,
                        error_code="expired",
                        error_text="validity ended before it could be sent",
                    )
                )
                conn.execute(
                    update(t.message_parts)
                    .where(
                        t.message_parts.c.message_id.in_(ids),
                        t.message_parts.c.state == MessageState.QUEUED,
                    )
                    .values(state=MessageState.EXPIRED)
                )
                self._events(conn, EventType.SMS_EXPIRED, ids, now)
        return ids

    @batchable
    def claim_next(
        self,
        modem_id: str,
        *,
        lease_s: float,
        group: str = "default",
        now: dt.datetime | None = None,
        avoid_grace_s: float = 10.0,
        mark_sending: bool = False,
    ) -> ClaimedMessage | None:
        """Take the most urgent queued message this modem may send, under a lease.

        With ``mark_sending`` its parts are also marked ``sending`` in the same
        commit (the caller writes the PDU next, so a crash makes them unknown).

        A message whose last attempt failed transiently on this SIM is left to the
        other SIMs for ``avoid_grace_s`` after it became due again; then this SIM
        may retry it too (it may be the only one).
        """
        now = now or utcnow()
        m = t.messages
        grace_cutoff = now - dt.timedelta(seconds=avoid_grace_s)
        with self._tx() as conn:
            for _attempt in range(5):
                q = (
                    select(m.c.id)
                    .where(
                        m.c.state == MessageState.QUEUED,
                        m.c.send_at <= now,
                        # coalesce() keeps this term off the expiry index: the queue must be
                        # walked in claim order (ix_messages_claim). Left to itself, SQLite
                        # searches by (state, valid_until) and sorts the whole queue, which
                        # with a million queued costs seconds per claim.
                        func.coalesce(m.c.valid_until, m.c.valid_until) > now,
                        or_(m.c.sim_requested.is_(None), m.c.sim_requested == modem_id),
                        or_(
                            m.c.last_failed_modem.is_(None),
                            m.c.last_failed_modem != modem_id,
                            m.c.sim_requested == modem_id,
                            m.c.send_at <= grace_cutoff,
                        ),
                        or_(
                            m.c.route_group.is_(None),
                            m.c.route_group == group,
                            and_(m.c.group_until.is_not(None), m.c.group_until <= now),
                        ),
                        or_(
                            m.c.preferred_sim.is_(None),
                            m.c.preferred_sim == modem_id,
                            m.c.prefer_until <= now,
                        ),
                    )
                    .order_by(m.c.priority.desc(), m.c.created_at)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
                msg_id = conn.execute(q).scalar()
                if msg_id is None:
                    return None
                res = conn.execute(
                    update(m)
                    .where(m.c.id == msg_id, m.c.state == MessageState.QUEUED)
                    .values(
                        state=MessageState.SENDING,
                        modem_id=modem_id,
                        lease_owner=self.host,
                        lease_until=now + dt.timedelta(seconds=lease_s),
                        attempts=m.c.attempts + 1,
                        updated_at=now,
                    )
                    .returning(
                        m.c.id,
                        m.c.to_number,
                        m.c.text,
                        m.c.parts_total,
                        m.c.flash,
                        m.c.delivery_report,
                        m.c.resend_unknown,
                        m.c.concat_ref,
                        m.c.attempts,
                        m.c.valid_until,
                    )
                ).first()
                if res is None:
                    continue  # another host took it between select and update
                seqs = list(
                    conn.execute(
                        select(t.message_parts.c.seq)
                        .where(
                            t.message_parts.c.message_id == msg_id,
                            t.message_parts.c.state == MessageState.QUEUED,
                        )
                        .order_by(t.message_parts.c.seq)
                    ).scalars()
                )
                if mark_sending and seqs:
                    # The idle path: claim and mark in one commit, the PDU follows at once.
                    conn.execute(
                        update(t.message_parts)
                        .where(t.message_parts.c.message_id == msg_id, t.message_parts.c.seq.in_(seqs))
                        .values(state=MessageState.SENDING, modem_id=modem_id, sending_at=now)
                    )
                return ClaimedMessage(
                    id=res.id,
                    to_number=res.to_number,
                    text=res.text,
                    parts_total=res.parts_total,
                    flash=res.flash,
                    delivery_report=res.delivery_report,
                    resend_unknown=res.resend_unknown,
                    concat_ref=res.concat_ref,
                    attempts=res.attempts,
                    valid_until=res.valid_until,
                    pending_seqs=seqs,
                )
        return None

    @batchable
    def mark_parts_sending(self, message_id: str, seqs: Sequence[int], modem_id: str) -> None:
        """Committed *before* any PDU is written: after a crash these parts are ``unknown``."""
        now = utcnow()
        with self._tx() as conn:
            conn.execute(
                update(t.message_parts)
                .where(t.message_parts.c.message_id == message_id, t.message_parts.c.seq.in_(seqs))
                .values(state=MessageState.SENDING, modem_id=modem_id, sending_at=now)
            )

    @batchable
    def settle_claim(
        self,
        message_id: str,
        results: Sequence[PartResult],
        *,
        retry_at: dt.datetime | None = None,
        report_window_s: float = 3 * 86400.0,
        then_mark: tuple[str, Sequence[int], str] | None = None,
        uncount_attempt: bool = False,
    ) -> MessageState:
        """Record what a send achieved and close the claim, in one transaction.

        Parts named in ``results`` take their state (SENT with TP-MR, FAILED, UNKNOWN,
        or QUEUED for a transient error). Parts still ``sending`` that are not named
        were never written and go back to ``queued``. Then the message is settled:
        final when its parts say so, else requeued at ``retry_at`` (pinned to the
        same SIM if some part already left, so that the phone can reassemble).

        ``then_mark`` = (message id, seqs, modem) marks the modem's next message
        ``sending`` in the same commit (the pipelined send loop); ``uncount_attempt``
        gives back the attempt of a claim that was released unwritten.
        """
        with self._tx() as conn:
            return self._settle_in(conn, message_id, results, retry_at=retry_at,
                                   report_window_s=report_window_s, then_mark=then_mark,
                                   uncount_attempt=uncount_attempt)

    def _settle_in(
        self,
        conn: Connection,
        message_id: str,
        results: Sequence[PartResult],
        *,
        retry_at: dt.datetime | None = None,
        report_window_s: float = 3 * 86400.0,
        then_mark: tuple[str, Sequence[int], str] | None = None,
        uncount_attempt: bool = False,
    ) -> MessageState:
        """settle_claim's work on an open connection (recover() settles through it too)."""
        now = utcnow()
        p, m = t.message_parts, t.messages
        for r in results:
            values: dict[str, Any] = {"state": r.state}
            if r.state is MessageState.SENT:
                values.update(tp_mr=r.tp_mr, sent_at=now, error_code=None, error_text=None)
            else:
                values.update(error_code=r.error_code, error_text=r.error_text)
            conn.execute(
                update(p).where(p.c.message_id == message_id, p.c.seq == r.seq).values(**values)
            )
        conn.execute(
            update(p)
            .where(p.c.message_id == message_id, p.c.state == MessageState.SENDING)
            .values(state=MessageState.QUEUED)
        )
        states = [
            s for (s,) in conn.execute(select(p.c.state).where(p.c.message_id == message_id))
        ]
        settled = _settle(states)
        if settled in (MessageState.FAILED, MessageState.UNKNOWN):
            # The rest was never written; it will not be either.
            conn.execute(
                update(p)
                .where(p.c.message_id == message_id, p.c.state == MessageState.QUEUED)
                .values(
                    state=MessageState.CANCELLED,
                    error_code="not_sent",
                    error_text="not sent because an earlier part did not go through",
                )
            )
        last_err = next((r for r in reversed(results) if r.error_code), None)
        values = {"updated_at": now, "lease_owner": None, "lease_until": None}
        if last_err is not None:
            values.update(error_code=last_err.error_code, error_text=last_err.error_text)
        if settled is None:
            values.update(state=MessageState.QUEUED, send_at=retry_at or now)
            modem_id = conn.execute(select(m.c.modem_id).where(m.c.id == message_id)).scalar()
            if last_err is not None:
                values["last_failed_modem"] = modem_id  # other SIMs get the retry first
            if MessageState.SENT in states:
                values["sim_requested"] = modem_id  # the rest from the same SIM, or no reassembly
            else:
                values["modem_id"] = None
            final = MessageState.QUEUED
        else:
            values["state"] = settled
            if settled is MessageState.SENT:
                values.update(sent_at=now, error_code=None, error_text=None)
            final = settled
        if uncount_attempt:
            values["attempts"] = m.c.attempts - 1
        conn.execute(update(m).where(m.c.id == message_id).values(**values))
        if final is not MessageState.QUEUED:
            self._events(conn, EventType.for_message(final), [message_id], now)
        if then_mark is not None:
            next_id, next_seqs, next_modem = then_mark
            conn.execute(
                update(p)
                .where(p.c.message_id == next_id, p.c.seq.in_(next_seqs))
                .values(state=MessageState.SENDING, modem_id=next_modem, sending_at=now)
            )
        if any(r.state is MessageState.SENT for r in results):
            self._match_waiting_reports(conn, message_id, report_window_s)
            if final is MessageState.SENT:
                final = MessageState(
                    conn.execute(select(m.c.state).where(m.c.id == message_id)).scalar_one()
                )
        return final

    @batchable
    def record_status_report(
        self,
        modem_id: str,
        *,
        tp_mr: int,
        recipient: str,
        status: int,
        category: str,
        meaning: str,
        scts: dt.datetime | None,
        discharge_at: dt.datetime | None,
        window_s: float,
    ) -> ReportMatch:
        """Store a status report and apply it to the part it answers, in one transaction.

        Matched on (SIM, TP-MR, recipient) among parts sent within ``window_s``;
        TP-MR wraps at 256, so among several candidates the part sent closest to
        the report's SCTS (when the SC took the message) wins. A report that
        matches nothing is kept (``message_id`` NULL) and retried whenever a part
        is recorded as sent: it may have overtaken the send's own commit.
        """
        now = utcnow()
        with self._tx() as conn:
            report_id = conn.execute(
                insert(t.status_reports)
                .values(
                    modem_id=modem_id,
                    tp_mr=tp_mr,
                    recipient=recipient,
                    status=status,
                    category=category,
                    meaning=meaning,
                    scts=scts,
                    discharge_at=discharge_at,
                    received_at=now,
                )
                .returning(t.status_reports.c.id)
            ).scalar_one()
            rep = ReportIn(modem_id, tp_mr, recipient, status, category, meaning, scts, discharge_at)
            return self._apply_report(conn, report_id, rep, window_s, now)

    def _apply_report(
        self, conn: Connection, report_id: int, rep: ReportIn, window_s: float, now: dt.datetime
    ) -> ReportMatch:
        modem_id, tp_mr, recipient, status = rep.modem_id, rep.tp_mr, rep.recipient, rep.status
        category, meaning, scts, discharge_at = rep.category, rep.meaning, rep.scts, rep.discharge_at
        p = t.message_parts
        rows = conn.execute(
            select(p.c.message_id, p.c.seq, p.c.recipient, p.c.sent_at, p.c.state).where(
                p.c.modem_id == modem_id,
                p.c.tp_mr == tp_mr,
                p.c.sent_at >= now - dt.timedelta(seconds=window_s),
            )
        ).all()
        cands = [r for r in rows if same_number(r.recipient, recipient)]
        if not cands:
            return ReportMatch(report_id=report_id, message_id=None)
        ref = scts or now
        best = min(cands, key=lambda r: abs((r.sent_at - ref).total_seconds()))
        conn.execute(
            update(t.status_reports)
            .where(t.status_reports.c.id == report_id)
            .values(message_id=best.message_id, seq=best.seq)
        )
        values: dict[str, Any] = {"report_status": status}
        if category == "delivered":
            values.update(state=MessageState.DELIVERED, delivered_at=discharge_at or now)
        elif category in ("failed", "failed-temporary"):
            values.update(
                state=MessageState.FAILED, error_code=f"report:0x{status:02X}", error_text=meaning
            )
        conn.execute(
            update(p).where(p.c.message_id == best.message_id, p.c.seq == best.seq).values(**values)
        )
        m = t.messages
        msg_state = conn.execute(select(m.c.state).where(m.c.id == best.message_id)).scalar()
        if msg_state not in (MessageState.SENT, MessageState.DELIVERED):
            # Still sending other parts (or already final): the claim's settlement decides.
            return ReportMatch(report_id=report_id, message_id=best.message_id, seq=best.seq)
        states = [
            s for (s,) in conn.execute(select(p.c.state).where(p.c.message_id == best.message_id))
        ]
        settled = _settle(states)
        new_state = None
        if settled is not None and settled != msg_state:
            mvalues: dict[str, Any] = {"state": settled, "updated_at": now}
            if settled is MessageState.DELIVERED:
                mvalues["delivered_at"] = discharge_at or now
            if settled is MessageState.FAILED:
                mvalues.update(error_code=f"report:0x{status:02X}", error_text=meaning)
            conn.execute(update(m).where(m.c.id == best.message_id).values(**mvalues))
            self._events(conn, EventType.for_message(settled), [best.message_id], now)
            new_state = settled
        return ReportMatch(
            report_id=report_id, message_id=best.message_id, seq=best.seq, new_state=new_state
        )

    def _match_waiting_reports(self, conn: Connection, message_id: str, window_s: float) -> None:
        """Reports that arrived before this message's parts were recorded as sent."""
        p, sr = t.message_parts, t.status_reports
        parts = conn.execute(
            select(p.c.modem_id, p.c.tp_mr).where(
                p.c.message_id == message_id, p.c.state == MessageState.SENT, p.c.tp_mr.is_not(None)
            )
        ).all()
        now = utcnow()
        for part in parts:
            waiting = conn.execute(
                select(sr).where(
                    sr.c.modem_id == part.modem_id,
                    sr.c.tp_mr == part.tp_mr,
                    sr.c.message_id.is_(None),
                    sr.c.received_at >= now - dt.timedelta(seconds=window_s),
                )
            ).all()
            for w in waiting:
                rep = ReportIn(w.modem_id, w.tp_mr, w.recipient, w.status, w.category, w.meaning,
                               w.scts, w.discharge_at)
                self._apply_report(conn, w.id, rep, window_s, now)

    @batchable
    def list_status_reports(
        self, *, unmatched_only: bool = False, limit: int = 100
    ) -> list[dict[str, Any]]:
        q = select(t.status_reports).order_by(t.status_reports.c.id.desc()).limit(limit)
        if unmatched_only:
            q = q.where(t.status_reports.c.message_id.is_(None))
        with self._read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    @batchable
    def renew_lease(self, message_id: str, lease_s: float) -> None:
        with self._tx() as conn:
            conn.execute(
                update(t.messages)
                .where(t.messages.c.id == message_id, t.messages.c.lease_owner == self.host)
                .values(lease_until=utcnow() + dt.timedelta(seconds=lease_s))
            )

    def recover(self, *, only_expired_leases: bool = False) -> dict[str, int]:
        """After a crash: parts left ``sending`` become ``unknown``; untouched claims requeue.

        At start (``only_expired_leases=False``) this host's own claims are settled;
        claims of other hosts are settled only once their lease has run out.
        """
        now = utcnow()
        m, p = t.messages, t.message_parts
        counts = {"unknown": 0, "requeued": 0, "sent": 0}
        with self._tx() as conn:
            cond = and_(m.c.state == MessageState.SENDING, m.c.lease_until < now)
            if not only_expired_leases:
                cond = or_(
                    cond, and_(m.c.state == MessageState.SENDING, m.c.lease_owner == self.host)
                )
            rows = conn.execute(select(m.c.id, m.c.resend_unknown).where(cond)).all()
            for row in rows:
                # Resendable messages go back to the queue; others' in-flight parts are unknown.
                target = MessageState.QUEUED if row.resend_unknown else MessageState.UNKNOWN
                code = "resent_after_crash" if row.resend_unknown else "unknown_after_crash"
                seqs = conn.execute(
                    select(p.c.seq).where(p.c.message_id == row.id, p.c.state == MessageState.SENDING)
                ).scalars()
                results = [
                    PartResult(seq, target, error_code=code,
                               error_text="the gateway stopped while this part was being sent; "
                               "it may or may not have left the modem")
                    for seq in seqs
                ]
                final = self._settle_in(conn, row.id, results)
                if final is MessageState.QUEUED:
                    counts["requeued"] += 1
                elif final is MessageState.UNKNOWN:
                    counts["unknown"] += 1
                else:
                    counts["sent"] += 1
        if any(counts.values()):
            log.warning("recovered claims after restart: %s", counts)
        return counts

    # --- modems ----------------------------------------------------------------

    @batchable
    def upsert_modem(self, modem_id: str, **values: Any) -> None:
        now = utcnow()
        values = {k: v for k, v in values.items() if v is not None}
        values["updated_at"] = now
        values.setdefault("host", self.host)
        with self._tx() as conn:
            res = conn.execute(update(t.modems).where(t.modems.c.id == modem_id).values(**values))
            if res.rowcount == 0:
                values.setdefault("state", "disconnected")
                conn.execute(insert(t.modems).values(id=modem_id, **values))

    @batchable
    def list_modems(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            return [
                dict(r._mapping) for r in conn.execute(select(t.modems).order_by(t.modems.c.id))
            ]

    @batchable
    def add_event(
        self,
        type_: EventType,
        *,
        message_id: str | None = None,
        modem_id: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                insert(t.events).values(
                    type=type_,
                    message_id=message_id,
                    modem_id=modem_id,
                    payload=json.dumps(payload or {}),
                    created_at=utcnow(),
                )
            )

    @batchable
    def counts_by_state(self) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(
                select(t.messages.c.state, func.count()).group_by(t.messages.c.state)
            ).all()
        return {state: n for state, n in rows}

    # --- helpers ----------------------------------------------------------------

    @staticmethod
    def _events(conn: Connection, type_: EventType, ids: Iterable[str], now: dt.datetime) -> None:
        rows = [{"type": type_, "message_id": i, "payload": "{}", "created_at": now} for i in ids]
        if rows:
            conn.execute(insert(t.events), rows)


def _hand_back(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[Any], result: Any,
               exc: BaseException | None) -> None:
    """From the writer thread to the caller's loop; a loop already closed gets nothing."""
    try:
        loop.call_soon_threadsafe(_resolve, fut, result, exc)
    except RuntimeError:
        log.debug("store result dropped: its event loop is closed")


def _resolve(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():  # the caller was cancelled meanwhile
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


def same_number(a: str, b: str) -> bool:
    """Whether two renderings of a number are the same subscriber.

    Status reports carry the recipient as the network saw it: international
    ("+447700900123"), national ("07700900123") or without the plus. Compare the
    significant digits: equal, or one ending in the other's last 8 or more.
    """
    da = "".join(c for c in a if c.isdigit()).lstrip("0")
    db = "".join(c for c in b if c.isdigit()).lstrip("0")
    if not da or not db:
        return a == b
    if da == db:
        return True
    short, long_ = sorted((da, db), key=len)
    return len(short) >= 8 and long_.endswith(short)


def _key_id_of(presented: str) -> str | None:
    parts = presented.split("_")
    if len(parts) >= 3 and parts[0] == "gsk" and len(parts[1]) == 8:
        return parts[1]
    return None


def _settle(states: Sequence[str]) -> MessageState | None:
    """A message's state from its parts' states; None while parts remain to send."""
    s = set(states)
    # UNKNOWN first: if one part may have reached the phone, "failed" would invite a resend.
    if MessageState.UNKNOWN in s:
        return MessageState.UNKNOWN
    if MessageState.FAILED in s:
        return MessageState.FAILED
    if MessageState.EXPIRED in s:
        return MessageState.EXPIRED
    if MessageState.CANCELLED in s and not (s & {MessageState.QUEUED, MessageState.SENDING}):
        return MessageState.CANCELLED
    if MessageState.QUEUED in s or MessageState.SENDING in s:
        return None
    if s == {MessageState.DELIVERED}:
        return MessageState.DELIVERED
    return MessageState.SENT


__all__ = [
    "ApiKey",
    "ClaimedMessage",
    "EnqueueResult",
    "NewMessage",
    "PartResult",
    "ReportMatch",
    "Store",
    "StoreError",
    "new_id",
    "utcnow",
]
