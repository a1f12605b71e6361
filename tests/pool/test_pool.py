"""The Pool through its injected seams: a scripted driver (``driver_factory``), a
clock the test moves (``clock``), and a real SQLite store.

No emulator, no pty: what is tested is the pool's own logic (claim → prepare →
send → settle, resting a failing SIM, retries elsewhere, reload).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from gsmgw.config import Config, DispatchConfig, ModemConfig, StoreConfig
from gsmgw.domain import ModemIdentity, ModemState, SendOutcome, SendOutcomeKind
from gsmgw.modem import ALL_EVENT_TYPES, EventRegistry, Modem, StateChanged, StoredSms
from gsmgw.pool import Driver, NoPortYet, Pool
from gsmgw.sms import decode_pdu
from gsmgw.store import NewMessage, Store
from gsmgw.store import tables as t
from tests.helpers import until

Script = Callable[["FakeDriver", Sequence[tuple[str, int]]], Awaitable[list[SendOutcome]]]


async def ok(driver: FakeDriver, parts: Sequence[tuple[str, int]]) -> list[SendOutcome]:
    return [SendOutcome(SendOutcomeKind.OK, tp_mr=len(driver.sent) % 256) for _ in parts]


def error(cms: int) -> Script:
    async def script(driver: FakeDriver, parts: Sequence[tuple[str, int]]) -> list[SendOutcome]:
        return [SendOutcome(SendOutcomeKind.ERROR, cms_code=cms)]

    return script


async def unknown(driver: FakeDriver, parts: Sequence[tuple[str, int]]) -> list[SendOutcome]:
    # The PDU was written, then no final result: the channel's send timeout.
    return [SendOutcome(SendOutcomeKind.UNKNOWN, detail="no +CMGS result within 60 s")]


class FakeDriver:
    """A modem that is READY as soon as it runs (or once ``gate`` is set) and answers
    every send with its script. Everything the pool may call is here (the Driver
    protocol), nothing more."""

    def __init__(self, cfg: ModemConfig, script: Script, gate: asyncio.Event | None = None) -> None:
        self.cfg = cfg
        self.script = script
        self.gate = gate
        self.state = ModemState.DISCONNECTED
        self.identity = ModemIdentity(imei=f"35{abs(hash(cfg.id)) % 10**13:013d}")
        self.events = EventRegistry(cfg.id)
        self.csq: int | None = 20
        self.sent: list[list[tuple[str, int]]] = []
        self.running = False
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()

    def _set_state(self, new: ModemState) -> None:
        old, self.state = self.state, new
        (self._ready.set if new is ModemState.READY else self._ready.clear)()
        self.events.emit(StateChanged(self.cfg.id, old, new, "fake"))

    async def run(self) -> None:
        self.running = True
        try:
            if self.gate is not None:
                await self.gate.wait()
            self._set_state(ModemState.READY)
            await self._stop.wait()
        finally:
            self._set_state(ModemState.DISCONNECTED)
            self.running = False

    async def stop(self) -> None:
        self._stop.set()

    async def wait_ready(self, timeout_s: float) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout_s)

    async def send_pdus(self, parts: Sequence[tuple[str, int]]) -> list[SendOutcome]:
        self.sent.append(list(parts))
        return await self.script(self, parts)

    async def list_sms(self, stat: int = 4, storage: str | None = None) -> list[StoredSms]:
        return []

    async def read_sms(self, index: int, storage: str | None = None) -> StoredSms | None:
        return None

    async def delete_sms(self, index: int, storage: str | None = None) -> None:
        return None

    async def ussd(self, code: str, timeout_s: float = 15.0) -> str:
        return ""


class FakeClock:
    """Monotonic seconds that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.scripts: dict[str, Script] = {}
        self.gates: dict[str, asyncio.Event] = {}
        self.drivers: dict[str, list[FakeDriver]] = {}
        self.store = Store(f"sqlite:///{tmp_path / 'pool.db'}", host="test-host", sqlite_synchronous="OFF")
        self.store.migrate()

    def factory(self, cfg: ModemConfig) -> FakeDriver:
        driver = FakeDriver(cfg, self.scripts.get(cfg.id, ok), self.gates.get(cfg.id))
        self.drivers.setdefault(cfg.id, []).append(driver)
        return driver

    def driver(self, modem_id: str) -> FakeDriver:
        return self.drivers[modem_id][-1]

    async def enqueue(self, *numbers: str) -> list[str]:
        items = [NewMessage(to_number=n, text=f"hello {n}", encoding="gsm7", parts_total=1) for n in numbers]
        res = await self.store.call(self.store.messages.enqueue, items)
        return list(res.message_ids)

    async def message(self, message_id: str) -> dict[str, Any]:
        msg = await self.store.call(self.store.messages.get_message, message_id)
        assert msg is not None
        return msg

    async def wait_state(self, message_id: str, states: set[str], timeout_s: float = 10.0) -> dict[str, Any]:
        msg: dict[str, Any] = {}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = await self.message(message_id)
            if msg["state"] in states:
                return msg
            await asyncio.sleep(0.01)
        raise AssertionError(f"message {message_id} not in {states} after {timeout_s} s: {msg.get('state')}")


def config(*modems: ModemConfig, **dispatch: Any) -> Config:
    return Config(
        store=StoreConfig(lease_s=30.0),
        dispatch=DispatchConfig(**{"poll_interval_s": 0.05, "retry_backoff_initial_s": 1.0,
                                   "retry_backoff_max_s": 8.0, **dispatch}),
        modem=modems,
    )


def modem(modem_id: str, **kw: Any) -> ModemConfig:
    return ModemConfig(id=modem_id, port=f"fake://{modem_id}", **kw)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        h.store.close()


@pytest.fixture
async def start_pool(harness: Harness) -> AsyncIterator[Callable[..., Awaitable[Pool]]]:
    pools: list[Pool] = []

    async def start(cfg: Config, clock: Callable[[], float] | None = None) -> Pool:
        pool = Pool(cfg, harness.store, driver_factory=harness.factory, clock=clock or FakeClock())
        await pool.start()
        pools.append(pool)
        return pool

    yield start
    for pool in pools:
        await pool.stop(drain_timeout_s=5.0)


def test_the_real_driver_the_stand_in_and_the_fake_all_are_drivers() -> None:
    cfg = modem("sim1")
    for driver in (Modem(cfg), NoPortYet("sim1"), FakeDriver(cfg, ok)):
        assert isinstance(driver, Driver), type(driver)


async def test_a_claim_is_sent_and_settled(harness: Harness, start_pool: Any) -> None:
    pool = await start_pool(config(modem("sim1")))
    [mid] = await harness.enqueue("+15551230001")
    msg = await harness.wait_state(mid, {"sent"})
    driver = harness.driver("sim1")
    assert len(driver.sent) == 1 and len(driver.sent[0]) == 1
    pdu_hex, tpdu_length = driver.sent[0][0]
    assert len(pdu_hex) // 2 > tpdu_length  # SMSC field + TPDU, as AT+CMGS wants it
    assert msg["modem_id"] == "sim1" and msg["attempts"] == 1
    assert [(p["state"], p["tp_mr"]) for p in msg["parts"]] == [("sent", 1)]
    assert pool.sent_total == 1
    slot = pool.slots["sim1"]
    assert (slot.sent_parts, slot.failed_parts, slot.consecutive_failures) == (1, 0, 0)
    await until(lambda: not slot.busy, "the worker to let go of the claim")
    assert slot.claim_id is None and slot.next_claim_id is None


async def test_a_definite_error_is_retried_on_another_sim(harness: Harness, start_pool: Any) -> None:
    # sim2 comes up only once sim1 has refused the message: the first try is sim1's.
    harness.gates["sim2"] = gate = asyncio.Event()

    async def refuse_then_open_sim2(driver: FakeDriver, parts: Sequence[tuple[str, int]]) -> list[SendOutcome]:
        gate.set()
        return await error(42)(driver, parts)  # +CMS ERROR: 42 congestion: transient, definite

    harness.scripts["sim1"] = refuse_then_open_sim2
    pool = await start_pool(config(modem("sim1"), modem("sim2"), retry_backoff_initial_s=0.05))
    [mid] = await harness.enqueue("+15551230002")
    msg = await harness.wait_state(mid, {"sent"})
    assert msg["modem_id"] == "sim2" and msg["attempts"] == 2
    assert len(harness.driver("sim1").sent) == 1 and len(harness.driver("sim2").sent) == 1
    assert pool.slots["sim1"].last_error.startswith("cms:42")
    # A transient (message-side) error does not rest the SIM that reported it.
    assert pool.slots["sim1"].resting_until == 0.0


async def test_a_timeout_after_the_pdu_leaves_the_part_unknown_and_never_resends(
        harness: Harness, start_pool: Any) -> None:
    clock = FakeClock()
    calls = itertools.count()

    async def unknown_then_ok(driver: FakeDriver, parts: Sequence[tuple[str, int]]) -> list[SendOutcome]:
        return await (unknown if next(calls) == 0 else ok)(driver, parts)

    harness.scripts["sim1"] = unknown_then_ok
    pool = await start_pool(config(modem("sim1")), clock)
    [first] = await harness.enqueue("+15551230003")
    msg = await harness.wait_state(first, {"unknown"})
    assert [(p["state"], p["error_code"]) for p in msg["parts"]] == [("unknown", "unknown")]
    slot = pool.slots["sim1"]
    assert slot.resting_until == clock.now + 1.0  # a hang rests the SIM like a modem error
    # Proof that it is never resent: a later message goes out on the same SIM, and
    # the older one (which a requeue would put first in line) is not sent again.
    [second] = await harness.enqueue("+15551230004")
    clock.now += 1.0
    pool.notify_work()
    await harness.wait_state(second, {"sent"})
    driver = harness.driver("sim1")
    assert len(driver.sent) == 2
    assert (await harness.message(first))["state"] == "unknown"


async def test_a_send_still_on_the_air_when_the_stop_gives_up_is_unknown_not_requeued(harness: Harness) -> None:
    """The stop waits for sends in flight up to its drain timeout, then cancels the
    workers. A PDU handed to the modem may have left: its part becomes unknown (never
    resent blindly), it does not go back to the queue as if it had never been written."""
    written = asyncio.Event()

    async def written_then_no_answer(driver: FakeDriver, parts: Sequence[tuple[str, int]]) -> list[SendOutcome]:
        written.set()
        await asyncio.sleep(3600)  # (a multipart send, each part waiting its send_timeout_s)
        raise AssertionError("unreachable")

    harness.scripts["sim1"] = written_then_no_answer
    pool = Pool(config(modem("sim1")), harness.store, driver_factory=harness.factory, clock=FakeClock())
    await pool.start()
    [mid] = await harness.enqueue("+15551230021")
    await asyncio.wait_for(written.wait(), 10)
    await asyncio.wait_for(pool.stop(drain_timeout_s=0.2), 20)
    msg = await harness.message(mid)
    assert msg["state"] == "unknown", msg["state"]
    assert [(p["state"], p["error_code"]) for p in msg["parts"]] == [("unknown", "unknown")]
    assert len(harness.driver("sim1").sent) == 1


async def test_a_claim_ahead_taken_over_by_another_host_is_never_written(
        harness: Harness, start_pool: Any) -> None:
    """While sim1 sends its first message, the one it claimed ahead is recovered by
    another host (its lease ran out: a stalled host) and claimed there. sim1 must
    not write it when its turn comes, nor hand it back, and must go on with the
    next message."""
    other = Store(f"sqlite:///{harness.tmp_path / 'pool.db'}", host="other-host")
    pool_box: list[Pool] = []
    taken: list[str] = []

    def take_over(message_id: str) -> None:
        with other.engine.begin() as conn:
            conn.execute(update(t.messages).where(t.messages.c.id == message_id)
                         .values(lease_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60)))
        assert other.claims.recover(only_expired_leases=True)["requeued"] == 1
        claim = other.claims.claim_next("elsewhere", lease_s=30)
        assert claim is not None and claim.id == message_id
        taken.append(message_id)

    async def first_one_steals(driver: FakeDriver, parts: Sequence[tuple[str, int]]) -> list[SendOutcome]:
        if not taken:
            slot = pool_box[0].slots["sim1"]
            await until(lambda: slot.next_claim_id is not None, "the claim ahead")
            await asyncio.to_thread(take_over, slot.next_claim_id)
        return await ok(driver, parts)

    harness.scripts["sim1"] = first_one_steals
    try:
        pool_box.append(await start_pool(config(modem("sim1"))))
        first, ahead, third = await harness.enqueue("+15551230011", "+15551230012", "+15551230013")
        await harness.wait_state(first, {"sent"})
        await harness.wait_state(third, {"sent"})
        assert taken == [ahead]
        sent_to = [decode_pdu(pdu, tpdu_length=n).text for [(pdu, n)] in harness.driver("sim1").sent]
        assert sent_to == ["hello +15551230011", "hello +15551230013"]
        row = await harness.message(ahead)
        assert (row["state"], row["lease_owner"], row["modem_id"]) == ("sending", "other-host", "elsewhere")
        assert [p["state"] for p in row["parts"]] == ["queued"]
    finally:
        other.close()


async def test_a_modem_error_rests_the_sim_with_capped_growing_pauses(harness: Harness, start_pool: Any) -> None:
    clock = FakeClock()
    harness.scripts["sim1"] = error(300)  # +CMS ERROR: 300 ME failure: the modem's fault
    pool = await start_pool(config(modem("sim1"), retry_backoff_initial_s=1.0, retry_backoff_max_s=4.0,
                                   max_attempts=50), clock)
    slot = pool.slots["sim1"]
    driver = harness.driver("sim1")
    rests: list[float] = []
    for i in range(5):
        # A fresh message each round: the refused one is left to other SIMs for a while.
        [mid] = await harness.enqueue(f"+1555123010{i}")
        clock.now = max(clock.now, slot.resting_until)
        pool.notify_work()
        await until(lambda n=i + 1: len(driver.sent) == n, f"send {i + 1}")
        msg = await harness.wait_state(mid, {"queued"})
        assert msg["error_code"] == "cms:300", msg
        await until(lambda: not slot.busy, "the settle")
        rests.append(slot.resting_until - clock.now)
    assert rests == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert slot.consecutive_failures == 5
    assert pool.snapshot()[0]["resting"] is True


@pytest.mark.slow
async def test_a_thousand_modem_errors_in_a_row_never_overflow_the_rest(harness: Harness, start_pool: Any) -> None:
    """Regression: the rest was initial × 2**failures with no cap on the exponent, so
    the 1,025th modem-class failure in a row raised OverflowError inside the send,
    which abandoned the claims in flight as 'unknown' (a message never sent, lost)."""
    ticks = itertools.count()
    harness.scripts["sim1"] = error(300)
    n = 1030  # one fresh message per failure: a refused one is left to other SIMs for a while
    # Every read of the clock is far later than the last: no rest is ever waited out.
    pool = await start_pool(config(modem("sim1"), max_attempts=50), lambda: next(ticks) * 1e6)
    ids = await harness.enqueue(*(f"+1555{i:07d}" for i in range(n)))
    driver = harness.driver("sim1")
    await until(lambda: len(driver.sent) >= 1026, "1,026 refusals", timeout_s=50.0)
    # Stop the SIM before waiting for it to settle: on a loaded machine the 1,026 sends
    # take longer than the store's 10 s avoid-grace (real time), after which the refused
    # messages are due for this SIM again and it would never go idle on its own.
    pool.set_enabled("sim1", False)
    await until(lambda: not pool.slots["sim1"].busy, "the settle")
    states: dict[str, int] = {}
    for mid in ids:
        state = (await harness.message(mid))["state"]
        states[state] = states.get(state, 0) + 1
    assert "unknown" not in states, states
    assert pool.slots["sim1"].consecutive_failures >= 1026


async def test_reload_adds_and_removes_a_modem(harness: Harness, start_pool: Any) -> None:
    first = config(modem("sim1"))
    pool = await start_pool(first)
    await harness.driver("sim1").wait_ready(5.0)
    changes = await pool.apply_config(dataclasses.replace(first, modem=(modem("sim1"), modem("sim2"))))
    assert changes == {"added": ["sim2"], "removed": [], "restarted": [], "updated": []}
    sim2 = harness.driver("sim2")
    await sim2.wait_ready(5.0)
    pool.set_enabled("sim1", False)
    [mid] = await harness.enqueue("+15551230005")
    msg = await harness.wait_state(mid, {"sent"})
    assert msg["modem_id"] == "sim2"

    sim1 = harness.driver("sim1")
    changes = await pool.apply_config(dataclasses.replace(first, modem=(modem("sim2"),)))
    assert changes == {"added": [], "removed": ["sim1"], "restarted": [], "updated": []}
    assert set(pool.slots) == {"sim2"} and not sim1.running
    # Its driver's run ended, and with it every listener the pool had registered.
    assert all(sim1.events.listeners(tp) == 0 for tp in ALL_EVENT_TYPES)
    assert sim2.events.listeners(StateChanged) > 0
    # A device setting (not a pool one) restarts the driver.
    changes = await pool.apply_config(dataclasses.replace(first, modem=(modem("sim2", send_timeout_s=5.0),)))
    assert changes["restarted"] == ["sim2"] and len(harness.drivers["sim2"]) == 2
    assert harness.driver("sim2").cfg.send_timeout_s == 5.0


async def test_a_send_on_the_air_says_when_it_is_due_and_quiet_windows_fall_between(
        harness: Harness, start_pool: Any) -> None:
    """Issue 21: background store work (the prune) starts its batches between the sends'
    results. Each modem learns its time per part (smoothed) and, while a send is on the
    air, when it is due to answer; the pool finds the next window free of results."""
    from gsmgw.pool.supervisor import SETTLE_GUARD_S

    clock = FakeClock()
    gates: list[asyncio.Event] = []

    async def timed(driver: FakeDriver, parts: Sequence[tuple[str, int]]) -> list[SendOutcome]:
        gate = asyncio.Event()
        gates.append(gate)
        await gate.wait()
        clock.now += 0.4 * len(parts)  # the network's time
        return await ok(driver, parts)

    harness.scripts["sim1"] = timed
    # sim2 sends nothing (disabled): its slot stands for a second modem's send below.
    pool = await start_pool(config(modem("sim1"), modem("sim2", enabled=False)), clock=clock)
    slot = pool.slots["sim1"]
    await harness.enqueue("+15551230001", "+15551230002")
    await until(lambda: len(gates) == 1, "the first send on the air")
    # Nothing timed yet: no due time, nothing to wait for.
    assert slot.send_due is None and slot.part_time_s is None
    assert pool.quiet_wait_s(0.05) == 0
    gates[0].set()
    await until(lambda: len(gates) == 2, "the second send on the air")
    assert slot.part_time_s == pytest.approx(0.4)
    assert slot.send_due == pytest.approx(clock.now + 0.4)
    assert pool.quiet_wait_s(0.05) == 0  # fits before the result (and its guard)
    assert pool.quiet_wait_s(0.5) == pytest.approx(0.4 + SETTLE_GUARD_S)  # after it
    pool.slots["sim2"].send_due = clock.now + 0.01  # another modem's result, due before sim1's
    assert pool.quiet_wait_s(0.05) == pytest.approx(0.01 + SETTLE_GUARD_S)
    pool.slots["sim2"].send_due = None
    clock.now += 0.39
    assert pool.quiet_wait_s(0.05) == pytest.approx(0.01 + SETTLE_GUARD_S)
    # Two modems: the window opens after both results that leave no room between them.
    pool.slots["sim2"].send_due = clock.now + 0.05
    assert pool.quiet_wait_s(0.05) == pytest.approx(0.05 + SETTLE_GUARD_S)
    pool.slots["sim2"].send_due = clock.now - 0.015  # due earlier than sim1's, not yet past its guard
    assert pool.quiet_wait_s(0.05) == pytest.approx(0.01 + SETTLE_GUARD_S)
    pool.slots["sim2"].send_due = clock.now + 0.5
    assert pool.quiet_wait_s(0.05) == pytest.approx(0.01 + SETTLE_GUARD_S)
    # Asked for a window after a rest: one that starts no sooner.
    assert pool.quiet_wait_s(0.05, 0.2) == pytest.approx(0.2)
    assert pool.quiet_wait_s(0.05, 0.45) == pytest.approx(0.5 + SETTLE_GUARD_S)  # sim2 is due in it
    pool.slots["sim2"].send_due = None
    # Past its due time (and guard) a send is left out: when it answers cannot be told.
    clock.now += 0.1
    assert pool.quiet_wait_s(0.05) == 0
    gates[1].set()
    await until(lambda: not slot.busy, "the worker to finish")
    assert slot.send_due is None
    assert slot.part_time_s == pytest.approx(0.4 + 0.3 * (0.89 - 0.4))  # smoothed, not replaced
