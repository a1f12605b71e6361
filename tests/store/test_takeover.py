"""A claim another host took over is never written by its old holder, and two
hosts recovering the same dead host's claims at once settle each claim once.

The clean-clone CI of 2026-11-29 saw one message of 2,000 on the air twice in the
three-host kill -9 run (tests/e2e/test_multihost.py). The path: both survivors
read the dead host's expired claims; one requeued a claimed-ahead message (its
parts never marked) and a modem claimed it again; the other, acting on what it had
read, requeued it a second time, so the new holder sent it and a third modem
claimed and sent it again. These tests pin each step of that path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from gsmgw.domain import MessageState
from gsmgw.store import NewMessage, NextMark, PartResult, Store

pytestmark = pytest.mark.timeout(60)


def msg(to: str = "+15551234567") -> NewMessage:
    return NewMessage(to_number=to, text="hi", encoding="gsm7", parts_total=1)


@pytest.fixture
def hosts(store_url: str) -> Iterator[tuple[Store, Store]]:
    a = Store(store_url, host="a")
    a.migrate()
    b = Store(store_url, host="b")
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _taken_over(a: Store, b: Store) -> tuple[str, str]:
    """``a`` sends one message and holds the next one claimed ahead (unmarked); its
    leases run out and ``b`` (a is not live: no liveness lease in a test) recovers
    them and claims the requeued one for its own modem."""
    on_air, ahead = a.messages.enqueue([msg("+15550000001"), msg("+15550000002")]).message_ids
    first = a.claims.claim_next("m1", lease_s=0.05, mark_sending=True)
    second = a.claims.claim_next("m1", lease_s=0.05)
    assert first is not None and first.id == on_air and second is not None and second.id == ahead
    time.sleep(0.1)
    assert b.claims.recover(only_expired_leases=True) == {"unknown": 1, "requeued": 1, "sent": 0}
    again = b.claims.claim_next("m2", lease_s=30)
    assert again is not None and again.id == ahead
    return on_air, ahead


def test_a_claim_taken_over_is_neither_marked_nor_handed_back_by_its_old_holder(
        hosts: tuple[Store, Store]) -> None:
    a, b = hosts
    on_air, ahead = _taken_over(a, b)
    # The old holder's pipelined settle: the send's facts are kept, the next claim is not marked.
    mark = NextMark(ahead, [1], "m1")
    a.claims.settle_claim(on_air, [PartResult(1, MessageState.SENT, tp_mr=9)], then_mark=mark)
    assert mark.taken is False
    assert a.claims.mark_parts_sending(ahead, [1], "m1") is False
    a.claims.settle_claim(ahead, [], uncount_attempt=True)  # its release: not its claim any more
    row = b.messages.get_message(ahead)
    assert (row["state"], row["lease_owner"], row["modem_id"]) == ("sending", "b", "m2")
    assert [p["state"] for p in row["parts"]] == ["queued"]
    # The new holder marks and sends it as usual.
    assert b.claims.mark_parts_sending(ahead, [1], "m2") is True
    assert b.claims.settle_claim(ahead, [PartResult(1, MessageState.SENT, tp_mr=3)]) is MessageState.SENT
    # The part recover called unknown did leave: the old holder's SENT says so.
    assert b.messages.get_message(on_air)["state"] == "sent"


def test_the_old_holders_sent_part_turns_a_recovered_unknown_into_sent(hosts: tuple[Store, Store]) -> None:
    a, b = hosts
    on_air, _ahead = _taken_over(a, b)
    assert b.messages.get_message(on_air)["state"] == "unknown"
    final = a.claims.settle_claim(on_air, [PartResult(1, MessageState.SENT, tp_mr=9)])
    assert final is MessageState.SENT
    row = b.messages.get_message(on_air)
    assert row["state"] == "sent" and row["parts"][0]["tp_mr"] == 9


def test_an_unknown_from_the_old_holder_changes_nothing(hosts: tuple[Store, Store]) -> None:
    a, b = hosts
    on_air, _ahead = _taken_over(a, b)
    final = a.claims.settle_claim(on_air, [PartResult(1, MessageState.UNKNOWN, error_code="unknown")])
    assert final is MessageState.UNKNOWN
    assert b.messages.get_message(on_air)["state"] == "unknown"


@pytest.mark.postgres
def test_recover_skips_a_claim_that_another_host_settled_and_a_modem_claimed_since(pg_url: str) -> None:
    """Host c reads the dead host a's expired claims; before it locks them, host b
    recovers them and b's modem claims the requeued one. c must leave it alone."""
    a, b, c = (Store(pg_url, host=h) for h in "abc")
    a.migrate()
    try:
        on_air, ahead = a.messages.enqueue([msg("+15550000001"), msg("+15550000002")]).message_ids
        a.claims.claim_next("m1", lease_s=0.05, mark_sending=True)
        a.claims.claim_next("m1", lease_s=0.05)
        time.sleep(0.1)
        fired: list[Any] = []

        def meanwhile(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            # After c's first read of expired claims: b recovers them and claims one.
            if fired or "lease_until <" not in statement:
                return
            fired.append(statement)
            assert b.claims.recover(only_expired_leases=True) == {"unknown": 1, "requeued": 1, "sent": 0}
            assert b.claims.claim_next("m2", lease_s=30).id == ahead  # type: ignore[union-attr]

        event.listen(c.engine, "after_cursor_execute", meanwhile)
        counts = c.claims.recover(only_expired_leases=True)
        event.remove(c.engine, "after_cursor_execute", meanwhile)
        assert fired and counts == {"unknown": 0, "requeued": 0, "sent": 0}
        row = c.messages.get_message(ahead)
        assert (row["state"], row["lease_owner"], row["modem_id"]) == ("sending", "b", "m2")
        assert c.messages.get_message(on_air)["state"] == "unknown"
    finally:
        for s in (a, b, c):
            s.close()


def test_a_claim_recovered_and_claimed_again_on_the_same_modem_is_another_claim(store: Store) -> None:
    """This host's own expired claim is recovered too (a stalled loop), and the same
    modem may claim the message again: the old claim's mark and hand-back, named by
    its attempt, must not touch the new one."""
    mid = store.messages.enqueue([msg()]).message_ids[0]
    old = store.claims.claim_next("m1", lease_s=0.05)
    assert old is not None and old.attempts == 1
    time.sleep(0.1)
    assert store.claims.recover(only_expired_leases=True)["requeued"] == 1
    new = store.claims.claim_next("m1", lease_s=30)
    assert new is not None and new.id == mid and new.attempts == 2
    assert store.claims.mark_parts_sending(mid, [1], "m1", old.attempts) is False
    store.claims.settle_claim(mid, [], uncount_attempt=True, held_as=("m1", old.attempts))
    row = store.messages.get_message(mid)
    assert (row["state"], row["attempts"], row["parts"][0]["state"]) == ("sending", 2, "queued")
    mark = NextMark(mid, [1], "m1", old.attempts)
    other = store.messages.enqueue([msg("+15550000009")]).message_ids[0]
    store.claims.claim_next("m2", lease_s=30, mark_sending=True)
    store.claims.settle_claim(other, [PartResult(1, MessageState.SENT, tp_mr=1)], then_mark=mark,
                              held_as=("m2", 1))
    assert mark.taken is False
    assert store.claims.mark_parts_sending(mid, [1], "m1", new.attempts) is True
    assert store.claims.settle_claim(mid, [PartResult(1, MessageState.SENT, tp_mr=2)],
                                     held_as=("m1", new.attempts)) is MessageState.SENT
