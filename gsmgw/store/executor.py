"""Runs the repositories' blocking calls off the event loop, with group commit on SQLite.

On SQLite every call goes to the one writer thread (SQLite serialises writers
anyway, and this keeps "database is locked" out of the hot path); the calls that
queue up while a transaction commits run together in the next one: one fsync for
many sends' bookkeeping, which keeps a busy pool's modems from waiting on the
disk. A call that fails inside a shared transaction is re-run alone, so each
caller gets its own outcome. On PostgreSQL each call runs on its own thread and
transaction.

Background work (the prune's batches) goes through ``call_idle``: on SQLite the
writer thread runs such a call only when no other call is queued, alone in its own
transaction, so a hot-path call never waits behind a prune batch's deletes and
commit. One can still arrive while such a call runs: the call asks ``hot_waiting``
between its steps and ends early (the prune commits what it has deleted so far).

Reads that walk whole tables (the API's status and metrics counts, reports, the
console's dashboard) go through ``call_read``: on SQLite they run on reader threads
of their own, on connections that cannot write (``PRAGMA query_only``), beside the
writer thread (WAL readers never block the writer): a 30 ms count over a million
messages no longer holds every send's settle behind it.

Some commits need not wait for the disk (``tx(durable=False)``: a prune batch, a
claim taken ahead while another message is on the air, a status report read from
the SIM): on SQLite they commit at ``synchronous=NORMAL``. The WAL keeps commits in
order, so the next durable commit that writes makes them durable too; ``synced``
lets a caller wait for that (the status report is deleted from the SIM only then),
and syncs the WAL itself when no such commit comes within ``SYNC_WAIT_S``.

A call's results (a group commit's, one per caller loop) and the wake-ups of the
outbox listeners its commit owes go back in one ``call_soon_threadsafe`` per loop:
one write to the loop's self-pipe, not one per result and one per listener.

The writer thread keeps one connection open (SQLite): checking a pooled
connection out and in for every transaction, with the pool's reset rollback and
its events, cost about 40 µs of CPU per transaction, a fifth of a claim-and-settle
cycle's store work (issue 17).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# (the call, its future, the loop that awaits it)
_Item = tuple[Callable[[], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


class _Queued(NamedTuple):
    """A call waiting for the writer thread (SQLite)."""

    fn: Callable[[], Any]
    fut: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    shareable: bool  # @batchable: may share a group commit


# Keys in a pooled connection's info: events written in its open transaction, and
# events of a transaction that is committing (see install_events_signal).
_WRITTEN = "gsmgw.events_written"
_COMMITTING = "gsmgw.events_committing"


def note_events_written(conn: Connection) -> None:
    """``conn``'s transaction wrote outbox events: wake the consumers once it commits."""
    conn.info[_WRITTEN] = True


def install_events_signal(engine: Engine, signal: Callable[[], None]) -> None:
    """Call ``signal`` (on the committing thread) after each commit that wrote events.

    Core has no after-commit event: ``commit`` fires before the DBAPI commit, so it
    only marks the transaction; the pool's ``checkin``, which follows the commit when
    the connection is given back, fires the signal (the SQLite writer thread, which
    keeps its connection, fires it after each commit: ``Executor._begin``). A
    rollback clears the mark.
    """

    @event.listens_for(engine, "commit")
    def _on_commit(conn: Connection) -> None:
        if conn.info.pop(_WRITTEN, False):
            conn.info[_COMMITTING] = True

    @event.listens_for(engine, "rollback")
    def _on_rollback(conn: Connection) -> None:
        conn.info.pop(_WRITTEN, None)
        conn.info.pop(_COMMITTING, None)

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        if record.info.pop(_COMMITTING, False):
            signal()


class _LoopWakes:
    """The loop-side callbacks of one event loop, woken after commits that wrote
    events: at most one wake-up queued per loop (a burst of commits, and every
    consumer on that loop, cost the loop one call), and on the writer thread that
    call rides on the hand-back of the commit's own results (one write to the loop's
    self-pipe, not one per consumer and one per result)."""

    __slots__ = ("callbacks", "loop", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.callbacks: list[Callable[[], None]] = []
        self.pending = False

    def fire(self) -> None:
        self.pending = False
        for callback in list(self.callbacks):
            try:
                callback()
            except Exception:  # one consumer's fault never keeps the others asleep
                log.exception("events-committed callback failed")

    def post(self) -> None:
        """Queue :meth:`fire` on the loop (any thread)."""
        try:
            self.loop.call_soon_threadsafe(self.fire)
        except RuntimeError:  # its loop is closed
            self.pending = False


# Reader threads of the read lane (SQLite): the console, the API and a scraper at once.
READERS = 2

# How long ``synced`` waits for a durable commit to carry the lax commits before it
# (on a busy pool the next send's settle, within milliseconds) before the writer
# thread syncs the WAL itself.
SYNC_WAIT_S = 0.2


def _read_only_engine(engine: Engine) -> Engine:
    """A second engine on ``engine``'s SQLite file whose connections cannot write.

    Opened ``mode=ro``: a reader never creates a file (a store removed under a running
    gateway stays removed; see store.ownership), and ``PRAGMA query_only`` besides."""
    path = engine.url.database or ""
    uri = f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)

    reader = create_engine("sqlite://", creator=connect)

    @event.listens_for(reader, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA query_only=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return reader


class _NoReader(Exception):
    """The read lane could not open its connection (the file is gone, say)."""


def batchable(fn: Callable[P, R]) -> Callable[P, R]:
    """Mark a repository method safe to share a group-commit transaction.

    It must open its transactions with ``Executor.tx()`` / ``Executor.read()``
    (never the engine directly, which would wait on the batch's own write lock)
    and let every database error propagate.
    """
    fn.batchable = True  # type: ignore[attr-defined]
    return fn


class Executor:
    """The engine, the worker threads, and the transaction a batch shares."""

    def __init__(self, engine: Engine, *, is_sqlite: bool) -> None:
        self.engine = engine
        self.is_sqlite = is_sqlite
        self._pool = ThreadPoolExecutor(max_workers=1 if is_sqlite else 6, thread_name_prefix="gsmgw-db")
        self._local = threading.local()
        self._queue_lock = threading.Lock()
        self._queue: list[_Queued] = []
        self._flushing = False
        # Background calls (call_idle): served only when _queue is empty, one at a time.
        self._idle: list[_Item] = []
        # Lax commits (tx(durable=False)) made on the writer thread, and how many of them
        # a later durable commit (or a sync of the WAL) has made durable: see synced().
        self._lax_seq = 0
        self._synced_seq = 0
        self._sync_waiters: list[tuple[int, asyncio.Future[Any], asyncio.AbstractEventLoop]] = []
        self._syncs: set[asyncio.Task[None]] = set()  # WAL syncs under way (synced's fallback)
        # The SQLite file as SQLite opened it (a later chdir must not move the WAL we sync).
        self._db_path = os.path.abspath(engine.url.database) if is_sqlite and engine.url.database else ""
        self._wakes: dict[asyncio.AbstractEventLoop, _LoopWakes] = {}
        # The read lane (SQLite): its threads and its engine are made on first use.
        self._readers: ThreadPoolExecutor | None = None
        self._reader_engine: Engine | None = None

    def on_events_committed(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` on the running loop after each commit (through this
        executor) that wrote outbox events; returns the function that unregisters it."""
        loop = asyncio.get_running_loop()
        wakes = self._wakes.get(loop)
        if wakes is None:
            wakes = self._wakes[loop] = _LoopWakes(loop)
        wakes.callbacks.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                wakes.callbacks.remove(callback)
            if not wakes.callbacks and self._wakes.get(loop) is wakes:
                del self._wakes[loop]

        return remove

    def signal_events(self) -> None:
        """After a commit that wrote events (any thread): wake the listeners. On the
        writer thread the wake-up waits for the hand-back of the call's results
        (``_due_wakes``), which follows at once and carries it."""
        if getattr(self._local, "flushing", False):
            self._local.events_due = True
            return
        for wakes in self._take_wakes():
            wakes.post()

    def _take_wakes(self) -> list[_LoopWakes]:
        """The loops to wake, each marked pending (one wake-up queued per loop)."""
        out = []
        for wakes in list(self._wakes.values()):
            if not wakes.pending:
                wakes.pending = True
                out.append(wakes)
        return out

    def _due_wakes(self) -> list[_LoopWakes]:
        """Writer thread: the wake-ups the commit just made owes (see signal_events)."""
        if not getattr(self._local, "events_due", False):
            return []
        self._local.events_due = False
        return self._take_wakes()

    async def call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a blocking store method off the event loop (group commit on SQLite)."""
        loop = asyncio.get_running_loop()
        if not self.is_sqlite:
            return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
        fut: asyncio.Future[R] = loop.create_future()
        with self._queue_lock:
            self._queue.append(_Queued(lambda: fn(*args, **kwargs), fut, loop, getattr(fn, "batchable", False)))
            start = not self._flushing
            self._flushing = True
        if start:
            self._pool.submit(self._flush)
        return await fut

    async def call_idle(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Like ``call``, at low priority: on SQLite the writer thread runs it only
        when no other call is queued, alone in its own transaction (never sharing a
        group commit with hot-path calls). On PostgreSQL it is just ``call``."""
        loop = asyncio.get_running_loop()
        if not self.is_sqlite:
            return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
        fut: asyncio.Future[R] = loop.create_future()
        with self._queue_lock:
            self._idle.append((lambda: fn(*args, **kwargs), fut, loop))
            start = not self._flushing
            self._flushing = True
        if start:
            self._pool.submit(self._flush)
        return await fut

    async def call_read(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a read-only store method off the event loop and off the writer thread.

        On SQLite it runs on a reader thread with a connection of its own that refuses
        writes (``PRAGMA query_only``; ``tx()`` there raises); it sees what was committed
        when it began. On PostgreSQL it is just ``call``."""
        if not self.is_sqlite:
            return await self.call(fn, *args, **kwargs)
        loop = asyncio.get_running_loop()
        if self._readers is None:
            self._readers = ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="gsmgw-db-read")
        try:
            return await loop.run_in_executor(self._readers, self._read_only, lambda: fn(*args, **kwargs))
        except _NoReader:
            # As before there was a read lane: the writer thread's open connection (which
            # still reads a store file removed under it, for instance) answers.
            return await self.call(fn, *args, **kwargs)

    def _read_only(self, fn: Callable[[], R]) -> R:
        self._local.read_only = True
        try:
            return fn()
        finally:
            self._local.read_only = False

    def _readers_engine(self) -> Engine:
        if self._reader_engine is None:
            with self._queue_lock:
                if self._reader_engine is None:
                    self._reader_engine = _read_only_engine(self.engine)
        return self._reader_engine

    def hot_waiting(self) -> bool:
        """Whether hot-path calls are queued for the writer thread (SQLite): a
        ``call_idle`` call that asks this between steps can end early and let them in."""
        return bool(self._queue)

    @property
    def in_batch(self) -> bool:
        """Whether this thread is inside a shared group-commit transaction."""
        return getattr(self._local, "conn", None) is not None

    def _held(self) -> Connection | None:
        """The SQLite writer thread's own connection, open between its transactions;
        ``None`` elsewhere (PostgreSQL, the read lane, a caller's own thread) or while
        it is inside a transaction (a nested one takes a pooled connection, as before)."""
        if not getattr(self._local, "writer", False):
            return None
        conn: Connection | None = getattr(self._local, "held", None)
        if conn is None or conn.closed or conn.invalidated:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            conn = self._local.held = self.engine.connect()
        return None if conn.in_transaction() else conn

    def _drop_held(self) -> None:
        """Close the writer thread's connection (run on that thread, at shutdown)."""
        conn = getattr(self._local, "held", None)
        self._local.held = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    @contextlib.contextmanager
    def _begin(self) -> Iterator[Connection]:
        """``engine.begin()``, on the writer thread's kept connection where there is one.

        There, a commit that wrote (a durable one: the WAL is synced) also makes the
        lax commits before it durable (see :meth:`synced`)."""
        conn = self._held()
        if conn is None:
            with self.engine.begin() as pooled:
                yield pooled
            return
        raw = conn.connection.driver_connection
        before, lax = raw.total_changes, self._lax_seq
        try:
            with conn.begin():
                yield conn
        except BaseException:
            conn.info.pop(_COMMITTING, None)
            raise
        if lax > self._synced_seq and raw.total_changes != before:
            self._covered(lax)
        if conn.info.pop(_COMMITTING, False):
            self.signal_events()  # what the pool's checkin does for a pooled connection

    @contextlib.contextmanager
    def tx(self, *, durable: bool = True) -> Iterator[Connection]:
        """A transaction: the group's shared one inside a batch, else a new one.

        ``durable=False`` is for work that is redone if lost (a prune batch): on SQLite
        its commit does not fsync (``synchronous=NORMAL`` for that one transaction;
        WAL stays consistent, a power cut may only undo it). The next durable commit's
        fsync of the WAL takes its pages along, so the writer thread, and a send's
        settle waiting behind it, no longer pays one more fsync per batch."""
        shared = getattr(self._local, "conn", None)
        if shared is not None:
            yield shared  # (a group commit waits for the disk: durable=False has no say there)
            return
        if getattr(self._local, "read_only", False):
            raise RuntimeError("a store call in the read lane (call_read) opened a write transaction")
        if durable or not self.is_sqlite:
            with self._begin() as conn:
                yield conn
            return
        held = self._held()
        with contextlib.nullcontext(held) if held is not None else self.engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            (level,) = raw.execute("PRAGMA synchronous").fetchone()
            raw.execute("PRAGMA synchronous=NORMAL")
            try:
                with conn.begin():
                    yield conn
                if getattr(self._local, "writer", False):
                    self._lax_seq += 1
            finally:
                try:
                    raw.execute(f"PRAGMA synchronous={int(level)}")
                except sqlite3.Error:
                    conn.invalidate()  # never hand a lax connection to a send
                if held is not None and conn.info.pop(_COMMITTING, False):
                    self.signal_events()

    async def synced(self) -> None:
        """Return once the lax commits (``tx(durable=False)``) of calls that already
        returned are on disk: a step that must follow durability (deleting a status
        report from the SIM once its record is safe) awaits this.

        A durable commit syncs the WAL, and with it every frame before it: on a busy
        pool the next send's settle does, within milliseconds, and no fsync is spent on
        the lax commit itself. Failing that within ``SYNC_WAIT_S``, the writer thread
        syncs the WAL. On PostgreSQL (no lax commits) it returns at once."""
        if not self.is_sqlite:
            return
        loop = asyncio.get_running_loop()
        with self._queue_lock:
            target = self._lax_seq
            if self._synced_seq >= target:
                return
            fut: asyncio.Future[Any] = loop.create_future()
            self._sync_waiters.append((target, fut, loop))
        # A timer, not wait_for (a task and a shield per status report): after SYNC_WAIT_S
        # the WAL is synced by the writer thread, unless a commit has answered first.
        timer = loop.call_later(SYNC_WAIT_S, self._sync_later, fut)
        try:
            await fut
        finally:
            timer.cancel()

    def _sync_later(self, fut: asyncio.Future[Any]) -> None:
        """Loop: no durable commit answered ``fut`` in time; the writer thread syncs the
        WAL (``fut`` is answered with that call's hand-back, or gets its error)."""
        if fut.done():
            return

        def done(sync: asyncio.Task[None]) -> None:
            self._syncs.discard(sync)
            if fut.done():  # (a sync that went through answered it with its hand-back)
                return
            exc = RuntimeError("the WAL sync was cancelled") if sync.cancelled() else sync.exception()
            if exc is not None:
                fut.set_exception(exc)

        sync = asyncio.ensure_future(self.call(self._sync_wal))
        self._syncs.add(sync)  # (the loop keeps only a weak reference to a task)
        sync.add_done_callback(done)

    def _covered(self, lax: int) -> None:
        """Writer thread: lax commits up to ``lax`` are durable now; their waiters
        are answered with the hand-back that follows (``_hand_back``)."""
        with self._queue_lock:
            self._synced_seq = max(self._synced_seq, lax)
            ready = [w for w in self._sync_waiters if w[0] <= self._synced_seq]
            if ready:
                self._sync_waiters = [w for w in self._sync_waiters if w[0] > self._synced_seq]
        if ready:
            answers = [(loop, fut, None, None) for _t, fut, loop in ready]
            if getattr(self._local, "flushing", False):
                self._local.synced_due.extend(answers)
            else:
                _hand_back_many(answers, [])

    def _hand_back(self, items: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Any,
                                           BaseException | None]]) -> None:
        """Writer thread: results to their callers, with what the commit owes besides
        (the synced() waiters it answered, the outbox wake-ups), in one call per loop."""
        due, self._local.synced_due = self._local.synced_due, []
        _hand_back_many(items + due, self._due_wakes())

    def _sync_wal(self) -> None:
        """Writer thread: make every lax commit so far durable (fdatasync of the WAL,
        which holds them; had a checkpoint restarted it, the checkpoint synced the
        database file first, and the WAL then holds only what came after)."""
        lax = self._lax_seq
        if lax > self._synced_seq and self._db_path:
            path = self._db_path
            for name in (f"{path}-wal", path):
                try:
                    fd = os.open(name, os.O_RDONLY)
                except FileNotFoundError:
                    continue
                try:
                    os.fdatasync(fd)
                finally:
                    os.close(fd)
                break
        self._covered(lax)

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        shared = getattr(self._local, "conn", None)
        if shared is not None:
            yield shared
            return
        if not getattr(self._local, "read_only", False):
            held = self._held()
            if held is None:
                with self.engine.connect() as conn:
                    yield conn
                return
            try:
                yield held
            finally:
                if held.in_transaction():  # the read's implicit transaction: end it
                    held.rollback()
            return
        try:
            conn = self._readers_engine().connect()
        except DBAPIError as exc:
            raise _NoReader(str(exc)) from exc
        with conn:
            yield conn

    def shutdown(self) -> None:
        if self.is_sqlite:
            with contextlib.suppress(RuntimeError):  # already shut down
                self._pool.submit(self._drop_held)
        self._pool.shutdown(wait=True)
        if self._readers is not None:
            self._readers.shutdown(wait=True)
        if self._reader_engine is not None:
            self._reader_engine.dispose()

    def _flush(self) -> None:
        """Writer thread: run queued calls, in order, until the queue is empty.

        Consecutive calls of ``@batchable`` methods share one transaction; any
        other call runs on its own. A background call (``call_idle``) runs, alone,
        only when the queue is empty, and the queue is looked at again after it.
        """
        self._local.writer = True  # this thread keeps a connection (_held)
        self._local.flushing = True  # events signalled here ride on the hand-back
        self._local.synced_due = []  # and so do the synced() waiters a commit answers
        try:
            self._flush_queued()
        finally:
            self._local.flushing = False
            self._hand_back([])  # (nothing is left: each hand-back takes its own)

    def _flush_queued(self) -> None:
        while True:
            with self._queue_lock:
                queued, self._queue = self._queue, []
                idle = self._idle.pop(0) if not queued and self._idle else None
                if not queued and idle is None:
                    self._flushing = False
                    return
            if idle is not None:
                self._run_alone(idle)
                continue
            self._run_queued(queued)

    def _run_queued(self, queued: list[_Queued]) -> None:
        """Run queued calls in order: consecutive batchable calls share a transaction."""
        run: list[_Item] = []
        for fn, fut, loop, shareable in queued:
            if not shareable and run:
                self._run_batch(run)
                run = []
            run.append((fn, fut, loop))
            if not shareable:
                self._run_batch(run)
                run = []
        if run:
            self._run_batch(run)

    def _run_batch(self, batch: list[_Item]) -> None:
        """Run calls in one transaction. If one fails, the transaction is rolled back,
        that call is run on its own (for its own outcome), and the rest retried."""
        while len(batch) > 1:
            results: list[Any] = []
            try:
                with self._begin() as conn:
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
            self._hand_back([(loop, fut, result, None)
                             for (_fn, fut, loop), result in zip(batch, results, strict=True)])
            return
        for item in batch:
            self._run_alone(item)

    def _run_alone(self, item: _Item) -> None:
        fn, fut, loop = item
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting coroutine, whatever it is
            self._hand_back([(loop, fut, None, exc)])
        else:
            self._hand_back([(loop, fut, result, None)])


def _hand_back_many(items: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], Any, BaseException | None]],
                    wakes: list[_LoopWakes]) -> None:
    """Results from the writer thread to their callers' loops, one wake-up per loop
    (each call_soon_threadsafe writes to the loop's self-pipe: one syscall per
    result, and one loop iteration, otherwise); the events-committed ``wakes`` of a
    loop ride along. A loop already closed gets nothing."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
    for loop, fut, result, exc in items:
        by_loop.setdefault(loop, []).append((fut, result, exc))
    riding = {w.loop: w for w in wakes}
    for loop, results in by_loop.items():
        wake = riding.pop(loop, None)
        try:
            loop.call_soon_threadsafe(_resolve_all, results, wake)
        except RuntimeError:
            log.debug("store results dropped: their event loop is closed")
            if wake is not None:
                wake.pending = False
    for wake in riding.values():
        wake.post()


def _resolve_all(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]],
                 wake: _LoopWakes | None = None) -> None:
    for fut, result, exc in results:
        _resolve(fut, result, exc)
    if wake is not None:
        wake.fire()


def _resolve(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():  # the caller was cancelled meanwhile
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


__all__ = ["Executor", "batchable", "install_events_signal", "note_events_written"]
