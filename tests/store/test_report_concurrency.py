"""The status reports of a multipart message applied at the same time (PostgreSQL runs store
calls on several connections): the last one must still settle the message as delivered.

Found through the SMPP door: a 3-part message's reports, 50 ms after the sends, each saw
its own part delivered and the others not yet, so none of them made the message delivered.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from gsmgw.domain import MessageState
from gsmgw.store import NewMessage, PartResult, Store

WINDOW_S = 3 * 86400.0


@pytest.mark.postgres
async def test_concurrent_reports_of_one_message_settle_it(pg_url: str) -> None:
    store = Store(pg_url, host="test-host")
    try:
        await store.call(store.migrate)
        mids = []
        for i in range(20):
            to = f"+4477009{i:05d}"
            mid = (await store.call(store.messages.enqueue, [NewMessage(to, "x", "gsm7", 3)])).message_ids[0]
            c = await store.call(store.claims.claim_next, "m1", lease_s=30)
            assert c is not None and c.id == mid
            await store.call(store.claims.mark_parts_sending, mid, c.pending_seqs, "m1")
            await store.call(store.claims.settle_claim, mid,
                             [PartResult(s, MessageState.SENT, tp_mr=(3 * i + s) % 256) for s in (1, 2, 3)])
            mids.append((mid, to, i))
        await asyncio.gather(*(
            store.call(store.reports.record_status_report, "m1", tp_mr=(3 * i + s) % 256, recipient=to, status=0,
                       category="delivered", meaning="", scts=None, discharge_at=None, window_s=WINDOW_S)
            for _mid, to, i in mids for s in (1, 2, 3)))
        states = [(await store.call(store.messages.get_message, mid))["state"] for mid, _to, _i in mids]  # type: ignore[index]
        assert states == ["delivered"] * len(mids)
    finally:
        store.close()


@pytest.mark.postgres
def test_a_report_that_overtakes_the_settle_of_its_part_is_matched(pg_url: str) -> None:
    """The report comes while the settle that records its part as sent is still open.

    Seen as an SMPP e2e run with no receipts for a 3-part message (on PostgreSQL, under
    load): the report's transaction did not see the uncommitted part and kept the report
    unmatched, the settle's ``match_waiting`` did not see the uncommitted report, and
    both committed: part 1 stayed ``sent`` and the message never became delivered.
    The report must wait for the settle (or the settle for the report), then match.
    """
    store = Store(pg_url, host="test-host")
    to = "+447700900125"
    try:
        store.migrate()
        mid = store.messages.enqueue([NewMessage(to, "x", "gsm7", 1)]).message_ids[0]
        c = store.claims.claim_next("m1", lease_s=30)
        assert c is not None and c.id == mid
        store.claims.mark_parts_sending(mid, c.pending_seqs, "m1")
        matched: list[str | None] = []

        def report() -> None:
            m = store.reports.record_status_report(
                "m1", tp_mr=7, recipient=to, status=0, category="delivered", meaning="", scts=None,
                discharge_at=None, window_s=WINDOW_S)
            matched.append(m.message_id)

        with store.engine.connect() as conn:
            with conn.begin():
                store.claims.settle_in(conn, mid, [PartResult(1, MessageState.SENT, tp_mr=7)])
                r = threading.Thread(target=report)
                r.start()
                r.join(0.5)  # it waits for this settle (before the fix it finished unmatched)
            r.join(10)
        assert not r.is_alive()
        assert matched == [mid]
        assert store.messages.get_message(mid)["state"] == "delivered"  # type: ignore[index]
        assert not store.reports.list_status_reports(unmatched_only=True)
    finally:
        store.close()
