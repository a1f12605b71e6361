"""One gateway per host id on a shared PostgreSQL store (#15 point 1).

The liveness lease is a session advisory lock keyed on the host id, held on a
connection of its own (gsmgw.store.ownership). A second gateway with the same
host id is refused, naming the holder; a live host's claims are never settled by
another host, even when their lease has run out; SIGKILL frees the host id and
the next start recovers its claims: nothing lost, nothing sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import gc
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text, update

from gsmgw.config import HealthConfig
from gsmgw.daemon import Gateway
from gsmgw.emulator import Behaviour, FakeModemPool
from gsmgw.errors import StoreInUse
from gsmgw.health import Readiness
from gsmgw.store import NewMessage, Store
from gsmgw.store import tables as t
from gsmgw.store.ownership import PgLease, live_hosts
from tests.helpers import make_config
from tests.ownership.helpers import gsmgw, one_line

STARTING = Readiness("degraded", ("starting",))  # what a Gateway says before its first health check

pytestmark = pytest.mark.postgres

MACHINE = socket.gethostname()


async def test_duplicate_host_id_is_refused_and_another_host_id_is_not(tmp_path: Path, pg_url: str) -> None:
    cfg = make_config(tmp_path, store_url=pg_url)
    first = Gateway(cfg, host="h1")
    await first.start()
    try:
        dup = Gateway(cfg, host="h1")
        with pytest.raises(StoreInUse) as err:
            await dup.start()
        msg = str(err.value)
        assert msg.startswith(f"host_id 'h1' is in use on this store by gsmgw {os.getpid()}@{MACHINE} (server pid ")
        assert "give each gateway its own [store] host_id" in msg and "\n" not in msg
        other = Gateway(cfg, host="h2")
        await other.start()
        try:
            with other.store.engine.connect() as conn:
                assert live_hosts(conn, {"h1", "h2", "h3"}) == {"h1", "h2"}
        finally:
            await other.stop()
    finally:
        await first.stop()
    # Stopped: the host id is free again.
    again = Gateway(cfg, host="h1")
    await again.start()
    await again.stop()


def test_a_live_hosts_claim_is_never_recovered_by_another_host(pg_url: str) -> None:
    a = Store(pg_url, host="h1")
    b = Store(pg_url, host="h2")
    lease = PgLease(pg_url, "h1", command="test")
    try:
        a.migrate()
        lease.acquire()
        a.messages.enqueue([NewMessage("+15551234567", "hi", "gsm7", 1)])
        claim = a.claims.claim_next("sim1", lease_s=600, mark_sending=True)
        assert claim is not None
        # Its claim lease ran out (renewals lagging), but h1 is alive: hands off.
        with a.engine.begin() as conn:
            conn.execute(update(t.messages).where(t.messages.c.id == claim.id)
                         .values(lease_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60)))
        assert b.claims.recover(only_expired_leases=True) == {"unknown": 0, "requeued": 0, "sent": 0}
        assert b.claims.recover() == {"unknown": 0, "requeued": 0, "sent": 0}
        assert a.messages.get_message(claim.id)["state"] == "sending"
        # h1 gone (its lease released as by a dead session): now it is provably orphaned.
        lease.release()
        assert b.claims.recover(only_expired_leases=True) == {"unknown": 1, "requeued": 0, "sent": 0}
        assert a.messages.get_message(claim.id)["error_code"] == "unknown_after_crash"
    finally:
        lease.release()
        a.close()
        b.close()


def test_a_lost_lease_is_taken_again_or_reported_when_another_process_took_the_host_id(pg_url: str) -> None:
    Store(pg_url).close()
    lease = PgLease(pg_url, "h1", command="test")
    thief = PgLease(pg_url, "h1", command="test")
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        lease.acquire()
        assert lease.check() is None

        def kill_lease_session() -> None:
            with admin.connect() as conn:
                n = conn.execute(text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND objid = :key AND granted"
                    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                    {"key": lease.key}).scalar()
                assert n == 1

        kill_lease_session()  # e.g. the server restarted, or a DBA killed the session
        # Taken again once the server has ended the old session (until then: a passing
        # problem, never "taken over").
        deadline = time.monotonic() + 10
        while (problem := lease.check()) is not None:
            assert "being taken again" in problem, problem
            assert time.monotonic() < deadline
            time.sleep(0.05)
        kill_lease_session()
        _acquire_when_free(thief)  # a duplicate host id started in the gap
        problem = lease.check()
        assert problem is not None and problem.startswith("this gateway lost its host_id lease to another process")
    finally:
        lease.release()
        thief.release()
        admin.dispose()


@pytest.fixture
def garbage_collected_around() -> Iterator[None]:
    """Collect garbage before and after the test, so that an unclosed socket is charged to
    the test that left it: collected in setup it is an earlier test's (reported as an error
    at setup), collected at teardown it is this test's.

    Once in CI an "unclosed socket" PytestUnraisableExceptionWarning failed this test.
    It was not reproduced here (50 runs under two CPU burners with -W error for it; the
    whole of tests/ownership and 3 more runs with a gc after every test); what was
    reproduced is a gateway whose stop hung
    (tests/mail, fixed in gsmgw.outbox / gsmgw.waits): cut by pytest-timeout, it leaves
    its API listening socket and a client session to a later gc, i.e. in whichever test
    runs then.
    """
    gc.collect()
    yield
    gc.collect()


@pytest.mark.usefixtures("garbage_collected_around")
async def test_a_gateway_whose_host_id_was_taken_over_stops_by_itself(tmp_path: Path, pg_url: str) -> None:
    # No periodic check here (it would take the lease back before the thief): the test checks once.
    cfg = make_config(tmp_path, store_url=pg_url)
    cfg = dataclasses.replace(cfg, health=HealthConfig(check_interval_s=3600))
    gw = Gateway(cfg, host="h1")
    stop = asyncio.Event()
    serving = asyncio.create_task(gw.serve(stop))
    thief = PgLease(pg_url, "h1", command="test")
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        # Wait for the start-up health check too: run after the kill, it would take the
        # lease back before the thief (under load it came that late).
        while gw.api is None or gw.readiness == STARTING:
            await asyncio.sleep(0.01)
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
                              " AND objid = :key AND granted"
                              " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                         {"key": thief.key})
        await asyncio.to_thread(_acquire_when_free, thief)
        readiness = await gw.check_health()
        assert readiness.status == "fail" and not gw.store_ok()
        assert gw.fatal is not None and "lost its host_id lease" in gw.fatal
        await asyncio.wait_for(serving, 30)  # it stopped without being asked to
        assert not stop.is_set()
    finally:
        stop.set()
        await asyncio.gather(serving, return_exceptions=True)
        thief.release()
        admin.dispose()


def test_store_migrate_and_copy_refuse_a_store_live_gateways_use(tmp_path: Path, pg_url: str) -> None:
    seed = Store(pg_url)
    seed.migrate()
    seed.close()
    lease = PgLease(pg_url, "h1", command="test")
    lease.acquire()
    try:
        one_line(gsmgw("store", "migrate", "--url", pg_url), 1,
                 f"gsmgw store migrate: the store {pg_url} is in use by gsmgw {os.getpid()}@{MACHINE}")
        one_line(gsmgw("store", "copy", "--from", pg_url, "--to", f"sqlite:///{tmp_path / 'c.db'}"), 1,
                 "the source store is in use by gsmgw")
        assert gsmgw("store", "migrate", "--url", pg_url, "--force").returncode == 0
    finally:
        lease.release()
    assert gsmgw("store", "migrate", "--url", pg_url).returncode == 0


def _acquire_when_free(lease: PgLease) -> None:
    """Take a lease once the server has ended the killed session that held it."""
    deadline = time.monotonic() + 10
    while True:
        try:
            lease.acquire()
            return
        except StoreInUse:
            assert time.monotonic() < deadline, "the killed session kept its lock"
            time.sleep(0.05)


def _config(path: Path, url: str, host: str, port: str) -> None:
    path.write_text(
        f'[api]\nlisten = "127.0.0.1:0"\n[store]\nurl = "{url}"\nlease_s = 30.0\nhost_id = "{host}"\n'
        f'[dispatch]\npoll_interval_s = 0.2\n[logging]\nlevel = "warning"\n'
        f'[[modem]]\nid = "sim-{host}"\nport = "{port}"\ncommand_timeout_s = 2.0\nsend_timeout_s = 60.0\n'
    )


async def _spawn(cfg: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gsmgw", "run", "--config", str(cfg),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_duplicate_host_id_refused_then_kill_9_and_the_next_start_recovers(tmp_path: Path, pg_url: str) -> None:
    store = Store(pg_url, host="test")
    await store.call(store.migrate)
    mid = (await store.call(store.messages.enqueue, [NewMessage("+15551234567", "on the air", "gsm7", 1)])).message_ids[0]
    procs: list[asyncio.subprocess.Process] = []
    try:
        async with FakeModemPool(count=2, directory=tmp_path / "ports",
                                 behaviours=Behaviour(hang_on_submit=True, hang_after_sending=True)) as fake:
            cfg = tmp_path / "h1.toml"
            _config(cfg, pg_url, "h1", str(fake.modems[0].path))
            first = await _spawn(cfg)
            procs.append(first)
            deadline = time.monotonic() + 30
            while (await store.call(store.messages.get_message, mid))["state"] != "sending":
                assert time.monotonic() < deadline, "h1 never claimed the message"
                await asyncio.sleep(0.05)
            # Another host on the same queue: runs, and leaves h1's claim alone.
            cfg2 = tmp_path / "h2.toml"
            _config(cfg2, pg_url, "h2", str(fake.modems[1].path))
            other = await _spawn(cfg2)
            procs.append(other)
            # A duplicate of h1 (say, a copied config): refused in one line.
            dup_cfg = tmp_path / "h1-copy.toml"
            _config(dup_cfg, pg_url, "h1", str(fake.modems[1].path))
            dup = await _spawn(dup_cfg)
            procs.append(dup)
            _, err = await asyncio.wait_for(dup.communicate(), 30)
            line = err.decode().strip()
            assert dup.returncode == 1 and "\n" not in line and "Traceback" not in line, line
            assert line.startswith(f"gsmgw run: host_id 'h1' is in use on this store by gsmgw {first.pid}@{MACHINE}")
            assert (await store.call(store.messages.get_message, mid))["state"] == "sending"
            first.send_signal(signal.SIGKILL)
            await first.wait()
            again = await _spawn(cfg)
            procs.append(again)
            deadline = time.monotonic() + 30
            while (msg := await store.call(store.messages.get_message, mid))["state"] == "sending":
                assert again.returncode is None, (await again.communicate())[1]
                assert time.monotonic() < deadline, "the restarted h1 did not recover its claim"
                await asyncio.sleep(0.05)
            assert msg["state"] == "unknown" and msg["error_code"] == "unknown_after_crash", msg
            assert [r.destination for r in fake.modems[0].modem.sent] == ["+15551234567"]
            assert fake.modems[1].modem.sent == []  # h2 never resent it
            assert other.returncode is None
    finally:
        for p in procs:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(p.communicate(), 30)
            if p.returncode is None:
                p.kill()
                await p.communicate()
        store.close()
