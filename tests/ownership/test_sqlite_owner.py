"""One gateway per SQLite store: an flock beside the database (#15 point 1), and a store
that does not vanish silently (point 6).

A second gateway on a store in use is refused with who holds it; the live owner's
claims are left alone (no `unknown` invented for its work). A gateway killed with
SIGKILL lets go at once (the kernel drops the lock) and the next start recovers its
claims: nothing accepted lost, nothing sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from gsmgw.daemon import Gateway
from gsmgw.emulator import Behaviour, FakeModemPool
from gsmgw.errors import StoreInUse, StoreMissing
from gsmgw.store import NewMessage, Store
from gsmgw.store.ownership import SqliteLock
from tests.helpers import make_config, running_gateway
from tests.ownership.helpers import gsmgw, one_line

MACHINE = socket.gethostname()


async def test_second_gateway_is_refused_and_leaves_the_live_claim_alone(tmp_path: Path) -> None:
    async with FakeModemPool(count=1, directory=tmp_path / "ports",
                             behaviours=Behaviour(send_latency_s=1.0)) as fake:
        cfg = make_config(tmp_path, [str(fake.modems[0].path)])
        async with running_gateway(cfg) as (gw, client):
            status, reply = await client.request("POST", "/api/v1/messages",
                                                 json={"to": "+15551234567", "text": "hi"})
            assert status == 202, reply
            await client.wait_state(reply["id"], {"sending"})
            second = Gateway(cfg, host="test-host")  # the same host name, the same file
            with pytest.raises(StoreInUse) as err:
                await second.start()
            text = str(err.value)
            assert f"the store {tmp_path / 'gsmgw.db'} is in use by gsmgw run (pid {os.getpid()} on {MACHINE}, since " \
                in text and "stop that gateway first" in text
            assert "\n" not in text
            # The refused one touched nothing: the send in flight completes normally.
            assert (await client.request("GET", f"/api/v1/messages/{reply['id']}"))[1]["state"] == "sending"
            done = await client.wait_state(reply["id"], {"sent", "delivered"}, timeout_s=10)
            assert done["state"] in ("sent", "delivered")
            counts = await gw.store.call(gw.store.messages.counts_by_state)
            assert counts.get("unknown", 0) == 0
        assert len(fake.modems[0].modem.sent) == 1
    # Stopped: the store is free for the next gateway.
    async with running_gateway(cfg) as (gw2, _client):
        assert gw2.owner.exclusive


def test_start_recovery_with_the_lock_settles_every_orphaned_claim(tmp_path: Path) -> None:
    """Holding the SQLite lock proves every claim in the file is orphaned, whichever host name made it."""
    url = f"sqlite:///{tmp_path / 'gsmgw.db'}"
    old = Store(url, host="old-name")  # e.g. host_id changed between runs
    new = Store(url, host="new-name")
    try:
        old.migrate()
        old.messages.enqueue([NewMessage("+15551234567", "hi", "gsm7", 1)])
        claim = old.claims.claim_next("sim1", lease_s=600, mark_sending=True)
        assert claim is not None
        assert new.claims.recover() == {"unknown": 0, "requeued": 0, "sent": 0}  # not provably orphaned
        assert new.claims.recover(exclusive=True) == {"unknown": 1, "requeued": 0, "sent": 0}
        assert new.messages.get_message(claim.id)["error_code"] == "unknown_after_crash"
    finally:
        old.close()
        new.close()


async def test_store_removed_or_replaced_under_a_running_gateway(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    db = tmp_path / "gsmgw.db"
    async with running_gateway(cfg) as (gw, _client):
        assert (await gw.check_health()).status == "degraded"  # no modem configured, store fine
        assert gw.store_ok()
        spare = tmp_path / "other.db"
        spare.write_bytes(db.read_bytes())
        os.replace(spare, db)
        r = await gw.check_health()
        assert not gw.store_ok() and r.status == "fail"
        assert any(f"the store {db} was replaced by another file" in reason for reason in r.reasons), r
        db.unlink()
        r = await gw.check_health()
        assert r.status == "fail"
        assert any(f"the store {db} was removed while the gateway was running" in x for x in r.reasons), r
    # The next start does not quietly make an empty database.
    again = Gateway(cfg, host="test-host")
    with pytest.raises(StoreMissing, match=f"the store {db} is gone"):
        await again.start()
    assert not db.exists()


async def test_lock_file_removed_under_a_running_gateway(tmp_path: Path) -> None:
    async with running_gateway(make_config(tmp_path)) as (gw, _client):
        (tmp_path / "gsmgw.db.lock").unlink()
        r = await gw.check_health()
        assert r.status == "fail" and any("lock file" in x for x in r.reasons), r


def test_store_migrate_and_copy_refuse_a_store_a_gateway_holds(tmp_path: Path) -> None:
    db = tmp_path / "gsmgw.db"
    url = f"sqlite:///{db}"
    seed = Store(url)
    seed.migrate()
    seed.close()
    lock = SqliteLock(db)
    lock.acquire(command="gsmgw run", host_id="h")  # what a running gateway holds
    try:
        one_line(gsmgw("store", "migrate", "--url", url), 1,
                 f"gsmgw store migrate: the store {db} is in use by gsmgw run (pid {os.getpid()} on {MACHINE}",
                 "stop the gateway first")
        one_line(gsmgw("store", "copy", "--from", url, "--to", f"sqlite:///{tmp_path / 'copy.db'}"), 1,
                 "gsmgw store copy: the source store is in use by gsmgw run")
        assert not (tmp_path / "copy.db").exists()
        res = gsmgw("store", "migrate", "--url", url, "--force")
        assert res.returncode == 0, res.stderr
    finally:
        lock.release()
    res = gsmgw("store", "copy", "--from", url, "--to", f"sqlite:///{tmp_path / 'copy.db'}")
    assert res.returncode == 0, res.stderr
    # A gateway cannot start while `store migrate` holds the store.
    lock2 = SqliteLock(db)
    lock2.acquire(command="gsmgw store migrate", host_id="")
    try:
        with pytest.raises(StoreInUse, match="in use by gsmgw store migrate"):
            SqliteLock(db).acquire(command="gsmgw run", host_id="h")
    finally:
        lock2.release()


def _config(path: Path, db: Path, port: str) -> None:
    path.write_text(
        f'[api]\nlisten = "127.0.0.1:0"\n[store]\nurl = "sqlite:///{db}"\nlease_s = 30.0\n'
        f'[dispatch]\npoll_interval_s = 0.2\n[logging]\nlevel = "warning"\n'
        f'[[modem]]\nid = "sim1"\nport = "{port}"\ncommand_timeout_s = 2.0\nsend_timeout_s = 60.0\n'
    )


async def _spawn(cfg: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gsmgw", "run", "--config", str(cfg),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
    await proc.communicate()


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_kill_9_the_owner_then_the_next_start_recovers_its_claim(tmp_path: Path) -> None:
    db = tmp_path / "gsmgw.db"
    store = Store(f"sqlite:///{db}")
    await store.call(store.migrate)
    res = await store.call(store.messages.enqueue, [NewMessage("+15551234567", "on the air at the kill", "gsm7", 1)])
    mid = res.message_ids[0]
    # The SMS leaves the modem, the answer never comes: the part stays 'sending'.
    behaviour = Behaviour(hang_on_submit=True, hang_after_sending=True)
    procs: list[asyncio.subprocess.Process] = []
    try:
        async with FakeModemPool(count=1, directory=tmp_path / "ports", behaviours=behaviour) as fake:
            cfg = tmp_path / "gsmgw.toml"
            _config(cfg, db, str(fake.modems[0].path))
            first = await _spawn(cfg)
            procs.append(first)
            deadline = time.monotonic() + 30
            while (await store.call(store.messages.get_message, mid))["state"] != "sending":
                assert time.monotonic() < deadline, "the first gateway never claimed the message"
                await asyncio.sleep(0.05)
            # A second gateway on the same file is refused and touches nothing.
            second = await _spawn(cfg)
            procs.append(second)
            _, err = await asyncio.wait_for(second.communicate(), 30)
            assert second.returncode == 1
            line = err.decode().strip()
            assert "\n" not in line and "Traceback" not in line, line
            assert line.startswith(f"gsmgw run: the store {db} is in use by gsmgw run (pid {first.pid} on {MACHINE}"), line
            assert (await store.call(store.messages.get_message, mid))["state"] == "sending"
            # SIGKILL the owner: the kernel drops its lock, the next start takes over.
            first.send_signal(signal.SIGKILL)
            await first.wait()
            third = await _spawn(cfg)
            procs.append(third)
            deadline = time.monotonic() + 30
            while (msg := await store.call(store.messages.get_message, mid))["state"] == "sending":
                assert third.returncode is None, (await third.communicate())[1]
                assert time.monotonic() < deadline, "the next start did not recover the claim"
                await asyncio.sleep(0.05)
            # It may or may not have reached the phone: unknown, never resent.
            assert msg["state"] == "unknown" and msg["error_code"] == "unknown_after_crash", msg
            assert [r.destination for r in fake.modems[0].modem.sent] == ["+15551234567"]
            third.send_signal(signal.SIGTERM)
            await asyncio.wait_for(third.wait(), 30)
            assert third.returncode == 0
    finally:
        for p in procs:
            await _stop(p)
        store.close()
