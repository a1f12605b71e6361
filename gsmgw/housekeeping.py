"""Housekeeping off the hot path: the report rollup, the daily prune, number erasure.

``Housekeeper`` (started by ``gsmgw.daemon``) runs tasks of its own:

* the **rollup**: every ``[retention] rollup_interval_s`` it counts the new outbox
  events into the daily report aggregates (``store.rollup.roll``), until it has caught
  up. It is background work like the prune's batches: each batch (500 events) is one
  transaction through ``Store.call_idle`` that ends early when a send's call queues up
  behind it, and on SQLite starts in a quiet window (below). (It ran on the hot lane:
  40-60 ms every 5 s in which no send could settle, at 80 sends a second.)
* the **daily prune** at ``[retention] daily_at`` (UTC): ``prune()``;
* on SQLite, the **WAL checkpoint**: once a second, if anything was committed since the
  last one, a passive checkpoint copies the WAL back into the database on a thread of
  its own (no write lock: the writer thread goes on), in a quiet window. Left to
  SQLite's automatic checkpoint, the commit that crossed 1,000 WAL pages did the copy,
  often a send's settle, which then held every modem's next send back (~80 ms here;
  far longer on an SD card). That checkpoint stays as the safety net: it finds little
  left to copy.

``prune()`` is also ``gsmgw store prune``. It takes the ``prune`` row lease (one host
of a shared PostgreSQL store prunes at a time; the others skip), rolls the report
aggregates up to the newest event (so what goes is counted), then deletes what the
retention allows in batches, one short transaction each, with ``pause_s`` between
batches so that the send pipeline's store calls go first. The first batch has
``batch_rows`` rows; with ``batch_ms`` > 0 each next one is sized to take about that long at the last
one's rate. Batches go through ``Store.call_idle``: on SQLite the writer thread runs
one only when no hot-path call is queued, and never in a group commit with them; a
batch ends early (committing what it deleted) when a hot-path call queues up behind it.
On SQLite the daemon's prune also starts each batch (and each WAL checkpoint), after
its rest, in a window in which no send on the air is due to answer (``quiet``: the
pool's ``quiet_wait_s``), so that a send's settle seldom meets one; it waits at most
``QUIET_WAIT_MAX_S`` for one.
``erase_number()`` walks the erasure registry one table (one transaction) at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gsmgw.config import Config, RetentionConfig
from gsmgw.errors import ValidationError
from gsmgw.numbers import to_e164
from gsmgw.pool.retry import classify_cms
from gsmgw.store import Store
from gsmgw.store.erasure import number_hash
from gsmgw.store.records import utcnow
from gsmgw.store.retention import SAFETY_MARGIN, Batch
from gsmgw.store.rollup import RollResult
from gsmgw.waits import wait_event

log = logging.getLogger(__name__)
T = TypeVar("T")

PRUNE_LEASE = "prune"
PRUNE_LEASE_TTL_S = 300.0
ROLL_BATCH = 500  # the most events one rollup batch reads
FIRST_ROLL_S = 0.01  # what the first rollup batch of a run is expected to take, for its quiet window
# How long a batch may wait for a quiet window (wait_quiet), beyond its rest, before it
# goes anyway: on a pool that never leaves one, batches come at most 4 a second.
QUIET_WAIT_MAX_S = 0.25
# What the first WAL checkpoint of a run is expected to take, for its quiet window.
FIRST_CHECKPOINT_S = 0.01

# quiet(length_s, after_s) -> seconds until a window of length_s, starting no sooner
# than after_s from now, that no send on the air is due to answer in.
QuietFn = Callable[[float, float], float]


def classify_error(code: str) -> str:
    """A message's ``cms:<n>`` error code -> the class gsmgw.pool.retry gives it."""
    try:
        n = int(code.partition(":")[2])
    except ValueError:
        return "other"
    return classify_cms(n)[0].value


async def roll_up(store: Store, *, limit: int = ROLL_BATCH, quiet: QuietFn | None = None,
                  sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> int:
    """Count every outbox event not yet counted into the report aggregates; how many.

    Background work, like the prune's batches: each batch of up to ``limit`` events goes
    through ``Store.call_idle`` (on SQLite the writer thread runs it only when no
    hot-path call is queued, alone in its transaction), ends early (committing what it
    counted) as soon as a hot-path call queues up behind it (``Store.hot_waiting``,
    asked every ``ROLL_CHUNK`` events), and starts in a quiet window as long as the last
    batch took (``quiet``, see ``wait_quiet``). Batches stay large: a message's events
    that fall in one batch are counted once (its state now), so small batches cost
    more CPU per event."""
    total = 0
    length_s = FIRST_ROLL_S
    while True:
        await wait_quiet(quiet, length_s, sleep)
        res, took_s = await store.call_idle(_timed_roll, store, limit)
        total += res.events
        if not res.more:
            return total
        length_s = took_s


def _timed_roll(store: Store, limit: int) -> tuple[RollResult, float]:
    """One rollup batch (``_timed_batch``): it ends early, committing what it counted."""
    return _timed_batch(store, store.rollup.roll, classify_error, limit=limit)


def _timed_batch(store: Store, batch: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """A background batch on the store's writer thread (the rollup's, the prune's): what
    it did and the seconds it took, commit included. It is given ``Store.hot_waiting`` as
    its ``stop``: it ends early as soon as a hot-path store call waits for the thread."""
    t0 = time.perf_counter()
    res = batch(*args, stop=store.hot_waiting, **kwargs)
    return res, time.perf_counter() - t0


# (retention key, what is pruned under it)
PLAN: tuple[tuple[str, str], ...] = (
    ("webhook_deliveries_days", "webhook_deliveries"),
    ("webhook_deliveries_days", "smpp_deliveries"),
    ("messages_days", "messages"),
    ("messages_days", "status_reports"),
    ("inbound_days", "inbound"),
    ("events_days", "events"),
)


@dataclasses.dataclass
class PruneReport:
    ran: bool  # False: another host holds the prune lease
    dry_run: bool
    deleted: dict[str, int]
    rolled_events: int = 0
    elapsed_s: float = 0.0
    holder: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


MIN_BATCH_ROWS = 10
CHECKPOINT_EVERY_S = 1.0  # a passive checkpoint at most this often while batches run, and after the last
MAX_BATCH_ROWS = 10_000


def _timed_prune(store: Store, kind: str, cutoff: dt.datetime, horizon: tuple[int, dt.datetime],
                 limit: int) -> tuple[Batch, float]:
    """One prune batch (``_timed_batch``): it ends early, committing what it deleted."""
    return _timed_batch(store, store.retention.prune, kind, cutoff, horizon, limit=limit)


def next_batch_rows(limit: int, n: int, busy_s: float, rc: RetentionConfig) -> int:
    """The next batch's size: about ``batch_ms`` at the last batch's rate (rows per
    second), at most doubling at a time, within MIN_BATCH_ROWS..MAX_BATCH_ROWS;
    ``batch_rows`` always when ``batch_ms`` is 0."""
    if rc.batch_ms <= 0:
        return rc.batch_rows
    if n <= 0:
        return limit
    fit = int(n * (rc.batch_ms / 1000.0) / max(busy_s, 1e-6))
    return max(MIN_BATCH_ROWS, min(MAX_BATCH_ROWS, 2 * limit, fit))


async def wait_quiet(quiet: QuietFn | None, length_s: float,
                     sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep, *, rest_s: float = 0.0) -> None:
    """Rest ``rest_s``, and then until a window of ``length_s`` opens in which no send on
    the air is due to answer (``quiet``, the pool's ``quiet_wait_s``, asked for a window
    that starts after the rest); never more than QUIET_WAIT_MAX_S beyond the rest, then
    go anyway: a pool always busy slows the prune down but cannot stop it."""
    waited = 0.0
    while True:
        still_s = max(0.0, rest_s - waited)
        wait_s = still_s if quiet is None else max(still_s, quiet(length_s, still_s))
        wait_s = min(wait_s, rest_s + QUIET_WAIT_MAX_S - waited)
        if wait_s <= 0:
            return
        await sleep(wait_s)
        waited += wait_s


async def checkpoint_between_results(store: Store, quiet: QuietFn | None, length_s: float,
                                     sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> float:
    """SQLite: wait for a quiet window of ``length_s`` (``wait_quiet``), then copy the WAL
    back into the database with a passive checkpoint on a thread of its own (it takes
    no write lock: the writer thread goes on); the seconds the checkpoint took."""
    await wait_quiet(quiet, length_s, sleep)
    t0 = time.perf_counter()
    await asyncio.to_thread(store.retention.checkpoint)
    return time.perf_counter() - t0


async def prune(store: Store, rc: RetentionConfig, *, dry_run: bool = False, actor: str = "daemon",
                now: dt.datetime | None = None, margin: dt.timedelta = SAFETY_MARGIN,
                sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                quiet: QuietFn | None = None) -> PruneReport:
    """One prune run (see the module doc); what it deleted (or would, with ``dry_run``).

    ``quiet`` (the pool's ``quiet_wait_s``, in the daemon on SQLite) says how long until
    a window of a given length in which no send on the air is due to answer: each batch,
    and each WAL checkpoint, starts in one (``wait_quiet``)."""
    t0 = time.monotonic()
    now = now or utcnow()
    report = PruneReport(ran=False, dry_run=dry_run, deleted={})
    leased_at = time.monotonic()
    if not dry_run and not await store.call(store.retention.take_lease, PRUNE_LEASE, PRUNE_LEASE_TTL_S):
        log.info("prune skipped: another host holds the prune lease")
        return report
    report.ran = True
    try:
        report.rolled_events = await roll_up(store, quiet=quiet, sleep=sleep)
        horizon = await store.call(store.retention.horizon, ignore_consumers=rc.ignore_consumers, margin=margin)
        for key, kind in PLAN:
            days = getattr(rc, key)
            if not days:
                continue
            cutoff = now - dt.timedelta(days=days)
            if dry_run:
                report.deleted[kind] = await store.call(store.retention.count, kind, cutoff, horizon)
                continue
            total = 0
            limit = rc.batch_rows
            checked_at, dirty = time.monotonic(), False
            batch_s, checkpoint_s = (rc.batch_ms or 10.0) / 1000, FIRST_CHECKPOINT_S
            rest_s = 0.0
            while True:
                # The hot path's store calls go between batches: the pruner takes at most
                # duty_cycle of the store's time (a batch that took 40 ms is followed by
                # 160 ms of rest at 0.2), and at least pause_s. Then it starts between the
                # sends' results, so that a send's settle seldom arrives while it runs.
                await wait_quiet(quiet, batch_s, sleep, rest_s=rest_s)
                # At low priority: on SQLite the batch runs only when no hot-path store
                # call is queued, in a transaction of its own (never in a group commit).
                batch, write_s = await store.call_idle(_timed_prune, store, kind, cutoff, horizon, limit)
                batch_s = write_s
                n, busy_s = batch.deleted, write_s
                total += n
                report.deleted[kind] = total
                dirty = dirty or bool(n)
                due = not batch.more or time.monotonic() - checked_at >= CHECKPOINT_EVERY_S
                if dirty and due and store.is_sqlite:
                    # On SQLite the batches' pages are copied back from the WAL by a passive
                    # checkpoint on a thread of its own (it takes no write lock: the writer
                    # thread goes on), once a second and after the last batch. Left to
                    # SQLite's automatic checkpoint, the WAL the deletes filled was copied
                    # back by whichever commit crossed 1,000 pages, often a send's settle,
                    # which waited tens of ms; one per batch (20/s) put two more fsyncs per
                    # batch on the disk, in the sends' way.
                    checkpoint_s = await checkpoint_between_results(store, quiet, checkpoint_s, sleep)
                    busy_s += checkpoint_s
                    checked_at, dirty = time.monotonic(), False
                if not batch.more:
                    break
                limit = next_batch_rows(limit, n, write_s, rc)
                if time.monotonic() - leased_at > PRUNE_LEASE_TTL_S / 3:  # renewed, not written per batch
                    await store.call_idle(store.retention.take_lease, PRUNE_LEASE, PRUNE_LEASE_TTL_S)
                    leased_at = time.monotonic()
                rest_s = max(rc.pause_s, busy_s * (1.0 / rc.duty_cycle - 1.0))
            report.deleted[kind] = total
    finally:
        if not dry_run:
            with contextlib.suppress(Exception):
                await store.call(store.retention.release_lease, PRUNE_LEASE)
    report.elapsed_s = round(time.monotonic() - t0, 3)
    if not dry_run:
        await store.call(store.audit.record, actor, "store.prune", "",
                         {"deleted": report.deleted, "rolled_events": report.rolled_events,
                          "elapsed_s": report.elapsed_s})
    log.info("prune%s: %s in %.1f s", " (dry run)" if dry_run else "", report.deleted, report.elapsed_s)
    return report


async def erase_number(store: Store, number: str, *, region: str | None, actor: str) -> dict[str, Any]:
    """Erase ``number`` from every registered table, one table per transaction.

    Idempotent: run again after an interruption, it finishes the job. The audit log
    records the number's hash, never the number."""
    e164 = to_e164(number, region)
    if e164 is None:
        raise ValidationError("invalid_number", f"{number!r} is not a phone number in E.164 or a national "
                              f"rendering of the default region ({region})")
    changed: dict[str, int] = {}
    for table in store.erasure.tables():
        n = await store.call(store.erasure.erase_table, table, e164)
        if n:
            changed[table] = n
    tomb = number_hash(e164)
    await store.call(store.audit.record, actor, "number.erase", tomb, {"rows": changed})
    return {"number_hash": tomb, "rows": changed, "tombstone": changed.get("optouts", 0) > 0}


def next_daily_run(now: dt.datetime, daily_at: str) -> dt.datetime:
    """The next ``HH:MM`` UTC after ``now``."""
    hh, mm = (int(x) for x in daily_at.split(":"))
    at = now.astimezone(dt.UTC).replace(hour=hh, minute=mm, second=0, microsecond=0)
    return at if at > now else at + dt.timedelta(days=1)


class Housekeeper:
    """The rollup, the daily prune and (SQLite) the WAL checkpoint, as tasks of their own."""

    def __init__(self, cfg: Callable[[], Config], store: Store, *,
                 now: Callable[[], dt.datetime] = utcnow, quiet: QuietFn | None = None) -> None:
        self._cfg = cfg
        self.store = store
        self._now = now
        self._quiet = quiet  # the pool's quiet_wait_s: rollup and prune batches go between results
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self.last_prune: PruneReport | None = None
        self.checkpoints = 0  # WAL checkpoints run by _checkpoint_loop

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._rollup_loop(), name="report-rollup"),
                       asyncio.create_task(self._prune_loop(), name="daily-prune")]
        if self.store.is_sqlite:
            self._tasks.append(asyncio.create_task(self._checkpoint_loop(), name="wal-checkpoint"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def poke(self) -> None:
        """Roll up now (tests, and after a burst)."""
        self._wake.set()

    async def _rollup_loop(self) -> None:
        while True:
            try:
                await roll_up(self.store, quiet=self._quiet)
            except Exception:
                log.exception("report rollup failed; retrying")
            await wait_event(self._wake, self._cfg().retention.rollup_interval_s)
            self._wake.clear()

    async def _checkpoint_loop(self) -> None:
        """SQLite: a passive WAL checkpoint every CHECKPOINT_EVERY_S while commits come,
        off the writer thread and in a quiet window as long as the last one took."""
        done_at_mark: tuple[int, int] | None = None
        took_s = FIRST_CHECKPOINT_S
        failing = False
        while True:
            await asyncio.sleep(CHECKPOINT_EVERY_S)
            mark = self.store.retention.wal_mark()
            if mark is None or mark == done_at_mark:
                continue
            try:
                took_s = await checkpoint_between_results(self.store, self._quiet, took_s)
            except Exception as exc:  # the store's own trouble: the health check says it
                if not failing:
                    log.warning("WAL checkpoint failed (SQLite's own checkpoint still runs): %s", exc)
                failing = True
                continue
            if failing:
                log.info("WAL checkpoint works again")
            failing = False
            self.checkpoints += 1
            done_at_mark = mark

    async def _prune_loop(self) -> None:
        while True:
            rc = self._cfg().retention
            if not rc.daily_at:
                await asyncio.sleep(3600)  # a reload may set it
                continue
            now = self._now()
            wait_s = (next_daily_run(now, rc.daily_at) - now).total_seconds()
            await asyncio.sleep(min(wait_s, 3600))  # re-read the config at least hourly
            if wait_s > 3600:
                continue
            try:
                self.last_prune = await prune(self.store, self._cfg().retention, quiet=self._quiet)
            except Exception:
                log.exception("daily prune failed; next run tomorrow")


__all__ = ["Housekeeper", "PruneReport", "QuietFn", "checkpoint_between_results", "classify_error", "erase_number",
           "next_daily_run", "prune", "roll_up", "wait_quiet"]
