"""Reassembly of concatenated messages."""

from __future__ import annotations

import datetime as dt

from gsmgw.sms import Deliver, Reassembler, decode_pdu, encode_deliver

SCTS = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
ALICE = "+15550000001"
BOB = "+15550000002"


def _parts(text: str, ref: int, sender: str = ALICE) -> list[Deliver]:
    pdus = encode_deliver(sender, text, scts=SCTS, concat_ref=ref)
    assert isinstance(pdus, list)
    out = [decode_pdu(p) for p in pdus]
    assert all(isinstance(d, Deliver) for d in out)
    return out  # type: ignore[return-value]


def test_single_part_complete_at_once() -> None:
    (p,) = _parts("hello", 1)
    msg = Reassembler().add(ALICE, p, now=0.0)
    assert msg is not None and msg.complete and msg.text == "hello" and msg.total == 1


def test_out_of_order_and_duplicates() -> None:
    text = "x" * 153 + "y" * 153 + "z" * 10
    p1, p2, p3 = _parts(text, 42)
    r = Reassembler()
    assert r.add(ALICE, p3, now=0.0) is None
    assert r.add(ALICE, p3, now=1.0) is None  # duplicate (CMTI + CMGL sweep)
    assert r.add(ALICE, p1, now=2.0) is None
    assert len(r) == 1
    msg = r.add(ALICE, p2, now=3.0)
    assert msg is not None and msg.text == text and msg.reference == 42 and msg.total == 3
    assert [p.concat.sequence for p in msg.parts] == [1, 2, 3]  # type: ignore[union-attr]
    assert msg.first_received_at == 0.0
    assert r.add(ALICE, p2, now=4.0) is None and len(r) == 0  # late duplicate: no ghost


def test_keyed_by_sender_reference_and_total() -> None:
    a1, a2 = _parts("a" * 200, 7, ALICE)
    b1, b2 = _parts("b" * 200, 7, BOB)
    c1, c2, c3 = _parts("c" * 400, 7, ALICE)  # same sender and reference, different total
    r = Reassembler()
    for p, s in ((a1, ALICE), (b1, BOB), (c1, ALICE), (c2, ALICE)):
        assert r.add(s, p, now=0.0) is None
    assert len(r) == 3
    assert r.add(BOB, b2, now=1.0).text == "b" * 200  # type: ignore[union-attr]
    assert r.add(ALICE, a2, now=1.0).text == "a" * 200  # type: ignore[union-attr]
    assert r.add(ALICE, c3, now=1.0).text == "c" * 400  # type: ignore[union-attr]


def test_same_reference_reused_later_is_a_new_message() -> None:
    first = _parts("1" * 200, 9)
    second = _parts("2" * 200, 9)
    r = Reassembler()
    for p in first[:-1]:
        r.add(ALICE, p, now=0.0)
    assert r.add(ALICE, first[-1], now=0.0).text == "1" * 200  # type: ignore[union-attr]
    r.add(ALICE, second[0], now=5.0)
    msg = r.add(ALICE, second[1], now=6.0)
    assert msg is not None and msg.text == "2" * 200


def test_expired_incomplete_messages_are_returned_marked() -> None:
    p1, _p2, p3 = _parts("q" * 400, 3)
    r = Reassembler()
    r.add(ALICE, p1, now=100.0)
    r.add(ALICE, p3, now=110.0)
    assert r.expired(now=150.0, timeout_s=60.0) == []
    (msg,) = r.expired(now=160.0, timeout_s=60.0)
    assert not msg.complete and msg.missing == (2,) and msg.total == 3
    assert msg.text == p1.text + p3.text
    assert len(r) == 0 and r.expired(now=1000.0, timeout_s=60.0) == []
