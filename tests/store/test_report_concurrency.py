"""The status reports of a multipart message applied at the same time (PostgreSQL runs store
calls on several connections): the last one must still settle the message as delivered.

Found through the SMPP door: a 3-part message's reports, 50 ms after the sends, each saw
its own part delivered and the others not yet, so none of them made the message delivered.
"""

from __future__ import annotations

import asyncio

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
