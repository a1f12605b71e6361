"""kill -9 a `gsmgw run` in the middle of a submit_sm stream: nothing acknowledged is lost,
and every acknowledged message gets its receipt (at least once) under the id it was given."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from gsmgw.emulator import FakeModemPool
from gsmgw.smpp.accounts import hash_password
from gsmgw.smpp.constants import Command, Status, Tag
from gsmgw.smpp.pdu import Pdu
from gsmgw.store import Store
from tests.smpp.helpers import RawEsme, bind_params, submit_params

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]
WINDOW = 10


def _write_config(path: Path, db: Path, ports: list[str]) -> None:
    modems = "".join(
        f'[[modem]]\nid = "sim{i + 1}"\nport = "{p}"\ncommand_timeout_s = 2.0\nsend_timeout_s = 3.0\n'
        for i, p in enumerate(ports))
    path.write_text(
        f'[api]\nlisten = "127.0.0.1:0"\n[store]\nurl = "sqlite:///{db}"\nlease_s = 30.0\n'
        f'[dispatch]\npoll_interval_s = 0.2\n[logging]\nlevel = "info"\n'
        f'[smpp]\nlisten = "127.0.0.1:0"\npoll_interval_s = 0.05\nretry_initial_s = 0.2\n{modems}')


class Gsmgw:
    """A `gsmgw run` subprocess; its SMPP port is read from its log."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.log: list[str] = []
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, cfg: Path) -> Gsmgw:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gsmgw", "run", "--config", str(cfg),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        g = cls(proc)
        await asyncio.wait_for(asyncio.shield(g.port), 30)
        return g

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self.log.append(line)
            m = re.search(r"SMPP listening on [^ ]+:(\d+)", line)
            if m and not self.port.done():
                self.port.set_result(int(m.group(1)))
        if not self.port.done():
            self.port.set_exception(AssertionError("gsmgw exited before SMPP listened:\n" + "".join(self.log)))

    async def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()
        await self.reader

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self.reader


async def _receiver(port: int, receipts: dict[str, list[str]]) -> None:
    """bind_receiver, acknowledge every deliver_sm, note each receipt's id and stat."""
    esme = await RawEsme.connect(port)
    try:
        assert (await esme.call(Pdu(Command.BIND_RECEIVER, 0, 0, bind_params("esme", "pw")))).command_status == 0
        while True:
            pdu = await esme.read(timeout_s=3600)
            if pdu.command is Command.DELIVER_SM:
                rid = pdu.tlv_cstr(Tag.RECEIPTED_MESSAGE_ID)
                stat = re.search(r"stat:(\w+)", pdu.get("short_message").decode()).group(1)  # type: ignore[union-attr]
                receipts.setdefault(str(rid), []).append(stat)
                esme.send(pdu.response(message_id=""))
            elif pdu.command is Command.ENQUIRE_LINK or pdu.command is Command.UNBIND:
                esme.send(pdu.response())
    except (asyncio.IncompleteReadError, ConnectionError):
        return
    finally:
        await esme.close()


async def _stream(port: int, acked: dict[int, str], stop_after: int) -> None:
    """Submit with a window of WINDOW until ``stop_after`` are acknowledged (or the gateway dies)."""
    esme = await RawEsme.connect(port)
    try:
        assert (await esme.call(Pdu(Command.BIND_TRANSMITTER, 0, 0, bind_params("esme", "pw")))).command_status == 0
        inflight: set[int] = set()
        n = 0
        while len(acked) < stop_after:
            while len(inflight) < WINDOW:
                n += 1
                inflight.add(esme.send(Pdu(Command.SUBMIT_SM, 0, 0, submit_params(
                    to=f"4477009{n:05d}", text=f"crash test {n}".encode()))))
            resp = await esme.read()
            inflight.discard(resp.sequence_number)
            if resp.command_status == Status.ROK:
                acked[resp.sequence_number] = str(resp.get("message_id"))
    except (asyncio.IncompleteReadError, ConnectionError):
        return
    finally:
        await esme.close()


async def test_kill_9_during_submit_stream(tmp_path: Path) -> None:
    db = tmp_path / "gsmgw.db"
    store = Store(f"sqlite:///{db}")
    await store.call(store.migrate)
    await store.call(store.smpp.create_account, "esme", hash_password("pw"), ["send", "read"])
    receipts: dict[str, list[str]] = {}
    acked: dict[int, str] = {}
    async with FakeModemPool(count=2, directory=tmp_path / "ports") as fake:
        cfg = tmp_path / "gsmgw.toml"
        _write_config(cfg, db, [str(m.path) for m in fake.modems])
        gw = await Gsmgw.start(cfg)
        rx = asyncio.create_task(_receiver(await gw.port, receipts))
        try:
            streaming = asyncio.create_task(_stream(await gw.port, acked, stop_after=10_000))
            deadline = time.monotonic() + 30
            while len(acked) < 200:
                assert time.monotonic() < deadline and not streaming.done(), "".join(gw.log[-30:])
                await asyncio.sleep(0.005)
            await gw.kill9()  # mid-stream: submits in flight, sends on the air, receipts owed
            await streaming
            await rx
            killed_with = dict(acked)
            owed = set(killed_with.values()) - set(receipts)
            assert owed, "every receipt came before the kill: the test proves nothing"
            # Every acknowledged submit is in the store, before anything restarts.
            stored = {r["id"] for r in await store.call(store.messages.list_messages, limit=100_000)}
            missing = set(killed_with.values()) - stored
            assert not missing, f"{len(missing)} acknowledged messages lost"

            gw = await Gsmgw.start(cfg)
            rx = asyncio.create_task(_receiver(await gw.port, receipts))
            deadline = time.monotonic() + 60
            while not set(killed_with.values()) <= set(receipts):
                assert time.monotonic() < deadline, (
                    f"{len(set(killed_with.values()) - set(receipts))} receipts never came\n" + "".join(gw.log[-30:]))
                await asyncio.sleep(0.1)
        finally:
            rx.cancel()
            with contextlib.suppress(BaseException):
                await rx
            await gw.stop()
    rows = {r["id"]: r for r in await store.call(store.messages.list_messages, limit=100_000)}
    store.close()
    print(f"acknowledged {len(killed_with)}, receipts owed at the kill {len(owed)}, stored {len(rows)}, receipts for "
          f"{len(set(receipts) & set(killed_with.values()))}, repeated {sum(len(v) > 1 for v in receipts.values())}")
    for mid in killed_with.values():
        state = rows[mid]["state"]
        expected = {"delivered": "DELIVRD", "unknown": "UNKNOWN", "failed": "UNDELIV"}[state]
        assert expected in receipts[mid], (mid, state, receipts[mid])
