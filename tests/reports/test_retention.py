"""Retention: pruning deletes only what nobody needs any more, keeps the report
aggregates, takes turns between hosts, and runs during traffic without losing a
message or a webhook (emulator over ptys, a real HTTP receiver on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from gsmgw.config import ConfigError, RetentionConfig, from_dict
from gsmgw.emulator import FakeModemPool
from gsmgw.housekeeping import next_daily_run, prune, roll_up
from gsmgw.store import Store
from gsmgw.store import tables as t
from tests.inbound.conftest import Receiver
from tests.inbound.helpers import inbound_config, wait_until
from tests.reports.traffic import BASE, Spec, insert_message, insert_reply

KEEP_30 = RetentionConfig(messages_days=30, inbound_days=30, events_days=30, webhook_deliveries_days=30,
                          batch_rows=7, pause_s=0)
NO_MARGIN = dt.timedelta(0)


def _count(store: Store, table: Any, *where: Any) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def _webhook_cursor(conn: Any, at: int) -> None:
    """Put the webhooks' outbox cursor ("main", made by migration 0002) at event ``at``."""
    res = conn.execute(update(t.webhook_cursor).where(t.webhook_cursor.c.name == "main")
                       .values(last_event_id=at))
    assert res.rowcount == 1


def _report(store: Store) -> list[dict[str, Any]]:
    return store.rollup.report(group_by="sim", period="month", date_from=BASE.date() - dt.timedelta(days=5),
                               date_to=dt.date(2100, 1, 1))


async def test_prune_deletes_only_what_nobody_needs(store: Store) -> None:
    def seed() -> dict[str, Any]:
        with store.engine.begin() as conn:
            sent = insert_message(conn, Spec("sim2", "k1", None, 0, 1, "sent", 1, 5, 5), "sent")  # not final
            reply = insert_reply(conn, sent, "sim1", BASE + dt.timedelta(days=1))
            final = [insert_message(conn, Spec("sim1", "k1", None, i // 2, 1 + i % 2, "delivered", 1, 40 + i, 5),
                                    "delivered") for i in range(40)]
            for state in ("delivered", "pending"):
                conn.execute(insert(t.webhook_deliveries).values(
                    event_id=1, event_type="sms:delivered", url=f"http://127.0.0.1:9/{state}", body="{}",
                    state=state, next_attempt_at=BASE, created_at=BASE))
            # A report never matched to a message.
            conn.execute(insert(t.status_reports).values(modem_id="sim1", tp_mr=1, recipient="+15550001111",
                                                         status=0, category="delivered", received_at=BASE))
        return {"final": final, "sent": sent, "reply": reply}

    ids = await store.call(seed)
    await roll_up(store)
    before = _report(store)
    # The webhook consumer has read only the events up to the 30th final message.
    with store.engine.begin() as conn:
        ev30 = conn.execute(select(t.events.c.id).where(t.events.c.message_id == ids["final"][29])).scalar_one()
        _webhook_cursor(conn, ev30)
        first_unread = conn.execute(select(func.min(t.events.c.created_at)).where(t.events.c.id > ev30)).scalar_one()

    dry = await prune(store, KEEP_30, dry_run=True, margin=NO_MARGIN)
    assert _count(store, t.messages) == 41  # a dry run deletes nothing
    report = await prune(store, KEEP_30, margin=NO_MARGIN)
    assert report.ran and report.deleted == dry.deleted, (report.deleted, dry.deleted)

    with store.engine.connect() as conn:
        left = set(conn.execute(select(t.messages.c.id)).scalars())
        created = dict(conn.execute(select(t.messages.c.id, t.messages.c.updated_at)).all())
    # Kept: the message not final, and every one that changed at or after the first event
    # the webhook consumer has not read yet (its webhook may not be made).
    assert ids["sent"] in left
    assert all(created[m] >= first_unread for m in left if m != ids["sent"]), (first_unread, sorted(created.values()), report.deleted)
    assert set(ids["final"][30:]) <= left and not set(ids["final"][:30]) & left
    assert _count(store, t.inbound_messages) == 0  # the reply, old and read by every consumer
    assert _count(store, t.message_parts, t.message_parts.c.message_id.not_in(list(left))) == 0
    # Events: only those every consumer passed, never the newest.
    with store.engine.connect() as conn:
        assert conn.execute(select(func.min(t.events.c.id))).scalar_one() > 1
        assert conn.execute(select(func.min(t.events.c.id))).scalar_one() == ev30 + 1
    assert _count(store, t.webhook_deliveries) == 1  # the pending one
    assert _count(store, t.status_reports, t.status_reports.c.message_id.is_(None)) == 0
    # The aggregates survive the rows.
    assert _report(store) == before
    [entry] = store.audit.list_entries(action="store.prune")
    assert entry["detail"]["deleted"] == report.deleted
    # Nothing older to prune: a second run deletes nothing.
    again = await prune(store, KEEP_30, margin=NO_MARGIN)
    assert sum(again.deleted.values()) == 0
    # 0 days = keep forever.
    none = await prune(store, RetentionConfig(), margin=NO_MARGIN)
    assert none.deleted == {}


async def test_a_message_the_rollup_has_not_counted_is_kept(store: Store) -> None:
    def seed() -> str:
        with store.engine.begin() as conn:
            return insert_message(conn, Spec("sim1", None, None, 0, 1, "delivered", 1, 5, 5), "delivered")

    mid = await store.call(seed)
    await roll_up(store)
    # A late change the rollup has not seen yet (its mark is stale): not pruned by the batch
    # that re-checks the mark under its write.
    with store.engine.begin() as conn:
        conn.execute(update(t.messages).where(t.messages.c.id == mid).values(report_mark=None))
    horizon = await store.call(store.retention.horizon, margin=NO_MARGIN)
    cutoff = BASE + dt.timedelta(days=30)
    assert await store.call(store.retention.prune, "messages", cutoff, horizon) == (0, False)
    assert _count(store, t.messages) == 1


def test_one_host_prunes_at_a_time(store_url: str) -> None:
    a = Store(store_url, host="a")
    b = Store(store_url, host="b")
    try:
        a.migrate()
        assert a.retention.take_lease("prune", 60)
        assert not b.retention.take_lease("prune", 60)
        assert a.retention.take_lease("prune", 60)  # renewing
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
        assert b.retention.take_lease("prune", 60, now=later)  # a's lease ran out
        b.retention.release_lease("prune")
        assert a.retention.take_lease("prune", 60)
    finally:
        a.close()
        b.close()


async def test_prune_skips_while_another_host_holds_the_lease(store: Store, store_url: str) -> None:
    other = Store(store_url, host="other")
    try:
        assert other.retention.take_lease("prune", 60)
        report = await prune(store, KEEP_30)
        assert not report.ran and report.deleted == {}
    finally:
        other.close()


def test_retention_config_and_the_daily_time() -> None:
    cfg = from_dict({"retention": {"messages_days": 90, "events_days": 7, "daily_at": "04:15"}})
    assert cfg.retention.messages_days == 90 and cfg.retention.inbound_days == 0
    with pytest.raises(ConfigError, match=r"retention\.daily_at"):
        from_dict({"retention": {"daily_at": "4pm"}})
    with pytest.raises(ConfigError, match=r"retention\.batch_rows"):
        from_dict({"retention": {"batch_rows": 0}})
    with pytest.raises(ConfigError, match=r"retention\.duty_cycle"):
        from_dict({"retention": {"duty_cycle": 0}})
    with pytest.raises(ConfigError, match=r"retention\.messages_days"):
        from_dict({"retention": {"messages_days": -1}})
    now = dt.datetime(2026, 11, 28, 5, 0, tzinfo=dt.UTC)
    assert next_daily_run(now, "04:15") == dt.datetime(2026, 11, 29, 4, 15, tzinfo=dt.UTC)
    assert next_daily_run(now, "06:00") == dt.datetime(2026, 11, 28, 6, 0, tzinfo=dt.UTC)


@pytest.mark.slow
async def test_pruning_during_traffic_loses_nothing_and_every_webhook_arrives(tmp_path: Path) -> None:
    receiver = Receiver()
    await receiver.start()
    try:
        async with FakeModemPool(count=2, directory=tmp_path / "ports", report_delay_s=0.01) as fake:
            cfg = inbound_config(tmp_path, [str(m.path) for m in fake.modems], hook_url=receiver.url,
                                 events=("sms:*",))
            cfg = dataclasses.replace(cfg, retention=dataclasses.replace(
                KEEP_30, batch_rows=50, daily_at="", rollup_interval_s=0.05))
            from gsmgw.daemon import Gateway
            from tests.helpers import Client

            gw = Gateway(cfg, host="test-host")
            # Old traffic, already pushed to the webhook receiver of its day.
            await gw.store.call(gw.store.migrate)

            def seed() -> None:
                with gw.store.engine.begin() as conn:
                    for i in range(600):
                        insert_message(conn, Spec(f"sim{1 + i % 2}", None, None, i % 20, 1, "delivered", 1, i, 3),
                                       "delivered")
                    newest = conn.execute(select(func.max(t.events.c.id))).scalar_one()
                    _webhook_cursor(conn, newest)

            await gw.store.call(seed)
            await gw.start()
            try:
                import aiohttp

                _, key = await gw.store.call(gw.store.keys.create_api_key, "t", ["send", "read", "admin"])
                async with aiohttp.ClientSession() as session:
                    c = Client(gw.base_url, key, session)
                    for sid in ("sim1", "sim2"):
                        await gw.pool.slots[sid].driver.wait_ready(10)
                    sent: list[str] = []

                    async def traffic() -> None:
                        for i in range(40):
                            status, body = await c.request("POST", "/api/v1/messages",
                                                           json={"to": f"+1555300{i:04d}", "text": f"m{i}"})
                            assert status == 202, body
                            sent.append(body["id"])
                            await asyncio.sleep(0.01)

                    async def pruning() -> list[Any]:
                        runs = []
                        while len(sent) < 40:
                            runs.append(await prune(gw.store, cfg.retention, margin=NO_MARGIN))
                            await asyncio.sleep(0.05)
                        return runs

                    _, runs = await asyncio.gather(traffic(), pruning())
                    assert sum(r.deleted.get("messages", 0) for r in runs) == 600
                    for mid in sent:
                        await c.wait_state(mid, {"delivered"}, timeout_s=30)
                    await wait_until(lambda: {h.json["data"]["message_id"] for h in receiver.of_type("sms:delivered")}
                                     >= set(sent), timeout_s=30, what="a delivered webhook for every message")
                    # Pruning again now removes nothing of the new traffic (not old enough).
                    await prune(gw.store, cfg.retention, margin=NO_MARGIN)
                    left = await gw.store.call(lambda: _count(gw.store, t.messages))
                    assert left == 40
                    assert await gw.store.call(lambda: _count(gw.store, t.webhook_deliveries,
                                                              t.webhook_deliveries.c.state != "delivered")) == 0
                    await roll_up(gw.store)
                    rows = await gw.store.call(_report, gw.store)
                    assert sum(r["messages"] for r in rows) == 640
                    assert sum(r["messages_delivered"] for r in rows) == 640
            finally:
                await gw.stop()
    finally:
        await receiver.stop()


async def test_the_wal_is_checkpointed_once_a_second_and_after_the_last_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each checkpoint is an fsync of the WAL and of the database: not one per batch
    (the batches commit without fsync; the checkpoint makes them durable)."""
    from gsmgw import housekeeping
    from tests.store.test_prune_plan import prunable_messages

    store = Store(f"sqlite:///{tmp_path / 'c.db'}", host="h")
    try:
        await store.call(store.migrate)
        rc = RetentionConfig(messages_days=30, batch_rows=10, batch_ms=0, pause_s=0)
        calls: list[int] = []
        real = store.retention.checkpoint

        def counted() -> None:
            calls.append(_count(store, t.messages))
            real()

        monkeypatch.setattr(store.retention, "checkpoint", counted)
        with store.engine.begin() as conn:
            conn.execute(insert(t.messages), prunable_messages(95))
        report = await prune(store, rc, margin=NO_MARGIN)
        assert report.deleted["messages"] == 95
        assert calls == [0]  # ten batches well within a second: one checkpoint, after the last
        calls.clear()
        monkeypatch.setattr(housekeeping, "CHECKPOINT_EVERY_S", 0.0)
        with store.engine.begin() as conn:
            conn.execute(insert(t.messages), prunable_messages(25))
        await prune(store, rc, margin=NO_MARGIN)
        assert calls == [15, 5, 0]  # due at every batch that deleted something
        with store.engine.connect() as conn:  # and the WAL really was copied back
            busy, wal, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        assert busy == 0 and wal == done
    finally:
        store.close()


async def test_each_batch_and_checkpoint_waits_for_a_quiet_window_but_not_for_ever(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After its rest, the prune asks the pool's quiet_wait_s before each batch and each
    WAL checkpoint (for a window as long as the last one took, starting after the rest)
    and sleeps what it says; never more than QUIET_WAIT_MAX_S beyond the rest, so that a
    pool always busy slows the prune down but cannot stop it."""
    from gsmgw import housekeeping
    from gsmgw.housekeeping import FIRST_CHECKPOINT_S, QUIET_WAIT_MAX_S
    from tests.store.test_prune_plan import prunable_messages

    store = Store(f"sqlite:///{tmp_path / 'q.db'}", host="h")
    try:
        await store.call(store.migrate)
        rc = RetentionConfig(messages_days=30, batch_rows=10, batch_ms=0, pause_s=0, duty_cycle=0.2)
        log: list[tuple[str, float, float]] = []  # what happened, in order
        real_timed, real_checkpoint = housekeeping._timed_prune, store.retention.checkpoint
        write_s = iter(0.01 * (i + 1) for i in range(100))  # what each batch "took"

        def timed(*args: Any) -> Any:
            log.append(("batch", 0.0, 0.0))
            batch, _ = real_timed(*args)
            return batch, next(write_s)

        def checkpoint() -> None:
            log.append(("checkpoint", 0.0, 0.0))
            real_checkpoint()

        monkeypatch.setattr(housekeeping, "_timed_prune", timed)
        monkeypatch.setattr(store.retention, "checkpoint", checkpoint)
        monkeypatch.setattr(housekeeping, "CHECKPOINT_EVERY_S", 1e9)  # one checkpoint, after the last batch

        async def sleep(s: float) -> None:
            log.append(("sleep", s, 0.0))

        def quiet_after_one_wait(length_s: float, after_s: float) -> float:
            asks = sum(1 for what, *_ in log if what == "ask")
            log.append(("ask", length_s, after_s))
            return after_s + 0.2 if asks % 2 == 0 else after_s  # a result is due: 0.2 s after the rest

        with store.engine.begin() as conn:
            conn.execute(insert(t.messages), prunable_messages(25))
        report = await prune(store, rc, margin=NO_MARGIN, sleep=sleep, quiet=quiet_after_one_wait)
        assert report.deleted["messages"] == 25
        work = [i for i, (what, *_) in enumerate(log) if what in ("batch", "checkpoint")]
        kinds = [log[i][0] for i in work]
        assert kinds[:4] == ["batch", "batch", "batch", "checkpoint"], kinds  # 10, 10, 5, then the checkpoint
        for i in work:  # each one right after its wait: asked, slept rest + 0.2, asked again (quiet now)
            assert [w for w, *_ in log[i - 3:i]] == ["ask", "sleep", "ask"], log[i - 3:i + 1]
            assert log[i - 2][1] == pytest.approx(log[i - 3][2] + 0.2)
        asks = [log[i - 3] for i in work[:4]]
        assert asks[0][1:] == (0.01, 0.0)  # the first batch: batch_ms (or 10 ms), no rest before it
        # Then the length the batch before took, after a rest of 4x that (duty cycle 0.2).
        assert asks[1][1:] == pytest.approx((0.01, 0.04)) and asks[2][1:] == pytest.approx((0.02, 0.08))
        assert asks[3][1:] == (FIRST_CHECKPOINT_S, 0.0)

        log.clear()
        write_s = iter([0.02] * 100)
        with store.engine.begin() as conn:
            conn.execute(insert(t.messages), prunable_messages(25))
        report = await prune(store, rc, margin=NO_MARGIN, sleep=sleep, quiet=lambda length_s, after_s: 5.0)
        assert report.deleted["messages"] == 25
        # Never quiet: each waits its rest and QUIET_WAIT_MAX_S more, then goes.
        rests = [0.0, 0.08, 0.08]
        batches = [i for i, (what, *_) in enumerate(log) if what == "batch"][:3]
        assert [log[i - 1][1] for i in batches] == pytest.approx([r + QUIET_WAIT_MAX_S for r in rests]), log

        from gsmgw.daemon import Gateway
        cfg = from_dict({"store": {"url": f"sqlite:///{tmp_path / 'gw.db'}"}})
        gw = Gateway(cfg, host="h")
        try:
            assert gw.housekeeper._quiet == gw.pool.quiet_wait_s  # the daemon's prune asks its pool
        finally:
            gw.store.close()
    finally:
        store.close()


async def test_the_rollup_is_background_work_that_yields_to_sends_between_results(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rollup's batches take the writer thread's low-priority lane (never a group
    commit with the sends' settles), each starts in a quiet window as long as the last
    batch took, and a batch ends early, committing what it counted, once a hot-path call
    waits behind it (asked every ROLL_CHUNK events); every event is counted, once. It
    ran 500 events at a time on the hot lane: 40-60 ms every 5 s in which no send could
    settle."""
    from gsmgw import housekeeping
    from gsmgw.housekeeping import FIRST_ROLL_S, Housekeeper
    from gsmgw.store.rollup import ROLL_CHUNK

    store = Store(f"sqlite:///{tmp_path / 'r.db'}", host="h")
    try:
        await store.call(store.migrate)
        with store.engine.begin() as conn:
            for i in range(300):
                insert_message(conn, Spec("sim1", "k1", None, i % 3, 1, "delivered", 1, 30 + i, 5), "delivered")
        events = _count(store, t.events)
        assert events >= 3 * ROLL_CHUNK
        lanes: list[str] = []
        real_call, real_idle = store.call, store.call_idle

        async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
            lanes.append(f"hot:{getattr(fn, '__name__', fn)}")
            return await real_call(fn, *args, **kwargs)

        async def call_idle(fn: Any, *args: Any, **kwargs: Any) -> Any:
            lanes.append(f"idle:{getattr(fn, '__name__', fn)}")
            return await real_idle(fn, *args, **kwargs)

        monkeypatch.setattr(store, "call", call)
        monkeypatch.setattr(store, "call_idle", call_idle)
        log: list[tuple[str, float, float]] = []
        real_timed = housekeeping._timed_roll

        def timed(store_: Store, limit: int) -> Any:
            res, _ = real_timed(store_, limit)
            log.append(("batch", limit, res.events))
            return res, res.events * 0.0001  # "took" 0.1 ms an event

        monkeypatch.setattr(housekeeping, "_timed_roll", timed)

        def quiet(length_s: float, after_s: float) -> float:
            log.append(("ask", length_s, after_s))
            return 0.0

        total = await roll_up(store, limit=120, quiet=quiet)
        assert total == events
        assert set(lanes) == {"idle:timed"}, lanes  # nothing on the hot lane
        batches = [n for what, _, n in log if what == "batch"]
        assert sum(batches) == events and batches[:-1] == [120] * (len(batches) - 1)
        asks = [length for what, length, _ in log if what == "ask"]
        assert len(asks) == len(batches) and log[0][0] == "ask"  # a window before each batch
        assert asks == pytest.approx([FIRST_ROLL_S] + [n * 0.0001 for n in batches[:-1]])
        lag = store.rollup.lag()
        assert lag["cursor"] == lag["latest_event_id"]

        # A hot-path call always waiting: each batch counts one chunk, commits, and goes.
        with store.engine.begin() as conn:
            for i in range(300):
                insert_message(conn, Spec("sim2", "k1", None, 0, 1, "sent", 1, 30 + i, 5), "sent")
        more = _count(store, t.events) - events
        before = store.rollup.report(group_by="sim", period="day", date_from=BASE.date(),
                                     date_to=BASE.date() + dt.timedelta(days=5))
        log.clear()
        monkeypatch.setattr(store.db, "hot_waiting", lambda: True)
        assert await roll_up(store, quiet=quiet) == more
        batches = [n for what, _, n in log if what == "batch"]
        assert batches[:-1] == [ROLL_CHUNK] * (len(batches) - 1) and sum(batches) == more
        after = store.rollup.report(group_by="sim", period="day", date_from=BASE.date(),
                                    date_to=BASE.date() + dt.timedelta(days=5))
        assert sum(r["messages"] for r in after) == 600  # each counted once
        assert sum(r["messages"] for r in after if r["sim"] == "sim2") == 300
        assert sum(r["messages"] for r in before) == 300

        # The daemon's housekeeper rolls the same way, with its pool's quiet windows.
        monkeypatch.setattr(store.db, "hot_waiting", lambda: False)
        with store.engine.begin() as conn:
            insert_message(conn, Spec("sim2", "k1", None, 0, 1, "delivered", 1, 12, 5), "delivered")
        log.clear()
        lanes.clear()
        cfg = from_dict({"store": {"url": f"sqlite:///{tmp_path / 'r.db'}"}})
        hk = Housekeeper(lambda: cfg, store, quiet=quiet)
        await hk.start()
        try:
            await wait_until(lambda: store.rollup.lag()["cursor"] == store.rollup.lag()["latest_event_id"], 10)
        finally:
            await hk.stop()
        assert log and log[0][0] == "ask" and set(lanes) == {"idle:timed"}
    finally:
        store.close()


async def test_the_wal_is_checkpointed_off_the_writer_thread_while_commits_come(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """On SQLite the housekeeper copies the WAL back once a second (here every 50 ms)
    while something was committed since the last time, on a thread that is neither the
    writer's nor the event loop's, after asking for a quiet window; an idle store gets
    none. Left to SQLite, the commit that crossed 1,000 WAL pages did the copy: a send's
    settle, with every modem's next send behind it."""
    import logging
    import sqlite3
    import threading

    from gsmgw import housekeeping
    from gsmgw.housekeeping import FIRST_CHECKPOINT_S, Housekeeper

    monkeypatch.setattr(housekeeping, "CHECKPOINT_EVERY_S", 0.05)

    async def no_rollup(*_args: Any, **_kwargs: Any) -> int:
        return 0

    monkeypatch.setattr(housekeeping, "roll_up", no_rollup)  # its windows are asked for above
    store = Store(f"sqlite:///{tmp_path / 'c.db'}", host="h")
    try:
        await store.call(store.migrate)
        writer = await store.call(lambda: threading.get_ident())
        threads: list[int] = []
        real = store.retention.checkpoint

        def checkpoint() -> None:
            threads.append(threading.get_ident())
            real()

        monkeypatch.setattr(store.retention, "checkpoint", checkpoint)
        asks: list[float] = []

        def quiet(length_s: float, after_s: float) -> float:
            asks.append(length_s)
            return 0.0

        cfg = from_dict({"store": {"url": f"sqlite:///{tmp_path / 'c.db'}"}})
        hk = Housekeeper(lambda: cfg, store, quiet=quiet)
        await hk.start()
        try:
            await wait_until(lambda: hk.checkpoints >= 1, 5)  # the migration's commits
            await asyncio.sleep(0.3)
            settled = hk.checkpoints
            await asyncio.sleep(0.3)
            assert hk.checkpoints == settled  # nothing committed: no checkpoint
            with store.engine.begin() as conn:
                insert_message(conn, Spec("sim1", "k1", None, 0, 1, "delivered", 1, 12, 5), "delivered")
            await wait_until(lambda: hk.checkpoints == settled + 1, 5)
        finally:
            await hk.stop()
        assert threads and writer not in threads and threading.get_ident() not in threads
        assert asks[0] == FIRST_CHECKPOINT_S and len(asks) == len(threads)
        with store.engine.connect() as conn:  # all of the WAL is in the database
            busy, frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        assert busy == 0 and frames == copied

        # A checkpoint that fails (the store's own trouble, which the health check reports)
        # is said once, in a line, not every second with a traceback; then it recovers.
        failures = iter([True, True, True])

        def failing() -> None:
            if next(failures, False):
                raise sqlite3.OperationalError("disk I/O error")
            real()

        monkeypatch.setattr(store.retention, "checkpoint", failing)
        caplog.set_level(logging.INFO, logger="gsmgw.housekeeping")
        hk = Housekeeper(lambda: cfg, store, quiet=quiet)
        with store.engine.begin() as conn:
            insert_message(conn, Spec("sim1", "k1", None, 0, 1, "delivered", 1, 13, 5), "delivered")
        await hk.start()
        try:
            await wait_until(lambda: hk.checkpoints == 1, 5)
        finally:
            await hk.stop()
        said = [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records if r.name == "gsmgw.housekeeping"]
        assert said == [("WARNING", "WAL checkpoint failed (SQLite's own checkpoint still runs): disk I/O error",
                         None), ("INFO", "WAL checkpoint works again", None)], said
    finally:
        store.close()

    pg = Store("sqlite:///:memory:", host="h")  # no file, no WAL: no mark, no checkpoint task
    try:
        assert pg.retention.wal_mark() is None
    finally:
        pg.close()
