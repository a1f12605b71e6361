"""The store matches numbers by E.164 (gsmgw.numbers): opt-outs, status reports and
replies never mix up the same digits in two countries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gsmgw.domain import MessageState
from gsmgw.store import InboundPart, NewMessage, PartResult, Store


@pytest.fixture
def dk_store(store_url: str) -> Iterator[Store]:
    """A gateway in Denmark: 8-digit national numbers, no trunk prefix."""
    s = Store(store_url, host="test-host", default_region="DK")
    s.migrate()
    try:
        yield s
    finally:
        s.close()


def test_an_optout_stored_nationally_blocks_only_its_own_country(dk_store: Store) -> None:
    store = dk_store
    assert store.optouts.add_optout("12345678", source="keyword", keyword="STOP")  # as a DK network sent it
    assert store.optouts.opted_out(["+4512345678", "+4412345678", "+4912345678"]) == {"+4512345678"}
    assert store.optouts.add_optout("+4512345678") is False  # the same number, already listed
    assert store.optouts.remove_optout("+4512345678") is True
    assert store.optouts.opted_out(["+4512345678", "12345678"]) == set()


def test_an_optout_is_found_from_any_rendering(store: Store) -> None:
    assert store.optouts.add_optout("+447700900123")
    assert store.optouts.opted_out(["447700900123", "+44 7700 900123", "+497700900123"]) == {
        "447700900123", "+44 7700 900123"}


def _sent(store: Store, to: str, tp_mr: int) -> str:
    mid = store.messages.enqueue([NewMessage(to, "x", "gsm7", 1)]).message_ids[0]
    c = store.claims.claim_next("m1", lease_s=30)
    assert c is not None and c.id == mid
    store.claims.mark_parts_sending(mid, [1], "m1")
    store.claims.settle_claim(mid, [PartResult(1, MessageState.SENT, tp_mr=tp_mr)])
    return mid


def _report(store: Store, tp_mr: int, recipient: str) -> Any:
    return store.reports.record_status_report(
        "m1", tp_mr=tp_mr, recipient=recipient, status=0, category="delivered", meaning="m",
        scts=None, discharge_at=None, window_s=3600.0)


def test_a_national_report_matches_only_its_own_country(dk_store: Store) -> None:
    store = dk_store
    uk = _sent(store, "+4412345678", 7)
    assert _report(store, 7, "12345678").message_id is None  # a DK number, not the UK one
    dk = _sent(store, "+4512345678", 8)
    m = _report(store, 8, "12345678")
    assert m.message_id == dk and m.new_state is MessageState.DELIVERED
    assert store.messages.get_message(uk)["state"] == "sent"


def test_a_reply_is_linked_to_the_message_sent_to_that_number(dk_store: Store) -> None:
    store = dk_store
    dk = _sent(store, "+4512345678", 1)
    _sent(store, "+4412345678", 2)  # later, to the same digits in the UK
    part = InboundPart(modem_id="m1", dedup_key="k1", sender="12345678", scts=None, encoding="gsm7",
                       text="yes", user_data="", pdu="00")
    res = store.inbound.ingest_inbound_part(part, join=lambda ps: ps[0].text, classify=lambda _t: None)
    assert res.message is not None and res.message.in_reply_to == dk


def test_the_optout_lookup_gives_the_same_answer_on_every_path(store: Store,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A single POST's lookup runs one fixed-shape statement (on SQLite through the
    prepared fast path when it shares a transaction); a bulk one an expanding IN. Both
    find every rendering and an erased number's tombstone."""
    import contextlib

    from gsmgw.store import prepared
    from gsmgw.store.optouts import _FIXED_SHAPE_MAX, _listed

    assert store.optouts.add_optout("+447700900123")
    assert store.optouts.add_optout("+15550007777")
    store.erasure.erase_table("optouts", "+15550007777")  # only its tombstone is left
    numbers = ["447700900123", "+15550007777", "+497700900123"]
    bulk = numbers + [f"+1555001{i:04d}" for i in range(_FIXED_SHAPE_MAX)]
    want = {"447700900123", "+15550007777"}
    outside = [store.optouts.opted_out([n]) for n in numbers], store.optouts.opted_out(bulk)

    @contextlib.contextmanager
    def in_a_transaction() -> Iterator[Any]:  # as inside a group commit
        with store.engine.begin() as conn:
            if store.is_sqlite:
                assert prepared._plan_for(_listed(1, 1), conn) is not None  # the fast path is taken
            yield conn

    monkeypatch.setattr(store.db, "read", in_a_transaction)
    inside = [store.optouts.opted_out([n]) for n in numbers], store.optouts.opted_out(bulk)
    assert outside == inside == ([{"447700900123"}, {"+15550007777"}, set()], want)
