"""Status-report matching on (SIM, TP-MR, recipient) in a time window."""

from __future__ import annotations

import datetime as dt

import pytest

from gsmgw.domain import MessageState
from gsmgw.numbers import same_number
from gsmgw.store import NewMessage, PartResult, Store

WINDOW_S = 3 * 86400.0


def sent_message(store: Store, to: str, tp_mrs: list[int], modem: str = "m1") -> str:
    mid = store.messages.enqueue([NewMessage(to, "x", "gsm7", len(tp_mrs))]).message_ids[0]
    c = store.claims.claim_next(modem, lease_s=30)
    assert c is not None and c.id == mid
    store.claims.mark_parts_sending(mid, c.pending_seqs, modem)
    store.claims.settle_claim(mid, [PartResult(i + 1, MessageState.SENT, tp_mr=mr) for i, mr in enumerate(tp_mrs)])
    return mid


def report(store: Store, modem: str, mr: int, to: str, status: int = 0, category: str = "delivered",
           scts: dt.datetime | None = None):
    return store.reports.record_status_report(
        modem, tp_mr=mr, recipient=to, status=status, category=category, meaning="m",
        scts=scts, discharge_at=None, window_s=WINDOW_S,
    )


def test_delivered_only_when_every_part_is(store: Store) -> None:
    mid = sent_message(store, "+447700900123", [10, 11])
    m = report(store, "m1", 10, "+447700900123")
    assert m.message_id == mid and m.new_state is None
    assert store.messages.get_message(mid)["state"] == "sent"
    m = report(store, "m1", 11, "447700900123")  # without the plus, as some networks send it
    assert m.new_state is MessageState.DELIVERED
    assert store.messages.get_message(mid)["state"] == "delivered"


def test_pending_report_changes_nothing_and_failed_report_fails(store: Store) -> None:
    mid = sent_message(store, "+447700900123", [7])
    report(store, "m1", 7, "+447700900123", status=0x21, category="pending")
    row = store.messages.get_message(mid)
    assert row["state"] == "sent" and row["parts"][0]["report_status"] == 0x21
    report(store, "m1", 7, "+447700900123", status=0x41, category="failed")
    row = store.messages.get_message(mid)
    assert row["state"] == "failed" and row["error_code"] == "report:0x41"


def test_same_mr_other_sim_or_recipient_does_not_match(store: Store) -> None:
    mid = sent_message(store, "+447700900123", [5])
    assert report(store, "m2", 5, "+447700900123").message_id is None
    assert report(store, "m1", 5, "+447700900999").message_id is None
    assert store.messages.get_message(mid)["state"] == "sent"
    assert len(store.reports.list_status_reports(unmatched_only=True)) == 2


def test_tp_mr_wraparound_picks_the_part_sent_closest_to_scts(store: Store) -> None:
    old = sent_message(store, "+447700900123", [3])
    new = sent_message(store, "+447700900123", [3])  # 256 sends later the MR comes round again
    m = report(store, "m1", 3, "+447700900123", scts=dt.datetime.now(dt.UTC))
    assert m.message_id == new
    assert store.messages.get_message(old)["state"] == "sent"


def test_report_that_overtakes_the_send_record_is_applied_later(store: Store) -> None:
    mid = store.messages.enqueue([NewMessage("+447700900123", "x", "gsm7", 1)]).message_ids[0]
    store.claims.claim_next("m1", lease_s=30)
    store.claims.mark_parts_sending(mid, [1], "m1")
    early = report(store, "m1", 42, "+447700900123")  # +CDS before our commit of the TP-MR
    assert early.message_id is None
    final = store.claims.settle_claim(mid, [PartResult(1, MessageState.SENT, tp_mr=42)])
    assert final is MessageState.DELIVERED
    assert store.reports.list_status_reports(unmatched_only=True) == []


def test_reports_that_overtake_a_multipart_send_record_are_applied_once_each(store: Store) -> None:
    """The settle reads the reports waiting for all its sent parts in one statement:
    each is applied once, another number's report with the same TP-MR stays waiting,
    and the message is delivered when every part is."""
    mid = store.messages.enqueue([NewMessage("+447700900123", "x" * 200, "gsm7", 2)]).message_ids[0]
    store.claims.claim_next("m1", lease_s=30)
    store.claims.mark_parts_sending(mid, [1, 2], "m1")
    assert report(store, "m1", 7, "+447700900123").message_id is None  # before the commit of the TP-MRs
    assert report(store, "m1", 8, "+447700900123").message_id is None
    assert report(store, "m1", 8, "+447700900999").message_id is None  # someone else's part
    final = store.claims.settle_claim(mid, [PartResult(1, MessageState.SENT, tp_mr=7),
                                            PartResult(2, MessageState.SENT, tp_mr=8)])
    assert final is MessageState.DELIVERED
    left = store.reports.list_status_reports(unmatched_only=True)
    assert [r["recipient"] for r in left] == ["+447700900999"]
    matched = store.reports.list_status_reports(message_id=mid)
    assert sorted(r["seq"] for r in matched) == [1, 2]


def test_a_settle_with_a_part_it_never_wrote_requeues_that_part(store: Store) -> None:
    mid = store.messages.enqueue([NewMessage("+447700900123", "x" * 200, "gsm7", 2)]).message_ids[0]
    store.claims.claim_next("m1", lease_s=30)
    store.claims.mark_parts_sending(mid, [1, 2], "m1")
    final = store.claims.settle_claim(mid, [PartResult(1, MessageState.SENT, tp_mr=9)])
    assert final is MessageState.QUEUED
    parts = {p["seq"]: p["state"] for p in store.messages.get_message(mid)["parts"]}  # type: ignore[index]
    assert parts == {1: "sent", 2: "queued"}
    assert store.messages.get_message(mid)["sim_requested"] == "m1"  # type: ignore[index]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("+447700900123", "447700900123", True),
        ("+447700900123", "07700900123", True),
        ("+15551234567", "5551234567", True),
        ("+447700900123", "+447700900124", False),
        ("+447700900123", "900123", False),
    ],
)
def test_same_number(a: str, b: str, same: bool) -> None:
    assert same_number(a, b) is same
